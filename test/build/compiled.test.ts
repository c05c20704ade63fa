// The compiled package, as an internal service or a production install sees it: `npm run build`'s output in a copy of
// the package whose node_modules lacks tsx and TypeScript. There `node bin/dispatcher.js start` serves health and
// drains to exit 0, and another program imports `dispatcher/client` — its JavaScript at run time, its types at compile
// time — through the package's exports.
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestEnv, killStrayDispatchers, ROOT, spawnDispatcher, type TestEnv } from "../support/process.js";

const run = promisify(execFile);
/** The copy of the package: package.json, bin/, dist/, the migrations, and node_modules without the dev-only runners. */
const pkg = mkdtempSync(join(tmpdir(), "dispatcher-compiled-"));
const ABSENT = new Set(["tsx", "typescript", ".bin"]);
let t: TestEnv | undefined;

beforeAll(async () => {
  await run(process.execPath, [join(ROOT, "scripts", "build.mjs"), "--out", join(pkg, "dist")], { cwd: ROOT, timeout: 290_000 });
  cpSync(join(ROOT, "package.json"), join(pkg, "package.json"));
  cpSync(join(ROOT, "bin"), join(pkg, "bin"), { recursive: true });
  for (const db of ["provisioning", "analytics", "credentials"]) cpSync(join(ROOT, "prisma", db, "migrations"), join(pkg, "prisma", db, "migrations"), { recursive: true });
  // Each package by link, except the ones a production install does not have: whatever imports them fails here.
  mkdirSync(join(pkg, "node_modules"));
  for (const name of readdirSync(join(ROOT, "node_modules"))) {
    if (!ABSENT.has(name)) symlinkSync(join(ROOT, "node_modules", name), join(pkg, "node_modules", name));
  }
}, 300_000);

afterAll(async () => {
  await killStrayDispatchers();
  await t?.cleanup();
  rmSync(pkg, { recursive: true, force: true });
});

describe("the compiled package", () => {
  it("emits JavaScript with source maps and declarations, and the files read at run time beside their modules", () => {
    for (const file of ["cli.js", "cli.js.map", "cli.d.ts", "telemetry/register.js", "client/index.js", "client/index.d.ts", "gen/descriptors.binpb", "clouds/local/guest.mjs", "clouds/local/network/daemon.js"]) {
      expect(existsSync(join(pkg, "dist", file)), file).toBe(true);
    }
    expect(existsSync(join(pkg, "node_modules", "tsx")) || existsSync(join(pkg, "node_modules", "typescript"))).toBe(false);
  });

  it("`node bin/dispatcher.js start` serves health without tsx or TypeScript, and exits 0 after draining on SIGTERM", async () => {
    t = await createTestEnv({ label: "compiled" });
    // Not from source: the compiled program, as a production install runs it.
    const p = spawnDispatcher(["start"], t.with({ DISPATCHER_FROM_SOURCE: undefined }), join(pkg, "bin", "dispatcher.js"));
    await p.waitForServing(t.address, 60_000);
    // A consumer program of the package: `dispatcher/client` from the compiled code, by the package's exports.
    const consumer = join(pkg, "consumer.mjs");
    writeFileSync(consumer, 'const { checkHealth } = await import("dispatcher/client");\nconsole.log(await checkHealth(process.argv[2]));\n');
    const { stdout } = await run(process.execPath, [consumer, t.address], { cwd: pkg, timeout: 20_000 });
    expect(stdout.trim()).toBe("SERVING");
    p.signal("SIGTERM");
    const exit = await p.exited;
    expect(exit, p.output()).toEqual({ code: 0, signal: null });
    expect(p.stderr).not.toMatch(/tsx|ERR_MODULE_NOT_FOUND/);
  }, 120_000);

  it("gives `dispatcher/client`'s types to a TypeScript consumer through the package's exports", async () => {
    const dir = join(pkg, "typed");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "consumer.ts"),
      [
        'import { checkHealth, createDispatcherClients, type HealthStatus } from "dispatcher/client";',
        'const status: HealthStatus = await checkHealth("127.0.0.1:1");',
        'const clients = createDispatcherClients({ address: "127.0.0.1:1", token: "t" });',
        "void clients.jobs.getJob({ id: status });",
        // A wrong type must fail: this proves the types are real, not `any`.
        "// @ts-expect-error the address is a string",
        "void checkHealth(42);",
        "",
      ].join("\n"),
    );
    const tsconfig = { compilerOptions: { target: "ES2023", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, skipLibCheck: true, types: ["node"], typeRoots: [join(ROOT, "node_modules", "@types")] }, files: ["consumer.ts"] };
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(tsconfig));
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module", private: true }));
    // Resolves "dispatcher" as an installed package would: node_modules/dispatcher → the copy.
    mkdirSync(join(dir, "node_modules"));
    symlinkSync(pkg, join(dir, "node_modules", "dispatcher"));
    symlinkSync(join(ROOT, "node_modules", "@types"), join(dir, "node_modules", "@types"));
    const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
    const result = await run(process.execPath, [tsc, "-p", dir], { cwd: dir, timeout: 120_000 }).then(
      () => ({ code: 0, out: "" }),
      (err: { code?: number; stdout?: string }) => ({ code: err.code ?? -1, out: err.stdout ?? "" }),
    );
    expect(result, result.out).toEqual({ code: 0, out: "" });
  }, 150_000);
});
