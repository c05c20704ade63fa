import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig, redactedConfig } from "../src/config.js";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function configFile(content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), "dispatcher-config-"));
  dirs.push(dir);
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify(content));
  return file;
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("gives every default with an empty environment", () => {
    const config = loadConfig({}, "");
    expect(config.server.port).toBe(3302);
    expect(config.bridge.port).toBe(3303);
    expect(config.km.port).toBe(2013);
    expect(config.server.reflection).toBe(true);
    expect(config.logging.dir).toBe("./var/logs");
  });

  it("binds loopback addresses in development mode and every address in production, unless configured", () => {
    const binds = (c: ReturnType<typeof loadConfig>) => [c.server.bind, c.bridge.bind, c.console.bind, c.km.bind, c.metrics.bind];
    expect(binds(loadConfig({}, ""))).toEqual(Array(5).fill("127.0.0.1"));
    expect(binds(loadConfig({ DISPATCHER_MODE: "production" }, ""))).toEqual(Array(5).fill("0.0.0.0"));
    const chosen = loadConfig({ DISPATCHER_SERVER_BIND: "0.0.0.0", DISPATCHER_METRICS_BIND: "::" }, "");
    expect(binds(chosen)).toEqual(["0.0.0.0", "127.0.0.1", "127.0.0.1", "127.0.0.1", "::"]);
  });

  it("lets the environment override the file, and the file override defaults", () => {
    const file = configFile({ server: { port: 4000, shutdownGraceMs: 5 }, mode: "production" });
    const config = loadConfig({ DISPATCHER_SERVER_PORT: "4001" }, file);
    expect(config.server.port).toBe(4001);
    expect(config.server.shutdownGraceMs).toBe(5);
    expect(config.server.reflection).toBe(false);
  });

  it("lists every bad field at once, naming where each value came from", () => {
    const file = configFile({ logging: { level: "loud" } });
    const list = problems(() => loadConfig({ DISPATCHER_SERVER_PORT: "abc", DISPATCHER_SERVER_SHUTDOWN_GRACE_MS: "-1" }, file));
    expect(list).toHaveLength(3);
    expect(list.join("\n")).toContain("DISPATCHER_SERVER_PORT");
    expect(list.join("\n")).toContain("DISPATCHER_SERVER_SHUTDOWN_GRACE_MS");
    expect(list.join("\n")).toContain(`${file}: logging.level`);
  });

  it("reports keys of a config file that no field reads", () => {
    const file = configFile({ server: { prot: 1 }, bogus: true });
    expect(problems(() => loadConfig({}, file))).toEqual([
      `${file}: unknown key "server.prot" (see the configuration reference)`,
      `${file}: unknown key "bogus" (see the configuration reference)`,
    ]);
  });

  it("never shows a secret value in a problem or in the redacted configuration", () => {
    const list = problems(() => loadConfig({ DISPATCHER_PROVISIONING_URL: "mysql://u:hunter2@db" }, ""));
    expect(list.join("\n")).not.toContain("hunter2");
    const config = loadConfig({ DISPATCHER_PROVISIONING_URL: "mysql://u:hunter2@db:3306/p", DISPATCHER_CLIENT_TOKEN: "dsp_secret" }, "");
    const shown = JSON.stringify(redactedConfig(config));
    expect(shown).not.toContain("hunter2");
    expect(shown).not.toContain("dsp_secret");
    expect(shown).toContain("mysql://u:***@db:3306/p");
  });

  it("loads the process's own configuration once: later asks with the same sources get copies of that load", () => {
    const file = configFile({ server: { port: 4402 } });
    const stamp = 1_700_000_000; // whole seconds: set exactly, whatever the file system's precision
    utimesSync(file, stamp, stamp);
    const first = loadConfig(process.env, file);
    expect(first.server.port).toBe(4402);
    // The same size and modification time but content that no longer parses: a second read would fail.
    writeFileSync(file, "{ not json }".padEnd(JSON.stringify({ server: { port: 4402 } }).length));
    utimesSync(file, stamp, stamp);
    first.server.port = 1;
    const again = loadConfig(process.env, file);
    expect(again.server.port).toBe(4402);
    expect(again).not.toBe(first);
    // Another variable, or another environment than the process's, is another load.
    const saved = process.env.DISPATCHER_SERVER_PORT;
    process.env.DISPATCHER_SERVER_PORT = "4403";
    try {
      expect(() => loadConfig(process.env, file)).toThrow(ConfigError);
    } finally {
      if (saved === undefined) delete process.env.DISPATCHER_SERVER_PORT;
      else process.env.DISPATCHER_SERVER_PORT = saved;
    }
    expect(() => loadConfig({}, file)).toThrow(ConfigError);
  });
});
