// The command line loads what a command uses and nothing else: `--help` and a client command never load a role, the
// databases, KM, the drivers, the guest program or the telemetry SDK; `--help` not even the configuration schema or
// the client. Checked on the modules the real process loads (a loader hook lists them), not on timings, which a shared
// machine cannot promise.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildFullProgram, buildProgram, COMMAND_GROUPS, INLINE_COMMANDS } from "../../src/cli.js";
import { SERVICE_MODULES, STREAMING_METHODS } from "../../src/client/lazy.js";
import { generatedIdempotentMethods, idempotentMethods, loadDescriptorSet } from "../../src/client/service-config.js";
import type { ServiceKey } from "../../src/client/types.js";
import { BIN, cleanEnv, freePort, ROOT } from "../support/process.js";

const LOGGER = join(ROOT, "test", "cli", "fixtures", "module-log.mjs");

/** What `dispatcher <args>` loaded: paths under src/ and package names under node_modules/. */
function loaded(args: string[], env: Record<string, string> = {}): Promise<{ code: number; modules: string[]; stderr: string }> {
  return new Promise((resolve) => {
    // From src/ always: the rules below name modules by their source paths.
    execFile(process.execPath, ["--import", LOGGER, BIN, ...args], { cwd: ROOT, env: cleanEnv({ DISPATCHER_FROM_SOURCE: "1", ...env }), timeout: 120_000 }, (err, _stdout, stderr) => {
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

  it("`users ls` loads the configuration, the client and the users' service only: no other command group or service, no role, database, driver or telemetry SDK", async () => {
    const closed = await freePort();
    const r = await loaded(["users", "ls"], { DISPATCHER_CLIENT_ADDRESS: `127.0.0.1:${closed}`, DISPATCHER_CLIENT_TOKEN: "dsp_not-a-key" });
    // Nobody listens there: UNAVAILABLE, exit 2, after the client loaded and called.
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/UNAVAILABLE/);
    expect(r.modules).toContain("src/client/lazy.ts");
    expect(r.modules).toContain("zod");
    expect(r.modules).toContain("src/gen/proto/dispatcher/v1/iam.ts");
    expectNone(r.modules, [...HEAVY, /^src\/gen\/proto\/dispatcher\/v1\/(?!iam\.ts$)/, /^src\/commands\/(?!iam\.ts$|client-command\.ts$)/, /^src\/client\/services\/(?!iam\.ts$)/, /^src\/client\/index\.ts$/]);
  }, 150_000);
});

describe("what the lazy parts must agree with", () => {
  it("each command group defines exactly the top-level commands COMMAND_GROUPS says, and together with the inline ones every command there is", async () => {
    for (const group of COMMAND_GROUPS) {
      const alone = buildProgram(() => undefined, [await group.load()]);
      const defined = alone.commands.map((c) => c.name()).filter((n) => !INLINE_COMMANDS.includes(n));
      expect(defined.sort(), group.commands.join(",")).toEqual([...group.commands].sort());
    }
    const all = (await buildFullProgram(() => undefined)).commands.map((c) => c.name());
    expect(all.sort()).toEqual([...new Set([...INLINE_COMMANDS, ...COMMAND_GROUPS.flatMap((g) => g.commands)])].sort());
  });

  it("the lazy client knows each service's streaming methods before loading it, and the generated retry list is the descriptor set's", async () => {
    for (const key of Object.keys(SERVICE_MODULES) as ServiceKey[]) {
      const spec = (await SERVICE_MODULES[key]()) as { definition: Record<string, { responseStream: boolean }> };
      const streaming = Object.entries(spec.definition).filter(([, m]) => m.responseStream).map(([name]) => name);
      expect(streaming, key).toEqual([...(STREAMING_METHODS[key] ?? [])]);
    }
    expect(generatedIdempotentMethods()).toEqual(idempotentMethods(loadDescriptorSet()));
  });
});
