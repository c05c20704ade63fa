// The command line loads what a command uses and nothing else: `--help` and a client command never load a role, the
// databases, KM, the drivers, the guest program or the telemetry SDK; `--help` not even the configuration schema or
// the client. Checked on the modules the real process loads (a loader hook lists them), not on timings, which a shared
// machine cannot promise.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BIN, cleanEnv, freePort, ROOT } from "../support/process.js";

const LOGGER = join(ROOT, "test", "cli", "fixtures", "module-log.mjs");

/** What `dispatcher <args>` loaded: paths under src/ and package names under node_modules/. */
function loaded(args: string[], env: Record<string, string> = {}): Promise<{ code: number; modules: string[]; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", LOGGER, BIN, ...args], { cwd: ROOT, env: cleanEnv(env), timeout: 120_000 }, (err, _stdout, stderr) => {
      const modules = new Set<string>();
      for (const [, url] of stderr.matchAll(/^MODULE (\S+)$/gm)) {
        const path = (url as string).replace(`file://${ROOT}`, "");
        const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1];
        modules.add(pkg ?? path);
      }
      resolve({ code: err ? Number(err.code ?? -1) : 0, modules: [...modules], stderr: stderr.replace(/^MODULE .*\n/gm, "") });
    });
  });
}

/** Never loaded by a command that runs no role (src/db/errors.ts only classifies errors and imports nothing). */
const HEAVY = [/^src\/app\/(?!role-names)/, /^src\/db\/(?!errors\.ts$)/, /^src\/(km|jobs|monitor|clouds|guest|servers|provisioning|analytics|agent|backup|telemetry)\//, /^src\/rpc\/(?!status)/, /^@prisma\//, /^@opentelemetry\/sdk-node$/, /^@aws-sdk\//, /^mariadb$/, /^@nats-io\//, /^pino$/];

function expectNone(modules: string[], patterns: RegExp[]): void {
  const heavy = modules.filter((m) => patterns.some((p) => p.test(m)));
  expect(heavy).toEqual([]);
}

describe("what a command loads", () => {
  it("`--help` loads the command definitions only: no role, database, client, configuration schema or telemetry", async () => {
    const r = await loaded(["--help"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.modules).toContain("src/cli.ts");
    expectNone(r.modules, [...HEAVY, /^zod$/, /^src\/client\//]);
  }, 150_000);

  it("`users ls` loads the configuration and the client, and no role, database, driver or telemetry SDK", async () => {
    const closed = await freePort();
    const r = await loaded(["users", "ls"], { DISPATCHER_CLIENT_ADDRESS: `127.0.0.1:${closed}`, DISPATCHER_CLIENT_TOKEN: "dsp_not-a-key" });
    // Nobody listens there: UNAVAILABLE, exit 2, after the client loaded and called.
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/UNAVAILABLE/);
    expect(r.modules).toContain("src/client/index.ts");
    expect(r.modules).toContain("zod");
    expectNone(r.modules, HEAVY);
  }, 150_000);
});
