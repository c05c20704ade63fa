// The README's `npm start` as a user or a supervisor runs it: SIGTERM to npm reaches the dispatcher, which drains and
// exits 0, and npm exits 0 with it (through `sh -c`, without exec, the shell died of the signal, npm said 143 at
// once and left the dispatcher running on its own).
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { checkHealth } from "../../src/client/index.js";
import { until } from "../support/poll.js";
import { createTestEnv, killStrayDispatchers, ROOT, type TestEnv } from "../support/process.js";

let t: TestEnv;

beforeAll(async () => {
  t = await createTestEnv({ label: "npmstart" });
});

afterAll(async () => {
  await killStrayDispatchers();
  await t?.cleanup();
});

/** The pids of `pid`'s children. */
function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

it("SIGTERM to `npm start`: the dispatcher drains and exits, and npm exits 0", async () => {
  const npm = spawn("npm", ["start"], { cwd: ROOT, env: t.env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  npm.stdout.on("data", (d: Buffer) => (output += d.toString()));
  npm.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => npm.once("exit", (code, signal) => resolve({ code, signal })));
  await until(async () => (await checkHealth(t.address, "", 1_000).catch(() => "DOWN")) === "SERVING", 90_000, "npm start serving", () => `\n${output}`);
  // npm runs the script as `sh -c "exec node …"`: its child is the dispatcher itself, no shell in between.
  const dispatcher = children(npm.pid as number);
  expect(dispatcher.length, output).toBe(1);
  expect(readFileSync(`/proc/${dispatcher[0]}/cmdline`, "utf8")).toContain("bin/dispatcher.js");

  npm.kill("SIGTERM");
  const exit = await exited;
  expect(exit, output).toEqual({ code: 0, signal: null });
  expect(output).toContain("SIGTERM received: finishing in-flight work");
  expect(output).toMatch(/dispatcher: stopped/);
  // The dispatcher is gone with npm, not left behind on its port.
  expect(await checkHealth(t.address, "", 1_000).catch(() => "DOWN")).toBe("DOWN");
  expect(() => process.kill(dispatcher[0] as number, 0)).toThrow();
}, 150_000);
