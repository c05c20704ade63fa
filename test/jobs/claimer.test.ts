// Workers claiming queued jobs from MariaDB when JetStream delivers nothing, on the real MariaDB and NATS: jobs whose
// messages never come run once within about the claim delay; a consumer that delivers is never competed with; a job
// both claimed and delivered runs its effect once; two workers sweeping at once run each job once, quietly.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { claimableJobs, claimQuery } from "../../src/jobs/claimer.js";
import { CLAIMED_NOTE } from "../../src/jobs/execution.js";
import { startWorker, type RunningWorker } from "../../src/jobs/worker.js";
import { diagnostic, openExecHarness, types, type ExecHarness } from "./exec-support.js";
import { until } from "../support/poll.js";

const CLAIM_AFTER_MS = 400;

let h: ExecHarness;
const workers: RunningWorker[] = [];
beforeAll(async () => {
  h = await openExecHarness("claimer", { leaseMs: 3_000 });
  h.config.jobs.claimAfterMs = CLAIM_AFTER_MS;
});
afterEach(async () => {
  await stopAll();
  h.config.jobs.claimAfterMs = CLAIM_AFTER_MS;
  h.config.jobs.workerConcurrency = 8;
});
afterAll(async () => {
  await h?.close();
});

async function worker(name: string): Promise<RunningWorker> {
  const w = await startWorker({ resources: h.resources(name), catalog: h.catalog });
  workers.push(w);
  return w;
}

async function stopAll(): Promise<void> {
  await Promise.all(workers.splice(0).map((w) => w.stop(1_000)));
}

const claimedStarts = async (ids: string[]): Promise<number> => {
  const [row] = await h.sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM job_events WHERE job_id IN (${ids}) AND type = 'started' AND message LIKE ${`%${CLAIMED_NOTE}`}`;
  return Number(row?.n ?? 0);
};

describe("claiming queued jobs from the database", () => {
  it("runs jobs whose messages never come, once each, within about the claim delay", async () => {
    const w = await worker("alone");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await h.insertJob({ payload: diagnostic({ sleepMs: 20 }) }));
    const t0 = Date.now();
    for (const id of ids) await h.waitForState(id, ["SUCCEEDED"], 10_000);
    // Due after the delay, claimed at the next tick after it: well within three delays.
    expect(Date.now() - t0).toBeLessThan(3 * CLAIM_AFTER_MS + 500);
    for (const id of ids) {
      expect(await h.effects(id)).toEqual([{ attempt: 1 }]);
      const events = await h.events(id);
      expect(types(events).filter((t) => t !== "progress")).toEqual(["created", "started", "succeeded"]);
      expect(events[1]).toMatchObject({ actor: w.owner, message: `attempt 1 of 5${CLAIMED_NOTE}` });
    }
    expect(w.claimed).toBe(5);
    expect(h.lines.filter((l) => l.msg.includes("claiming queued jobs from the database"))).toHaveLength(1);
  });

  it("claims a job one delay after its creation, also when the last sweep found it not yet due", async () => {
    h.config.jobs.claimAfterMs = 1_000;
    await worker("prompt");
    const waits: number[] = [];
    for (let round = 0; round < 3; round++) {
      // Idle past a few empty sweeps, so that the job appears at any point of the sweeps' rhythm.
      await new Promise((r) => setTimeout(r, 1_300 + round * 350));
      const id = await h.insertJob({ payload: diagnostic() });
      await h.waitForState(id, ["SUCCEEDED"], 10_000);
      const [row] = await h.sql.query<{ ms: bigint }>`
        SELECT TIMESTAMPDIFF(MICROSECOND, j.created_at, e.created_at) DIV 1000 AS ms FROM jobs j JOIN job_events e ON e.job_id = j.id AND e.type = 'started'
         WHERE j.id = ${id}`;
      waits.push(Number(row?.ms));
    }
    // The delay, a tick (a quarter of it) and the start's commit; not up to two delays.
    expect(Math.max(...waits), `waits ${waits.join(", ")} ms`).toBeLessThan(1_650);
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(1_000);
  });

  it("claims nothing while deliveries flow, even from a backlog older than the delay", async () => {
    h.config.jobs.workerConcurrency = 4;
    // The default delay: a busy machine's pause in deliveries must not pass for a broker that delivers nothing.
    h.config.jobs.claimAfterMs = 1_000;
    // 60 jobs of 100 ms, published and then left past the claim delay: every one of them is due for a claim while the
    // worker (4 slots) takes about 1.5 s to consume them.
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) ids.push(await h.insertJob({ payload: diagnostic({ sleepMs: 100 }) }));
    for (const id of ids) await h.publish(id);
    await new Promise((r) => setTimeout(r, 1_500));
    const w = await worker("busy");
    for (const id of ids) await h.waitForState(id, ["SUCCEEDED"], 20_000);
    expect(w.claimed).toBe(0);
    expect(await claimedStarts(ids)).toBe(0);
    // The claimer was there all along: a job with no message is claimed by the same worker.
    const orphan = await h.insertJob({ payload: diagnostic() });
    await h.waitForState(orphan, ["SUCCEEDED"], 5_000);
    expect(w.claimed).toBe(1);
  });

  it("claims nothing while a relay publishes an old backlog at its own pace to a worker with slots free", async () => {
    h.config.jobs.claimAfterMs = 1_000;
    const w = await worker("trickle");
    // Recorded an hour ago and published one every 50 ms: every unpublished one is due, and the worker has room.
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push(await h.insertJob({ payload: diagnostic({ sleepMs: 20 }) }));
    await h.sql.execute`UPDATE jobs SET created_at = NOW(3) - INTERVAL 1 HOUR WHERE id IN (${ids})`;
    for (const id of ids) {
      await h.publish(id);
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const id of ids) await h.waitForState(id, ["SUCCEEDED"], 10_000);
    expect(w.claimed).toBe(0);
    expect(await claimedStarts(ids)).toBe(0);
  });

  it("runs the effect of a job both claimed and delivered once, and the late delivery is acked", async () => {
    const w = await worker("both");
    const id = await h.insertJob({ payload: diagnostic({ sleepMs: 1_500 }) });
    await until(async () => (await h.job(id)).state === "RUNNING", 5_000, "the job to be claimed");
    await h.publish(id);
    await h.waitForState(id, ["SUCCEEDED"], 10_000);
    expect(await h.effects(id)).toEqual([{ attempt: 1 }]);
    expect(types(await h.events(id)).filter((t) => t === "started")).toHaveLength(1);
    expect(w.claimed).toBe(1);
    await until(async () => (await h.jsm.streams.info(h.config.mq.jobsStream)).state.messages === 0, 5_000, "the delivery to be acked");
  });

  it("never runs more than its concurrency when deliveries resume while claimed jobs hold every slot", async () => {
    h.config.jobs.workerConcurrency = 2;
    const w = await worker("full");
    const claimed = [await h.insertJob({ payload: diagnostic({ sleepMs: 1_200 }) }), await h.insertJob({ payload: diagnostic({ sleepMs: 1_200 }) })];
    await until(async () => (await Promise.all(claimed.map((id) => h.job(id)))).every((j) => j.state === "RUNNING"), 5_000, "both jobs to be claimed");
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, w.active)), 5);
    try {
      const delivered: string[] = [];
      for (let i = 0; i < 2; i++) {
        const id = await h.insertJob({ payload: diagnostic({ sleepMs: 100 }) });
        await h.publish(id);
        delivered.push(id);
      }
      for (const id of [...claimed, ...delivered]) await h.waitForState(id, ["SUCCEEDED"], 10_000);
      // The delivered jobs waited for the claimed ones' slots: they started after those ended.
      const startOf = async (id: string) => (await h.events(id)).find((e) => e.type === "started")?.time.getTime() ?? 0;
      const endOf = async (id: string) => (await h.events(id)).find((e) => e.type === "succeeded")?.time.getTime() ?? Infinity;
      const firstEnd = Math.min(...(await Promise.all(claimed.map(endOf))));
      for (const id of delivered) expect(await startOf(id)).toBeGreaterThanOrEqual(firstEnd);
      for (const id of delivered) expect(await h.effects(id)).toEqual([{ attempt: 1 }]);
    } finally {
      clearInterval(sampler);
    }
    expect(most).toBeLessThanOrEqual(2);
    expect(w.claimed).toBe(2);
  });

  it("stop() waits for a claimed job as for a delivery", async () => {
    const w = await worker("stopping");
    const id = await h.insertJob({ payload: diagnostic({ sleepMs: 800 }) });
    await until(async () => (await h.job(id)).state === "RUNNING", 5_000, "the job to be claimed");
    await w.stop(5_000);
    expect((await h.job(id)).state).toBe("SUCCEEDED");
    expect(await h.effects(id)).toEqual([{ attempt: 1 }]);
  });

  it("two workers sweeping at once run each job once, with no warning", async () => {
    const a = await worker("a");
    const b = await worker("b");
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push(await h.insertJob({ payload: diagnostic({ sleepMs: 50 }) }));
    const warnings = h.lines.length;
    for (const id of ids) await h.waitForState(id, ["SUCCEEDED"], 20_000);
    const effects = await h.sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM diagnostic_effects WHERE job_id IN (${ids}) GROUP BY job_id`;
    expect(effects.map((e) => Number(e.n))).toEqual(ids.map(() => 1));
    expect(await claimedStarts(ids)).toBe(40);
    expect(a.claimed + b.claimed).toBe(40);
    const lines = h.lines.slice(warnings).filter((l) => !l.msg.includes("claiming queued jobs from the database"));
    expect(lines).toEqual([]);
  });

  it("leaves held, not yet due and unknown-kind jobs alone", async () => {
    const held = await h.insertJob({ payload: diagnostic() });
    const fresh = await h.insertJob({ payload: diagnostic() });
    const unknown = await h.insertJob({ kind: "no-such-kind", payload: {} });
    await h.sql.execute`UPDATE jobs SET held = 1 WHERE id = ${held}`;
    await h.sql.execute`UPDATE jobs SET published_at = NOW(3) + INTERVAL 1 HOUR WHERE id = ${fresh}`;
    await new Promise((r) => setTimeout(r, CLAIM_AFTER_MS + 50));
    const candidates = await claimableJobs(h.sql, { kinds: h.catalog.names(), dueForMs: CLAIM_AFTER_MS, limit: 10 });
    const found = candidates.filter((j) => j.dueInMs <= 0);
    // A job created a moment ago is found, with how long until it is due.
    const recent = await h.insertJob({ payload: diagnostic() });
    const later = await claimableJobs(h.sql, { kinds: h.catalog.names(), dueForMs: CLAIM_AFTER_MS, limit: 10 });
    expect(later.find((j) => j.jobId === recent)?.dueInMs).toBeGreaterThan(CLAIM_AFTER_MS / 2);
    expect(found.map((j) => j.jobId)).not.toContain(fresh);
    expect(found.map((j) => j.jobId)).not.toContain(unknown);
    expect(found.map((j) => j.jobId)).not.toContain(held);
  });

  it("reads the (state, created_at) index, not the table", async () => {
    // A table of mostly ended jobs, as a running system has: the claim must not read them.
    await h.sql.execute`
      INSERT INTO jobs (id, kind, state, attempt, max_attempts, payload, requested_by, trace_id, publish_count, created_at, updated_at, ended_at)
      SELECT CONCAT('01ENDED', LPAD(seq, 19, '0')), 'diagnostic', 'SUCCEEDED', 1, 5, '{}', 'u-test', REPEAT('0', 32), 1, NOW(3), NOW(3), NOW(3)
        FROM seq_1_to_5000`;
    await h.sql.execute`ANALYZE TABLE jobs`;
    const [plan] = await h.sql.query<{ key: string | null; type: string; rows: bigint }>`EXPLAIN ${claimQuery({ kinds: h.catalog.names(), dueForMs: CLAIM_AFTER_MS, limit: 10 })}`;
    expect(plan?.type).not.toBe("ALL");
    expect(plan?.key).toMatch(/state/);
    expect(Number(plan?.rows)).toBeLessThan(100);
  });
});
