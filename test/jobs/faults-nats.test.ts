// nats-server restarted during a run of 500 jobs, with real processes: a dispatcher, a worker and a monitor on a
// PRIVATE nats-server (its own port and store directory). 500 diagnostic jobs are submitted over gRPC; while they are
// being created and run, nats-server is killed (SIGKILL) and started again on the same port and store. Every job
// reaches SUCCEEDED within a bounded time and none takes effect twice (at most — in fact exactly — one
// diagnostic_effects row per job).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { DiagnosticOutcome } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { createTestApiKey, createTestEnv, killStrayDispatchers, spawnDispatcher, startDispatcher, startPrivateNats, type DispatcherProcess, type PrivateNats, type TestEnv } from "../support/process.js";
import { openJobsDb, SMALL_POOLS, type JobsDb } from "./faults-support.js";
import { sleep, until } from "../support/poll.js";

const JOBS = 500;
/** Calls in flight at once while submitting. */
const IN_FLIGHT = 16;
/** Submitted jobs before nats-server is killed; the rest are submitted while it is down and after it is back. */
const KILL_AFTER = 150;
const OUTAGE_MS = 1_500;

let nats: PrivateNats;
let env: TestEnv;
let h: JobsDb;
let client: DispatcherClients;
const procs: Record<string, DispatcherProcess> = {};

beforeAll(async () => {
  nats = await startPrivateNats();
  env = await createTestEnv({
    label: "fnats",
    natsUrl: nats.url,
    migrate: true,
    env: {
      ...SMALL_POOLS,
      DISPATCHER_LOGGING_LEVEL: "info",
      DISPATCHER_JOBS_RECONCILE_INTERVAL_MS: "500",
      DISPATCHER_JOBS_REPUBLISH_AFTER_MS: "4000",
      DISPATCHER_JOBS_LEASE_MS: "4000",
    },
  });
  h = openJobsDb(env);
  const key = await createTestApiKey(env.urls.provisioning, { role: "admin" });
  procs.dispatcher = await startDispatcher(env, ["serve", "--role", "dispatcher"], { timeoutMs: 40_000 });
  procs.worker = spawnDispatcher(["serve", "--role", "worker"], env.env);
  procs.monitor = spawnDispatcher(["serve", "--role", "monitor"], env.env);
  await Promise.all([procs.worker.waitForOutput(/worker consuming jobs/, 40_000), procs.monitor.waitForOutput(/monitor running/, 40_000)]);
  client = createDispatcherClients({ address: env.address, token: key.secret, retry: false });
}, 90_000);

afterAll(async () => {
  client?.close();
  await killStrayDispatchers();
  await h?.close();
  await env?.cleanup();
  await nats?.stop();
});

describe("nats-server restarted during a run of 500 jobs", () => {
  it("every job reaches SUCCEEDED and none takes effect twice", async () => {
    let submitted = 0;
    let next = 0;
    const failures: string[] = [];
    const submitOne = async (i: number): Promise<void> => {
      const request = { outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED, sleep: { seconds: "0", nanos: 50_000_000 }, note: `n${i}`, idempotencyKey: `nats-${i}` };
      // The API writes to MariaDB only; NATS being down must not fail a create (the relay catches up).
      for (let tries = 1; ; tries++) {
        try {
          await client.jobs.runDiagnosticJob(request, { deadlineMs: 10_000 });
          submitted++;
          return;
        } catch (err) {
          if (tries >= 3) {
            failures.push(`job ${i}: ${String(err)}`);
            return;
          }
        }
      }
    };
    const submitting = Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < JOBS) await submitOne(next++);
      }),
    );

    await until(() => submitted >= KILL_AFTER, 30_000, `${KILL_AFTER} jobs submitted`);
    await nats.kill();
    const submittedAtKill = submitted;
    const atKill = await h.countStates();
    await sleep(OUTAGE_MS);
    const submittedInOutage = submitted - submittedAtKill;
    await nats.restart();
    await submitting;
    const t0 = Date.now();
    expect(failures).toEqual([]);
    expect(submitted).toBe(JOBS);
    // The restart happened during the run: jobs were still to be created or run when the server died, and the API
    // kept taking jobs while NATS was down (it commits to MariaDB; the relay publishes later).
    expect(atKill.SUCCEEDED ?? 0).toBeLessThan(JOBS);
    expect(submittedInOutage).toBeGreaterThan(0);

    let states: Record<string, number> = {};
    await until(
      async () => {
        states = await h.countStates();
        return states.SUCCEEDED === JOBS;
      },
      40_000,
      "every job to succeed",
      () => JSON.stringify(states),
    );
    const recoveredMs = Date.now() - t0;
    expect(states).toEqual({ SUCCEEDED: JOBS });

    // Exactly one effect per job: none twice, none missing.
    const twice = await h.db.$queryRaw<{ jobId: string; n: bigint }[]>`SELECT job_id AS jobId, COUNT(*) AS n FROM diagnostic_effects GROUP BY job_id HAVING COUNT(*) > 1`;
    expect(twice).toEqual([]);
    const effects = await h.db.$queryRaw<{ n: bigint }[]>`SELECT COUNT(DISTINCT e.job_id) AS n FROM diagnostic_effects e JOIN jobs j ON j.id = e.job_id`;
    expect(Number(effects[0]?.n)).toBe(JOBS);
    // Each job's effect belongs to its winning attempt.
    const mismatched = await h.db.$queryRaw<{ n: bigint }[]>`SELECT COUNT(*) AS n FROM diagnostic_effects e JOIN jobs j ON j.id = e.job_id WHERE e.attempt <> j.attempt`;
    expect(Number(mismatched[0]?.n)).toBe(0);

    // The processes noticed the outage and came back (rather than the test missing it).
    for (const name of ["dispatcher", "worker", "monitor"] as const) {
      const p = procs[name] as DispatcherProcess;
      expect(p.running, `${name} still runs\n${p.output()}`).toBe(true);
      expect(p.stdout, `${name} saw the disconnect`).toContain("disconnected from NATS");
      expect(p.stdout, `${name} reconnected`).toContain("reconnected to NATS");
    }
    console.info(`nats restart: ${JOBS} jobs SUCCEEDED ${recoveredMs} ms after the last submission; ${submittedInOutage} submitted during the outage; at the kill: ${JSON.stringify(atKill)}`);
  }, 110_000);
});
