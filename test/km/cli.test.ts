// KM from the command line, as real processes: refusing to start without a valid master key (exit 2, a clear message,
// the key never echoed), production's stricter rules, `km generate-key`, and the quick start — `dispatcher start` in
// development mode writes its own certificates and keys and serves KM over mutual TLS with no manual step.
import { randomBytes, X509Certificate } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createKmClientFromConfig } from "../../src/km/client.js";
import { devPaths } from "../../src/km/dev-files.js";
import { createTestEnv, killStrayDispatchers, runDispatcher, startDispatcher, type TestEnv } from "../support/process.js";

let t: TestEnv;

beforeAll(async () => {
  t = await createTestEnv({ label: "kmcli" });
});

afterAll(async () => {
  await killStrayDispatchers();
  await t?.cleanup();
});

describe("dispatcher serve --role km refuses to start", () => {
  it("without a master key: exit code 2 and a message saying what to set and how to make one", async () => {
    const r = await runDispatcher(["serve", "--role", "km"], t.env);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain("encryption.masterKeys is not set: KM refuses to start without a master key");
    expect(r.stderr).toContain("dispatcher km generate-key");
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it("with a 16-byte master key: exit code 2, the size named, the key not echoed", async () => {
    const short = randomBytes(16).toString("base64");
    const r = await runDispatcher(["serve", "--role", "km"], t.with({ DISPATCHER_ENCRYPTION_MASTER_KEYS: `1:${short}` }));
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain("encryption.masterKeys version 1 is 16 bytes; a key must be 32 random bytes");
    expect(r.stderr + r.stdout).not.toContain(short);
  });

  it("in production without the channel key, or with plaintext transport: exit code 2", async () => {
    const key = (await runDispatcher(["km", "generate-key"], t.env)).stdout.trim();
    const noChannel = await runDispatcher(["serve", "--role", "km"], t.with({ DISPATCHER_MODE: "production", DISPATCHER_ENCRYPTION_MASTER_KEYS: key }));
    expect(noChannel.code, noChannel.stderr).toBe(2);
    expect(noChannel.stderr).toContain("encryption.kmChannelKey is not set: production requires the KM channel key");
    expect(noChannel.stderr).toContain("km.tlsCa is not set");
    expect(noChannel.stderr).not.toContain(key.split(":")[1] as string);
    const plain = await runDispatcher(["serve", "--role", "km"], t.with({ DISPATCHER_MODE: "production", DISPATCHER_KM_PLAINTEXT: "true" }));
    expect(plain.code).toBe(2);
    expect(plain.stderr).toContain("km.plaintext: plaintext KM transport is for development mode only");
  });
});

describe("dispatcher km generate-key", () => {
  it("prints <version>:<base64 of 32 random bytes> and nothing else on stdout", async () => {
    const [a, b] = await Promise.all([runDispatcher(["km", "generate-key"], t.env), runDispatcher(["km", "generate-key", "--key-version", "7"], t.env)]);
    expect(a.code).toBe(0);
    const m = /^1:([A-Za-z0-9+/]{43}=)\n$/.exec(a.stdout);
    expect(m, a.stdout).not.toBeNull();
    expect(Buffer.from(m?.[1] as string, "base64")).toHaveLength(32);
    expect(b.stdout).toMatch(/^7:[A-Za-z0-9+/]{43}=\n$/);
    expect(a.stdout).not.toBe(b.stdout.replace(/^7/, "1"));
  });
});

describe("the quick start", () => {
  it("`dispatcher start` in development mode writes the CA, certificates, master and channel keys, and serves KM over mutual TLS", async () => {
    const p = await startDispatcher(t, ["start"], { timeoutMs: 60_000 });
    try {
      expect(p.stderr).toContain("wrote development KM certificates");
      expect(p.stderr).toContain("generated a DEVELOPMENT master key");
      const d = devPaths(t.dir);
      for (const file of [d.ca, d.serverCert, d.clientCert("worker"), d.clientCert("dispatcher"), d.masterKeys, d.channelKey]) expect(existsSync(file), file).toBe(true);
      for (const secret of [d.caKey, d.serverKey, d.clientKey("worker"), d.masterKeys, d.channelKey]) expect(statSync(secret).mode & 0o077, secret).toBe(0);
      const server = new X509Certificate(readFileSync(d.serverCert));
      expect(server.verify(new X509Certificate(readFileSync(d.ca)).publicKey)).toBe(true);
      expect(p.stdout).toContain("using a development KM channel key");

      const config = loadConfig(t.env, "");
      const dispatcher = createKmClientFromConfig(config, "dispatcher");
      const worker = createKmClientFromConfig(config, "worker");
      try {
        const stored = await dispatcher.storeCredential({ accountId: "acct-qs", type: "local", fields: { token: "quick-start-secret" } });
        expect((await worker.getCredential({ id: stored.id, accountId: "acct-qs" })).fields).toEqual({ token: "quick-start-secret" });
      } finally {
        dispatcher.close();
        worker.close();
      }
      expect(p.stdout).not.toContain("quick-start-secret");
      expect(p.stdout).not.toContain(readFileSync(d.masterKeys, "utf8").trim().split("\n").pop()?.split(":")[1] as string);
    } finally {
      const exit = await p.stop("SIGTERM");
      expect(exit, p.output()).toEqual({ code: 0, signal: null });
    }
  }, 90_000);
});
