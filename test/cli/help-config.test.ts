// `dispatcher --help` and every command's --help exit 0 and describe it (the top level as a real process, each
// command's help through main(): a process per command would cost seconds and prove nothing more); `dispatcher
// config` prints the configuration in force with every secret hidden.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Command } from "commander";
import { buildFullProgram, main } from "../../src/cli.js";
import { createTestEnv, killStrayDispatchers, runDispatcher, type TestEnv } from "../support/process.js";

let t: TestEnv;
beforeAll(async () => {
  t = await createTestEnv({ label: "help" });
});
afterAll(async () => {
  await killStrayDispatchers();
  await t?.cleanup();
});

/** Command names listed under "Commands:" in a help text (without `help` itself). */
function listedCommands(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1] ?? "";
  return [...section.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1] as string).filter((c) => c !== "help");
}

describe("--help", () => {
  it("`dispatcher --help` and `dispatcher start --help` (real processes) exit 0; the first lists the commands", async () => {
    const [top, start] = await Promise.all([runDispatcher(["--help"], t.env), runDispatcher(["start", "--help"], t.env)]);
    expect(top.code, top.stderr).toBe(0);
    expect(top.stdout).toMatch(/^Usage: dispatcher \[options\] \[command\]/);
    const commands = listedCommands(top.stdout);
    expect(commands).toEqual(expect.arrayContaining(["start", "serve", "migrate", "health", "config", "admin"]));
    expect(commands.sort()).toEqual((await buildFullProgram(() => undefined)).commands.map((c) => c.name()).sort());
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toMatch(/^Usage: dispatcher start /);
  });

  it("an unknown command exits 2 with the help hint", async () => {
    const r = await runDispatcher(["strat"], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'strat'/);
  });

  describe("every command and subcommand (in process, through main())", () => {
    const written: string[] = [];
    afterEach(() => {
      vi.restoreAllMocks();
      written.length = 0;
    });

    /** Every command path, e.g. ["start"], ["admin"], ["admin", "create-key"]. */
    function paths(cmd: Command, prefix: string[] = []): string[][] {
      return cmd.commands.flatMap((c) => [[...prefix, c.name()], ...paths(c, [...prefix, c.name()])]);
    }

    it("`dispatcher <command…> --help` returns 0 and prints its usage and options", async () => {
      const all = paths(await buildFullProgram(() => undefined));
      expect(all).toContainEqual(["admin", "create-key"]);
      vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => (written.push(String(chunk)), true));
      for (const path of all) {
        written.length = 0;
        expect(await main([...path, "--help"]), path.join(" ")).toBe(0);
        const help = written.join("");
        expect(help, path.join(" ")).toMatch(new RegExp(`^Usage: dispatcher ${path.join(" ")}\\b`));
        expect(help, path.join(" ")).toContain("-h, --help");
      }
      // `serve` says which roles exist.
      written.length = 0;
      await main(["serve", "--help"]);
      expect(written.join("")).toMatch(/--role <roles>.*dispatcher/s);
    });
  });
});

describe("dispatcher config", () => {
  it("prints the configuration in force as JSON, secrets hidden", async () => {
    const secrets = { pw1: "pw-prov-4711", pw2: "pw-anl-4712", pw3: "pw-cred-4713", token: "dsp_tokenvalue-should-not-show-4714" };
    const r = await runDispatcher(
      ["config"],
      t.with({
        DISPATCHER_PROVISIONING_URL: `mysql://app:${secrets.pw1}@db.example:3307/prov`,
        DISPATCHER_ANALYTICS_URL: `mysql://app:${secrets.pw2}@db.example:3307/anl`,
        DISPATCHER_KM_DATABASE_URL: `mysql://km:${secrets.pw3}@db.example:3307/cred`,
        DISPATCHER_CLIENT_TOKEN: secrets.token,
      }),
    );
    expect(r.code, r.stderr).toBe(0);
    for (const s of Object.values(secrets)) expect(r.stdout).not.toContain(s);
    const shown = JSON.parse(r.stdout) as { server: { port: number }; provisioning: { url: string }; km: { databaseUrl: string }; client: { token: string } };
    expect(shown.server.port).toBe(t.ports.server);
    // Where the database is stays visible; only the password goes.
    expect(shown.provisioning.url).toBe("mysql://app:***@db.example:3307/prov");
    expect(shown.km.databaseUrl).toBe("mysql://km:***@db.example:3307/cred");
    expect(shown.client.token).toBe("(hidden)");
  });
});
