// Job execution in SQL against the real MariaDB: the start CAS, lease take-over, stale completions, retries, failure
// with dead letter, cancellation, pending and claims of due checks by competing monitors.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isTransientConflict } from "../../src/db/errors.js";
import { MONITOR_OWNER, type AttemptRef } from "../../src/jobs/execution.js";
import { claimDueChecks } from "../../src/monitor/queries.js";
import { diagnostic, openExecHarness, types, type ExecHarness } from "./exec-support.js";
import { sleep } from "../support/poll.js";

let h: ExecHarness;
beforeAll(async () => {
  h = await openExecHarness("exec", { nats: false });
});
afterAll(async () => {
  await h?.close();
});

const effect = (ref: AttemptRef) => async (tx: Parameters<NonNullable<Parameters<ExecHarness["ex"]["complete"]>[0]["effects"]>>[0]) => {
  await tx.execute`INSERT INTO diagnostic_effects (job_id, attempt, created_at) VALUES (${ref.jobId}, ${ref.attempt}, NOW(3))`;
};

async function started(jobId: string, owner: string, leaseMs = 10_000): Promise<AttemptRef> {
  const r = await h.ex.start({ jobId, owner, leaseMs });
  if (r.status !== "started") throw new Error(`job ${jobId} did not start: ${JSON.stringify(r)}`);
  return { jobId, kind: r.job.kind, attempt: r.job.attempt, owner };
}

describe("start", () => {
  it("starts a queued job once: attempt 1, a lease, a started event; a second start is skipped", async () => {
    const id = await h.insertJob({ payload: diagnostic({ note: "x" }), maxAttempts: 3 });
    const first = await h.ex.start({ jobId: id, owner: "w1", leaseMs: 10_000 });
    expect(first).toMatchObject({ status: "started", tookOver: false, job: { id, kind: "diagnostic", attempt: 1, maxAttempts: 3, deadlineInMs: null } });
    expect(first.status === "started" && first.job.payload).toMatchObject({ note: "x" });
    const again = await h.ex.start({ jobId: id, owner: "w2", leaseMs: 10_000 });
    // The second delivery learns how long the first worker's lease still runs, to come back when it ends.
    expect(again).toEqual({ status: "skipped", state: "RUNNING", leaseInMs: expect.any(Number) });
    expect(again.status === "skipped" && again.leaseInMs).toBeGreaterThan(5_000);
    const row = await h.job(id);
    expect(row).toMatchObject({ state: "RUNNING", attempt: 1, leaseOwner: "w1" });
    expect(row.leaseExpiresAt!.getTime()).toBeGreaterThan(Date.now() + 5_000);
    expect(types(await h.events(id))).toEqual(["created", "started"]);
    expect(await h.ex.start({ jobId: "01NOSUCHJOB000000000000000", owner: "w1", leaseMs: 1 })).toEqual({ status: "skipped", state: null });
  });

  it("concurrent starts of one job: exactly one wins", async () => {
    const id = await h.insertJob({ payload: diagnostic() });
    const results = await Promise.all(["a", "b", "c", "d"].map((o) => h.ex.start({ jobId: id, owner: o, leaseMs: 10_000 })));
    expect(results.filter((r) => r.status === "started")).toHaveLength(1);
    expect((await h.job(id)).attempt).toBe(1);
    expect(types(await h.events(id))).toEqual(["created", "started"]);
  });

  it("takes over a job whose lease expired, and rejects the old attempt's late completion without its effects", async () => {
    const id = await h.insertJob({ payload: diagnostic() });
    const a1 = await started(id, "w-old", 1);
    await sleep(20);
    const r = await h.ex.start({ jobId: id, owner: "w-new", leaseMs: 10_000 });
    expect(r).toMatchObject({ status: "started", tookOver: true, job: { attempt: 2 } });
    const a2: AttemptRef = { jobId: id, kind: "diagnostic", attempt: 2, owner: "w-new" };

    expect(await h.ex.complete({ ...a1, result: { late: true }, effects: effect(a1) })).toBe(false);
    expect(await h.effects(id)).toEqual([]);
    expect((await h.job(id)).state).toBe("RUNNING");
    expect(await h.ex.complete({ ...a2, result: { ok: true }, effects: effect(a2) })).toBe(true);
    expect(await h.effects(id)).toEqual([{ attempt: 2 }]);
    // A second completion of the winning attempt is rejected too.
    expect(await h.ex.complete({ ...a2, effects: effect(a2) })).toBe(false);
    expect(await h.effects(id)).toEqual([{ attempt: 2 }]);

    const row = await h.job(id);
    expect(row).toMatchObject({ state: "SUCCEEDED", attempt: 2, leaseOwner: null, progressPercent: 100, result: { ok: true } });
    expect(row.endedAt).not.toBeNull();
    const events = await h.events(id);
    expect(types(events)).toEqual(["created", "started", "lease_expired", "started", "stale_completion_rejected", "succeeded", "stale_completion_rejected"]);
    const stale = events[4]!;
    expect(stale).toMatchObject({ attempt: 1, actor: "w-old", fromState: "RUNNING", toState: "RUNNING" });
    expect(stale.message).toMatch(/attempt 1 by w-old rejected: the job is RUNNING at attempt 2/);
  });

  it("ends instead of starting: cancellation requested, deadline passed, attempts used up", async () => {
    const cancelled = await h.insertJob({ payload: diagnostic() });
    await h.db.$executeRaw`UPDATE jobs SET cancel_requested = 1 WHERE id = ${cancelled}`;
    expect(await h.ex.start({ jobId: cancelled, owner: "w", leaseMs: 1_000 })).toEqual({ status: "ended", state: "CANCELLED" });
    expect(types(await h.events(cancelled))).toEqual(["created", "cancelled"]);

    const late = await h.insertJob({ payload: diagnostic(), deadlineMs: 0 });
    await sleep(5);
    expect(await h.ex.start({ jobId: late, owner: "w", leaseMs: 1_000 })).toEqual({ status: "ended", state: "FAILED" });
    expect(await h.job(late)).toMatchObject({ state: "FAILED", errorCode: "DEADLINE_EXCEEDED" });
    expect(types(await h.events(late))).toEqual(["created", "timed_out"]);

    // The last attempt's worker died: its lease expires and nothing is left to try.
    const spent = await h.insertJob({ payload: diagnostic({ note: "keep me" }), maxAttempts: 1 });
    await started(spent, "w-dead", 1);
    await sleep(20);
    expect(await h.ex.start({ jobId: spent, owner: "w", leaseMs: 1_000 })).toEqual({ status: "ended", state: "FAILED" });
    expect(await h.job(spent)).toMatchObject({ state: "FAILED", errorCode: "ABORTED", attempt: 1 });
    expect(types(await h.events(spent))).toEqual(["created", "started", "lease_expired", "failed", "dead_lettered"]);
    expect(await h.deadLetters(spent)).toEqual([expect.objectContaining({ attempt: 1, kind: "diagnostic", payload: diagnostic({ note: "keep me" }) })]);
  });
});

describe("outcomes", () => {
  it("schedules a retry: QUEUED, error kept, published_at pushed to when the redelivery is due; then restarts as attempt 2", async () => {
    const id = await h.insertJob({ payload: diagnostic() });
    const a1 = await started(id, "w");
    expect(await h.ex.scheduleRetry({ ...a1, error: { code: "UNAVAILABLE", message: "try later" }, delayMs: 60_000 })).toBe(true);
    const row = await h.job(id);
    expect(row).toMatchObject({ state: "QUEUED", attempt: 1, leaseOwner: null, errorCode: "UNAVAILABLE", errorMessage: "try later" });
    expect(row.publishedAt!.getTime()).toBeGreaterThan(Date.now() + 50_000);
    const events = await h.events(id);
    expect(events.at(-1)).toMatchObject({ type: "retry_scheduled", fromState: "RUNNING", toState: "QUEUED", attempt: 1 });
    expect(events.at(-1)!.message).toMatch(/UNAVAILABLE: try later.*60000 ms/);
    // A retry recorded by a stale attempt is rejected.
    expect(await h.ex.scheduleRetry({ ...a1, error: { code: "UNAVAILABLE", message: "again" }, delayMs: 1 })).toBe(false);
    expect(await started(id, "w2")).toMatchObject({ attempt: 2 });
  });

  it("fails with a dead letter keeping the payload when attempts are exhausted; permanently without one", async () => {
    const payload = diagnostic({ note: "dead" });
    const id = await h.insertJob({ payload, maxAttempts: 1 });
    const a1 = await started(id, "w");
    expect(await h.ex.fail({ ...a1, error: { code: "UNAVAILABLE", message: "still down" }, deadLetter: true })).toBe(true);
    expect(await h.job(id)).toMatchObject({ state: "FAILED", errorCode: "UNAVAILABLE", errorMessage: "still down", leaseOwner: null });
    expect(types(await h.events(id))).toEqual(["created", "started", "failed", "dead_lettered"]);
    expect(await h.deadLetters(id)).toEqual([{ attempt: 1, kind: "diagnostic", payload, lastError: "UNAVAILABLE: still down" }]);

    const perm = await h.insertJob({ payload });
    const p1 = await started(perm, "w");
    expect(await h.ex.fail({ ...p1, error: { code: "FAILED_PRECONDITION", message: "no", details: { why: "test" } } })).toBe(true);
    expect(await h.job(perm)).toMatchObject({ state: "FAILED", errorCode: "FAILED_PRECONDITION", errorDetails: { why: "test" } });
    expect(await h.deadLetters(perm)).toEqual([]);
  });

  it("cancels a running job only once cancellation was requested", async () => {
    const id = await h.insertJob({ payload: diagnostic() });
    const a1 = await started(id, "w");
    expect(await h.ex.renewLease(a1, 10_000)).toEqual({ held: true, cancelRequested: false });
    expect(await h.ex.cancel(a1)).toBe(false);
    await h.db.$executeRaw`UPDATE jobs SET cancel_requested = 1 WHERE id = ${id}`;
    expect(await h.ex.renewLease(a1, 10_000)).toEqual({ held: true, cancelRequested: true });
    expect(await h.ex.cancel(a1)).toBe(true);
    expect(await h.job(id)).toMatchObject({ state: "CANCELLED", errorCode: "CANCELLED" });
    expect(await h.ex.renewLease(a1, 10_000)).toEqual({ held: false, cancelRequested: false });
    expect(types(await h.events(id)).at(-1)).toBe("cancelled");
  });

  it("records progress of the current attempt only", async () => {
    const id = await h.insertJob({ payload: diagnostic() });
    const a1 = await started(id, "w");
    expect(await h.ex.progress(a1, 42.4, "halfway-ish")).toBe(true);
    expect(await h.ex.progress({ ...a1, owner: "someone-else" }, 50)).toBe(false);
    expect((await h.job(id)).progressPercent).toBe(42);
    expect((await h.events(id)).at(-1)).toMatchObject({ type: "progress", message: "42% halfway-ish" });
  });
});

describe("pending and completion checks", () => {
  it("hands the job to the monitor with one pending event; competing monitors claim disjoint checks", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const id = await h.insertJob({ payload: diagnostic({ outcome: "pending" }) });
      const a = await started(id, "w");
      expect(await h.ex.pending({ ...a, checkAfterMs: 0, progressMessage: "waiting" })).toBe(true);
      ids.push(id);
    }
    const first = await h.job(ids[0]!);
    expect(first).toMatchObject({ state: "RUNNING", leaseOwner: MONITOR_OWNER, leaseExpiresAt: null, checks: 0 });
    expect(types(await h.events(ids[0]!))).toEqual(["created", "started", "pending"]);
    await sleep(5);

    const [c1, c2] = await Promise.all([claimDueChecks(h.ex, { limit: 4, claimMs: 60_000 }), claimDueChecks(h.ex, { limit: 4, claimMs: 60_000 })]);
    const mine = [...c1, ...c2].map((c) => c.jobId).filter((id) => ids.includes(id));
    expect(new Set(mine).size).toBe(mine.length);
    expect(mine.sort()).toEqual([...ids].sort());
    expect([...c1, ...c2].every((c) => c.checks === 1 && c.attempt === 1)).toBe(true);
    // Claimed: not due again until the claim runs out.
    expect(await claimDueChecks(h.ex, { limit: 10, claimMs: 60_000 })).toEqual([]);

    // A further pending from the monitor writes no event; the check is due again after checkAfterMs.
    const ref: AttemptRef = { jobId: ids[0]!, kind: "diagnostic", attempt: 1, owner: MONITOR_OWNER };
    expect(await h.ex.pending({ ...ref, checkAfterMs: 0 })).toBe(true);
    expect(types(await h.events(ids[0]!))).toEqual(["created", "started", "pending"]);
    await sleep(5);
    const again = await claimDueChecks(h.ex, { limit: 10, claimMs: 60_000 });
    expect(again.map((c) => c.jobId)).toEqual([ids[0]]);
    expect(again[0]!.checks).toBe(2);
    expect(await h.ex.complete({ ...ref, effects: effect(ref) })).toBe(true);
    expect(await h.job(ids[0]!)).toMatchObject({ state: "SUCCEEDED", nextCheckAt: null });
    // A worker's outcome for a job the monitor holds is stale.
    expect(await h.ex.complete({ ...ref, owner: "w" })).toBe(false);
  });
});

describe("transient conflicts", () => {
  it("recognises a real deadlock raised through Prisma (what execution's transactions retry)", async () => {
    const a = await h.insertJob({ payload: diagnostic() });
    const b = await h.insertJob({ payload: diagnostic() });
    let bothLocked!: () => void;
    const ready = new Promise<void>((r) => (bothLocked = r));
    let locked = 0;
    const lockInOrder = (first: string, second: string) =>
      h.db.$transaction(async (tx) => {
        await tx.$queryRaw`SELECT id FROM jobs WHERE id = ${first} FOR UPDATE`;
        if (++locked === 2) bothLocked();
        await ready;
        await tx.$queryRaw`SELECT id FROM jobs WHERE id = ${second} FOR UPDATE`;
      });
    const results = await Promise.allSettled([lockInOrder(a, b), lockInOrder(b, a)]);
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(failures).toHaveLength(1);
    expect(isTransientConflict(failures[0]!.reason)).toBe(true);
    expect(isTransientConflict(new Error("something else"))).toBe(false);
  });
});
