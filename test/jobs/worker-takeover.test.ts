// A worker process killed with SIGKILL while it runs jobs, with the default lease and no monitor: the dead worker's
// messages come back once its lease has run out (the consumer's ack wait follows the lease), the surviving worker (in
// this process) takes each job over, and every job ends with one effect — within a few seconds of the lease.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { startWorker, type RunningWorker } from "../../src/jobs/worker.js";
import { createTestEnv, killStrayDispatchers, spawnDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";
import { diagnostic, openExecHarness, type ExecHarness } from "./exec-support.js";
import { SMALL_POOLS } from "./faults-support.js";
import { until } from "../support/poll.js";

const JOBS = 40;
const JOB_MS = 3_000;

describe("a worker process killed with SIGKILL, default lease, no monitor", () => {
  let env: TestEnv;
  let h: ExecHarness;
  const workers: DispatcherProcess[] = [];
  let survivor: RunningWorker | undefined;
  const leaseMs = loadConfig({}, "").jobs.leaseMs;

  beforeAll(async () => {
    env = await createTestEnv({ label: "wtake", migrate: true, env: { ...SMALL_POOLS, DISPATCHER_JOBS_WORKER_CONCURRENCY: "8", DISPATCHER_LOGGING_LEVEL: "info" } });
    h = await openExecHarness("wtake", { env, leaseMs });
  }, 60_000);

  afterAll(async () => {
    await survivor?.stop(1_000);
    await killStrayDispatchers();
    await h?.close();
    await env?.cleanup();
  });

  it("the default lease is short (at most 10 s)", () => {
    expect(leaseMs).toBeLessThanOrEqual(10_000);
  });

  it("the survivor takes the dead worker's jobs over about one lease after the kill: each runs once", async () => {
    // The victim is a process of its own; the survivor runs here, with the same (default) lease.
    const victim = spawnDispatcher(["serve", "--role", "worker"], env.env);
    workers.push(victim);
    // Start-up is slow on a machine that runs other tests beside this one.
    await victim.waitForOutput(/worker consuming jobs/, 240_000);
    h.config.jobs.workerConcurrency = 8;
    survivor = await startWorker({ resources: h.resources("survivor"), catalog: h.catalog });
    const ids: string[] = [];
    for (let i = 0; i < JOBS; i++) ids.push(await h.insertJob({ payload: diagnostic({ sleepMs: JOB_MS }) }));
    for (const id of ids) await h.publish(id);

    // Both workers hold running jobs; kill the one that holds the first job's lease.
    // Kill the victim once it holds running jobs.
    const victimOwner = await until(async () => {
      const rows = await h.db.$queryRaw<{ owner: string }[]>`
        SELECT DISTINCT lease_owner AS owner FROM jobs WHERE state = 'RUNNING' AND lease_owner LIKE ${`worker-${victim.pid}-%`}`;
      return rows[0]?.owner;
    }, 120_000, "the victim to run jobs", () => victim.output());
    const orphans = await h.db.$queryRaw<{ id: string }[]>`SELECT id FROM jobs WHERE state = 'RUNNING' AND lease_owner = ${victimOwner}`;
    expect(orphans.length).toBeGreaterThan(0);
    await victim.kill9();
    const killedAt = Date.now();

    // Every job ends; the orphans within the lease plus a few seconds (and their own run time) of the kill.
    await until(async () => ((await h.db.$queryRaw<{ n: bigint }[]>`SELECT COUNT(*) AS n FROM jobs WHERE state IN ('QUEUED', 'RUNNING')`)[0]?.n === 0n ? true : undefined), 90_000, "every job to end");
    const ended = await h.db.$queryRaw<{ id: string; state: string; endedMs: number }[]>`
      SELECT id, state, UNIX_TIMESTAMP(ended_at) * 1000 AS endedMs FROM jobs WHERE id IN (${orphans.map((o) => o.id)})`;
    // A lease, the job's own run time, and room for a machine shared with other tests.
    const limitMs = leaseMs + JOB_MS + 10_000;
    for (const row of ended) {
      expect(row.state).toBe("SUCCEEDED");
      expect(Number(row.endedMs) - killedAt, `orphan ${row.id} ended that long after the kill`).toBeLessThan(limitMs);
    }
    const states = await h.db.$queryRaw<{ state: string; n: bigint }[]>`SELECT state, COUNT(*) AS n FROM jobs GROUP BY state`;
    expect(Object.fromEntries(states.map((s) => [s.state, Number(s.n)]))).toEqual({ SUCCEEDED: JOBS });
    const effects = await h.db.$queryRaw<{ jobId: string; n: bigint }[]>`SELECT job_id AS jobId, COUNT(*) AS n FROM diagnostic_effects GROUP BY job_id`;
    expect(effects).toHaveLength(JOBS);
    expect(effects.every((e) => e.n === 1n)).toBe(true);

  }, 420_000);
});
