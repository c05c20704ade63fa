// The reconciler's sweeps in SQL against the real MariaDB: expired leases requeued and republished (or ended),
// jobs queued too long republished under a new message id, deadlines failed — each job changed once even when
// several monitors sweep at the same time.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MONITOR_OWNER } from "../../src/jobs/execution.js";
import { failPastDeadline, republishQueued, requeueExpiredLeases } from "../../src/monitor/queries.js";
import { enqueuePublication, type OutboxRef } from "../../src/jobs/outbox.js";
import { diagnostic, openExecHarness, types, type ExecHarness } from "./exec-support.js";
import { sleep } from "../support/poll.js";

let h: ExecHarness;
beforeAll(async () => {
  h = await openExecHarness("sweeps", { nats: false });
});
afterAll(async () => {
  await h?.close();
});

const republish = (tx: Parameters<typeof enqueuePublication>[0], job: { jobId: string; kind: string; traceparent: string | null }) =>
  enqueuePublication(tx, { ...job, subjectPrefix: h.config.mq.subjectPrefix });

async function outbox(jobId: string): Promise<{ msgId: string; subject: string }[]> {
  return h.db.$queryRaw`SELECT msg_id AS msgId, subject FROM outbox_entries WHERE job_id = ${jobId} ORDER BY id`;
}

describe("requeueExpiredLeases", () => {
  it("requeues and republishes a job whose worker stopped renewing; leaves live leases and pending jobs alone", async () => {
    const expired = await h.insertJob({ payload: diagnostic(), traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });
    const live = await h.insertJob({ payload: diagnostic() });
    const pending = await h.insertJob({ payload: diagnostic() });
    await h.ex.start({ jobId: expired, owner: "w-dead", leaseMs: 1 });
    await h.ex.start({ jobId: live, owner: "w-live", leaseMs: 60_000 });
    await h.ex.start({ jobId: pending, owner: "w", leaseMs: 1 });
    await h.ex.pending({ jobId: pending, kind: "diagnostic", attempt: 1, owner: "w", checkAfterMs: 60_000 });
    await sleep(20);

    // Two monitors at once: the job is requeued and republished once.
    const [a, b] = await Promise.all([
      requeueExpiredLeases<OutboxRef>(h.ex, { limit: 100, actor: "monitor", republish }),
      requeueExpiredLeases<OutboxRef>(h.ex, { limit: 100, actor: "monitor", republish }),
    ]);
    const published = [...a.published, ...b.published].filter((r) => r.jobId === expired);
    expect(published).toHaveLength(1);
    expect(published[0]).toMatchObject({ msgId: `${expired}:2`, headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" } });
    expect(await h.job(expired)).toMatchObject({ state: "QUEUED", attempt: 1, leaseOwner: null, publishCount: 2 });
    expect(types(await h.events(expired))).toEqual(["created", "started", "lease_expired"]);
    expect(await outbox(expired)).toEqual([{ msgId: `${expired}:2`, subject: `${h.config.mq.subjectPrefix}.diagnostic` }]);
    expect((await h.job(live)).state).toBe("RUNNING");
    expect(await h.job(pending)).toMatchObject({ state: "RUNNING", leaseOwner: MONITOR_OWNER });

    // The next start takes attempt 2.
    expect(await h.ex.start({ jobId: expired, owner: "w2", leaseMs: 60_000 })).toMatchObject({ status: "started", tookOver: false, job: { attempt: 2 } });
  });

  it("ends the job instead when cancellation was requested or it was the last attempt", async () => {
    const cancelled = await h.insertJob({ payload: diagnostic() });
    const last = await h.insertJob({ payload: diagnostic({ note: "last" }), maxAttempts: 1 });
    await h.ex.start({ jobId: cancelled, owner: "w", leaseMs: 1 });
    await h.ex.start({ jobId: last, owner: "w", leaseMs: 1 });
    await h.db.$executeRaw`UPDATE jobs SET cancel_requested = 1 WHERE id = ${cancelled}`;
    await sleep(20);
    const r = await requeueExpiredLeases<OutboxRef>(h.ex, { limit: 100, actor: "monitor", republish });
    expect(r.published.filter((p) => p.jobId === cancelled || p.jobId === last)).toEqual([]);
    expect(await h.job(cancelled)).toMatchObject({ state: "CANCELLED" });
    expect(types(await h.events(cancelled))).toEqual(["created", "started", "lease_expired", "cancelled"]);
    expect(await h.job(last)).toMatchObject({ state: "FAILED", errorCode: "ABORTED" });
    expect(types(await h.events(last))).toEqual(["created", "started", "lease_expired", "failed", "dead_lettered"]);
    expect(await h.deadLetters(last)).toEqual([expect.objectContaining({ payload: diagnostic({ note: "last" }) })]);
  });
});

describe("republishQueued", () => {
  it("republishes a job queued too long under a fresh message id, once across competing monitors", async () => {
    const stale = await h.insertJob({ payload: diagnostic() });
    const fresh = await h.insertJob({ payload: diagnostic() });
    await h.db.$executeRaw`UPDATE jobs SET published_at = NOW(3) - INTERVAL 60 SECOND WHERE id = ${stale}`;
    await h.db.$executeRaw`UPDATE jobs SET published_at = NOW(3) WHERE id = ${fresh}`;
    const options = { olderThanMs: 30_000, limit: 100, actor: "monitor", republish };
    const [a, b] = await Promise.all([republishQueued<OutboxRef>(h.ex, options), republishQueued<OutboxRef>(h.ex, options)]);
    const mine = [...a.published, ...b.published].filter((p) => p.jobId === stale || p.jobId === fresh);
    expect(mine.map((p) => p.msgId)).toEqual([`${stale}:2`]);
    expect(await outbox(stale)).toEqual([{ msgId: `${stale}:2`, subject: `${h.config.mq.subjectPrefix}.diagnostic` }]);
    expect(await outbox(fresh)).toEqual([]);
    const row = await h.job(stale);
    expect(row).toMatchObject({ state: "QUEUED", publishCount: 2 });
    expect(row.publishedAt!.getTime()).toBeGreaterThan(Date.now() - 5_000);
    expect(types(await h.events(stale))).toEqual(["created", "republished"]);
    // Just republished: not again.
    expect((await republishQueued<OutboxRef>(h.ex, options)).published.filter((p) => p.jobId === stale)).toEqual([]);
  });

  it("while a publication has not reached JetStream, publishes nothing more; republishes in a row are one event with a count", async () => {
    const id = await h.insertJob({ payload: diagnostic() });
    const options = { olderThanMs: 30_000, limit: 100, actor: "monitor", republish };
    const age = () => h.db.$executeRaw`UPDATE jobs SET published_at = NOW(3) - INTERVAL 60 SECOND WHERE id = ${id}`;
    const mine = async () => (await republishQueued<OutboxRef>(h.ex, options)).published.filter((p) => p.jobId === id).map((p) => p.msgId);
    await age();
    expect(await mine()).toEqual([`${id}:2`]);
    // NATS is down: publication 2 stays unpublished. Sweep after sweep, nothing more is written.
    for (let i = 0; i < 3; i++) {
      await age();
      expect(await mine()).toEqual([]);
    }
    expect((await outbox(id)).map((o) => o.msgId)).toEqual([`${id}:2`]);
    expect(types(await h.events(id))).toEqual(["created", "republished"]);
    // Publication 2 goes out (the relay removes its row) and still no worker starts the job: publication 3, the same event.
    await h.db.$executeRaw`DELETE FROM outbox_entries WHERE job_id = ${id}`;
    await age();
    expect(await mine()).toEqual([`${id}:3`]);
    await h.db.$executeRaw`DELETE FROM outbox_entries WHERE job_id = ${id}`;
    await age();
    expect(await mine()).toEqual([`${id}:4`]);
    const events = await h.events(id);
    expect(types(events)).toEqual(["created", "republished"]);
    expect(events[1]?.message).toBe("publication 3 reached JetStream but no worker started the job within 30 s; published again as publication 4 (3 times in a row)");
    // Anything else happening to the job starts a new count.
    await h.ex.start({ jobId: id, owner: "w", leaseMs: 60_000 });
    await h.ex.scheduleRetry({ jobId: id, kind: "diagnostic", attempt: 1, owner: "w", error: { code: "UNAVAILABLE", message: "x" }, delayMs: 0 });
    await h.db.$executeRaw`DELETE FROM outbox_entries WHERE job_id = ${id}`;
    await age();
    expect(await mine()).toEqual([`${id}:5`]);
    const after = await h.events(id);
    expect(types(after)).toEqual(["created", "republished", "started", "retry_scheduled", "republished"]);
    expect(after[4]?.message).toMatch(/\(1 time in a row\)$/);
  });

  it("leaves a job waiting for its retry's delayed redelivery alone", async () => {
    const id = await h.insertJob({ payload: diagnostic() });
    await h.db.$executeRaw`UPDATE jobs SET published_at = NOW(3) - INTERVAL 60 SECOND WHERE id = ${id}`;
    await h.ex.start({ jobId: id, owner: "w", leaseMs: 60_000 });
    await h.ex.scheduleRetry({ jobId: id, kind: "diagnostic", attempt: 1, owner: "w", error: { code: "UNAVAILABLE", message: "x" }, delayMs: 45_000 });
    const r = await republishQueued<OutboxRef>(h.ex, { olderThanMs: 30_000, limit: 100, actor: "monitor", republish });
    expect(r.published.filter((p) => p.jobId === id)).toEqual([]);
  });
});

describe("failPastDeadline", () => {
  it("fails queued, running and pending jobs past their deadline with the reason, once", async () => {
    const queued = await h.insertJob({ payload: diagnostic(), deadlineMs: 1 });
    const running = await h.insertJob({ payload: diagnostic(), deadlineMs: 300 });
    const pending = await h.insertJob({ payload: diagnostic(), deadlineMs: 300 });
    const later = await h.insertJob({ payload: diagnostic(), deadlineMs: 60_000 });
    await h.ex.start({ jobId: running, owner: "w", leaseMs: 60_000 });
    await h.ex.start({ jobId: pending, owner: "w", leaseMs: 60_000 });
    await h.ex.pending({ jobId: pending, kind: "diagnostic", attempt: 1, owner: "w", checkAfterMs: 60_000 });
    await sleep(350);
    const [a, b] = await Promise.all([failPastDeadline(h.ex, { limit: 100, actor: "monitor" }), failPastDeadline(h.ex, { limit: 100, actor: "monitor" })]);
    expect(a + b).toBeGreaterThanOrEqual(3);
    expect(await h.job(queued)).toMatchObject({ state: "FAILED", errorCode: "DEADLINE_EXCEEDED", errorMessage: "timed out before diagnostic could start" });
    expect(await h.job(running)).toMatchObject({ state: "FAILED", errorMessage: "timed out while attempt 1 of diagnostic was running" });
    expect(await h.job(pending)).toMatchObject({ state: "FAILED", errorMessage: "timed out waiting for diagnostic to complete (0 checks)", nextCheckAt: null });
    expect((await h.job(later)).state).toBe("QUEUED");
    for (const id of [queued, running, pending]) expect(types(await h.events(id)).filter((t) => t === "timed_out")).toHaveLength(1);
    // The worker's late completion of the timed-out attempt is rejected.
    expect(await h.ex.complete({ jobId: running, kind: "diagnostic", attempt: 1, owner: "w" })).toBe(false);
  });
});
