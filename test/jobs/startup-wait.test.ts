// A role started before its stores: `dispatcher serve --role worker` with a private MariaDB and a private nats-server
// both down keeps running, says what it waits for (with backoff), and starts consuming once each comes back; then a
// SIGTERM stops it with exit 0.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATABASES } from "../../src/db/databases.js";
import { migrate } from "../../src/db/migrate.js";
import { startPrivateMariadb, type PrivateMariadb } from "../support/mariadb.js";
import { createTestEnv, killStrayDispatchers, spawnDispatcher, startPrivateNats, type PrivateNats, type TestEnv } from "../support/process.js";
import { SMALL_POOLS } from "./faults-support.js";

describe("a worker started while MariaDB and NATS are down", () => {
  let mdb: PrivateMariadb;
  let nats: PrivateNats;
  let env: TestEnv;

  beforeAll(async () => {
    mdb = await startPrivateMariadb({ label: "waitstart" });
    for (const db of DATABASES.filter((d) => d.name !== "credentials")) await migrate(mdb.url(`w_${db.name}`), db.migrationsDir);
    await mdb.kill();
    nats = await startPrivateNats();
    await nats.kill();
    env = await createTestEnv({
      label: "waitstart",
      natsUrl: nats.url,
      env: { ...SMALL_POOLS, DISPATCHER_PROVISIONING_URL: mdb.url("w_provisioning"), DISPATCHER_ANALYTICS_URL: mdb.url("w_analytics"), DISPATCHER_LOGGING_LEVEL: "info" },
    });
  }, 120_000);

  afterAll(async () => {
    await killStrayDispatchers();
    await env?.cleanup().catch(() => undefined);
    await nats?.stop();
    await mdb?.stop();
  });

  it("waits for each with backoff, saying so, then runs", async () => {
    const worker = spawnDispatcher(["serve", "--role", "worker"], env.env);
    // Start-up is slow on a machine that runs other tests beside this one.
    await worker.waitForOutput(/"attempt":3,"retryInMs":\d+,"msg":"waiting for MariaDB: MariaDB is not reachable at 127\.0\.0\.1:\d+/, 240_000);
    expect(worker.running).toBe(true);
    const retries = worker.logLines().filter((l) => String(l.msg).startsWith("waiting for MariaDB")).map((l) => Number(l.retryInMs));
    // Backoff: the pauses grow (each is jittered within the upper half of its doubling ceiling).
    expect(retries[2]).toBeGreaterThan(retries[0] as number);

    await mdb.restart();
    await worker.waitForOutput(/MariaDB is reachable; continuing/, 120_000);
    await worker.waitForOutput(/waiting for NATS: NATS is not reachable at nats:\/\/127\.0\.0\.1:\d+/, 120_000);
    expect(worker.running).toBe(true);

    await nats.restart();
    await worker.waitForOutput(/NATS is reachable; continuing/, 120_000);
    await worker.waitForOutput(/worker consuming jobs/, 120_000);
    expect(await worker.stop("SIGTERM", 60_000)).toMatchObject({ code: 0 });
  }, 600_000);
});
