// Health while the database is gone: the probe's verdicts (fake probe), and a dispatcher process on a private MariaDB
// that is SIGKILLed: grpc.health.v1 turns NOT_SERVING within a few seconds, calls get UNAVAILABLE at once (never INTERNAL,
// never a deadline), and
// health is SERVING again once MariaDB is back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkHealth, type HealthStatus } from "../../src/client/health.js";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { DispatcherError } from "../../src/client/errors.js";
import { DATABASES } from "../../src/db/databases.js";
import { migrate } from "../../src/db/migrate.js";
import { DiagnosticOutcome } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { watchStoreHealth } from "../../src/rpc/store-health.js";
import { startPrivateMariadb, type PrivateMariadb } from "../support/mariadb.js";
import { until } from "../support/poll.js";
import { createTestApiKey, createTestEnv, killStrayDispatchers, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";
import { SMALL_POOLS } from "../jobs/faults-support.js";

const quiet = { info: () => undefined };

describe("watchStoreHealth", () => {
  it("reports the store lost after failAfter failed probes in a row, and back at the first answer", async () => {
    let up = true;
    const changes: (string | null)[] = [];
    const h = watchStoreHealth({ name: "the db", probe: async () => (up ? undefined : Promise.reject(new Error("connection refused"))), onChange: (r) => changes.push(r), log: quiet, everyMs: 10, failAfter: 3 });
    try {
      await new Promise((r) => setTimeout(r, 60));
      expect(changes).toEqual([]);
      up = false;
      await until(async () => h.down, 2_000, "down");
      expect(changes).toEqual([expect.stringMatching(/^the db is unavailable \(connection refused\); calls get UNAVAILABLE/)]);
      up = true;
      await until(async () => !h.down, 2_000, "up");
      expect(changes.at(-1)).toBeNull();
      expect(changes).toHaveLength(2);
    } finally {
      h.stop();
    }
  });

  it("counts a probe that hangs as failed", async () => {
    const changes: (string | null)[] = [];
    const h = watchStoreHealth({ name: "the db", probe: () => new Promise(() => undefined), onChange: (r) => changes.push(r), log: quiet, everyMs: 10, timeoutMs: 30, failAfter: 2 });
    try {
      await until(async () => h.down, 2_000, "down");
      expect(changes[0]).toMatch(/no answer within 30 ms/);
    } finally {
      h.stop();
    }
  });
});

describe("a dispatcher whose MariaDB is SIGKILLed", () => {
  let mdb: PrivateMariadb;
  let env: TestEnv;
  let dispatcher: DispatcherProcess;
  let client: DispatcherClients;

  beforeAll(async () => {
    mdb = await startPrivateMariadb({ label: "storehealth" });
    for (const db of DATABASES.filter((d) => d.name !== "credentials")) await migrate(mdb.url(`sh_${db.name}`), db.migrationsDir);
    env = await createTestEnv({
      label: "storehealth",
      env: { ...SMALL_POOLS, DISPATCHER_PROVISIONING_URL: mdb.url("sh_provisioning"), DISPATCHER_ANALYTICS_URL: mdb.url("sh_analytics"), DISPATCHER_LOGGING_LEVEL: "info" },
    });
    const key = await createTestApiKey(mdb.url("sh_provisioning"));
    dispatcher = await startDispatcher(env, ["serve", "--role", "dispatcher"], { timeoutMs: 120_000 });
    client = createDispatcherClients({ address: env.address, token: key.secret, retry: false });
  }, 240_000);

  afterAll(async () => {
    client?.close();
    await dispatcher?.stop().catch(() => undefined);
    await killStrayDispatchers();
    await env?.cleanup().catch(() => undefined);
    await mdb?.stop();
  });

  const health = (): Promise<HealthStatus> => checkHealth(env.address, "", 3_000);
  const run = () =>
    client.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED, note: "health", idempotencyKey: `health-${Date.now()}` }, { deadlineMs: 10_000 });

  it("goes NOT_SERVING while the database is gone, answers UNAVAILABLE, and SERVING once it is back", async () => {
    expect(await health()).toBe("SERVING");
    expect((await run()).job?.id).toBeTruthy();

    await mdb.kill();
    const lostAt = Date.now();
    await until(async () => (await health()) === "NOT_SERVING", 30_000, "health NOT_SERVING");
    const notServingAfterMs = Date.now() - lostAt;
    // The health service itself answers (it needs no database); every other call gets UNAVAILABLE at once, not
    // after the pools' connection timeouts.
    const t0 = Date.now();
    const err = await run().then(
      () => undefined,
      (e: unknown) => e,
    );
    const answeredInMs = Date.now() - t0;
    expect(err).toBeInstanceOf(DispatcherError);
    expect((err as DispatcherError).codeName).toBe("UNAVAILABLE");
    expect((err as DispatcherError).message).toMatch(/the database is unavailable; retry shortly/);
    expect(answeredInMs).toBeLessThan(2_000);
    expect(dispatcher.running).toBe(true);
    await dispatcher.waitForOutput(/health reports NOT_SERVING/, 5_000);

    await mdb.restart();
    await until(async () => (await health()) === "SERVING", 60_000, "health SERVING again");
    expect((await run()).job?.id).toBeTruthy();
    console.info(`NOT_SERVING ${notServingAfterMs} ms after the database was killed; a call answered UNAVAILABLE in ${answeredInMs} ms`);
    // Probes every second, two failures in a row, each waiting at most 2 s: well within 10 s even on a loaded machine.
    expect(notServingAfterMs).toBeLessThan(10_000);
  }, 240_000);
});
