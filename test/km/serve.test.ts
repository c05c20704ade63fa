// `dispatcher serve --role km` needs only KM's own credentials database: it starts, serves and stops cleanly while the
// provisioning database and NATS are unreachable (their URLs point at closed ports), whereas a role that needs them
// refuses to start with the same settings.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { withDatabase } from "../../src/db/url.js";
import { createKmClientFromConfig } from "../../src/km/client.js";
import { ensureDevCerts } from "../../src/km/dev-files.js";
import { generateKeyText } from "../../src/km/keys.js";
import { createTestEnv, freePort, killStrayDispatchers, runDispatcher, spawnDispatcher, type TestEnv } from "../support/process.js";

let t: TestEnv;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  t = await createTestEnv({ label: "kmonly" });
  ensureDevCerts(t.dir);
  // Nothing listens on these ports: any attempt to reach the provisioning database or NATS fails.
  const [closedDb, closedNats] = [await freePort(), await freePort()];
  env = t.with({
    DISPATCHER_PROVISIONING_URL: withDatabase(`mariadb://root@127.0.0.1:${closedDb}/`, "unreachable"),
    DISPATCHER_ANALYTICS_URL: withDatabase(`mariadb://root@127.0.0.1:${closedDb}/`, "unreachable_anl"),
    DISPATCHER_MQ_URL: `nats://127.0.0.1:${closedNats}`,
    DISPATCHER_ENCRYPTION_MASTER_KEYS: generateKeyText(1),
    DISPATCHER_LOCAL_CLOUD_ENABLED: "false",
  });
});

afterAll(async () => {
  await killStrayDispatchers();
  await t?.cleanup();
});

describe("dispatcher serve --role km", () => {
  it("starts, serves and stops with the provisioning database and NATS unreachable", async () => {
    const p = spawnDispatcher(["serve", "--role", "km"], env);
    try {
      await p.waitForOutput(/KM serving/, 30_000);
      const config = loadConfig(env, "");
      const dispatcher = createKmClientFromConfig(config, "dispatcher");
      const worker = createKmClientFromConfig(config, "worker");
      try {
        const stored = await dispatcher.storeCredential({ accountId: "acct-kmonly", type: "local", fields: { token: "km-only-secret" } });
        expect((await worker.getCredential({ id: stored.id, accountId: "acct-kmonly" })).fields).toEqual({ token: "km-only-secret" });
      } finally {
        dispatcher.close();
        worker.close();
      }
      expect(p.output()).not.toMatch(/connecting to MariaDB and NATS|ECONNREFUSED|CONNECTION_REFUSED/);
    } finally {
      const exit = await p.stop("SIGTERM");
      expect(exit, p.output()).toEqual({ code: 0, signal: null });
    }
  }, 60_000);

  it("while a role that needs them refuses to start with the same settings", async () => {
    // Bounded: by default a role waits for its stores for as long as they take to come.
    const r = await runDispatcher(["serve", "--role", "km,worker"], { ...env, DISPATCHER_STARTUP_WAIT_FOR_STORES_MS: "2000" }, 30_000);
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.signal).toBeNull();
  }, 40_000);
});
