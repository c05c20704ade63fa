// Group commit of starts and completions (src/jobs/execution-batch.ts) against the real MariaDB: a batch does what
// the single path does to every job in it — the same rows, events and effects — and a batch that would lose a
// compare-and-set or whose effect fails falls back to one job at a time, so that nothing stale is applied.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sql } from "../../src/db/sql.js";
import { openConnection } from "../../src/db/connect.js";
import { completeMany, startMany } from "../../src/jobs/execution-batch.js";
import type { AttemptRef, CompleteInput } from "../../src/jobs/execution.js";
import { diagnostic, openExecHarness, types, type ExecHarness } from "./exec-support.js";
import { sleep } from "../support/poll.js";

let h: ExecHarness;
beforeAll(async () => {
  h = await openExecHarness("exec_batch", { nats: false });
});
afterAll(async () => {
  await h?.close();
});

const effect = (ref: AttemptRef) => async (tx: Sql) => {
  await tx.execute`INSERT INTO diagnostic_effects (job_id, attempt, created_at) VALUES (${ref.jobId}, ${ref.attempt}, NOW(3))`;
};

const value = (r: PromiseSettledResult<boolean>) => (r.status === "fulfilled" ? r.value : r.reason);

const start = (jobId: string, owner = "w", leaseMs = 10_000) => ({ jobId, owner, leaseMs });

describe("startMany", () => {
  it("starts every queued job of the batch in one go, like start(): attempt 1, lease, one started event each", async () => {
    const ids = await Promise.all([1, 2, 3].map((n) => h.insertJob({ payload: diagnostic({ note: `b${n}` }), maxAttempts: 4 })));
    const results = await startMany(h.ex, ids.map((id) => start(id)));
    expect(results.map((r) => r.status)).toEqual(["started", "started", "started"]);
    for (const [i, id] of ids.entries()) {
      expect(results[i]).toMatchObject({ job: { id, attempt: 1, maxAttempts: 4, payload: diagnostic({ note: `b${i + 1}` }) } });
      expect(await h.job(id)).toMatchObject({ state: "RUNNING", attempt: 1, leaseOwner: "w" });
      const events = await h.events(id);
      expect(types(events)).toEqual(["created", "started"]);
      expect(events[1]).toMatchObject({ sequence: 2, attempt: 1, actor: "w", message: "attempt 1 of 4", fromState: "QUEUED", toState: "RUNNING" });
    }
  });

  it("mixes cases: a duplicate delivery, a running job, a missing one, a cancelled one and an expired lease", async () => {
    const plain = await h.insertJob({ payload: diagnostic() });
    const running = await h.insertJob({ payload: diagnostic() });
    await h.ex.start(start(running, "other"));
    const cancelled = await h.insertJob({ payload: diagnostic() });
    await h.db.$executeRaw`UPDATE jobs SET cancel_requested = 1 WHERE id = ${cancelled}`;
    const expired = await h.insertJob({ payload: diagnostic() });
    await h.ex.start(start(expired, "dead", 1));
    await sleep(20);
    const missing = "01NOSUCHJOB000000000000000";
    const results = await startMany(h.ex, [plain, running, plain, missing, cancelled, expired].map((id) => start(id)));
    expect(results).toMatchObject([
      { status: "started", job: { id: plain, attempt: 1 } },
      { status: "skipped", state: "RUNNING" },
      { status: "skipped", state: "RUNNING" },
      { status: "skipped", state: null },
      { status: "ended", state: "CANCELLED" },
      { status: "started", tookOver: true, job: { id: expired, attempt: 2 } },
    ]);
    expect(types(await h.events(plain))).toEqual(["created", "started"]);
    expect(types(await h.events(cancelled))).toEqual(["created", "cancelled"]);
    expect(types(await h.events(expired))).toEqual(["created", "started", "lease_expired", "started"]);
    expect(await h.job(running)).toMatchObject({ leaseOwner: "other", attempt: 1 });
  });

  it("two workers starting overlapping batches at once: each job starts exactly once", async () => {
    const ids = await Promise.all(Array.from({ length: 12 }, () => h.insertJob({ payload: diagnostic() })));
    const [a, b] = await Promise.all([startMany(h.ex, ids.map((id) => start(id, "a"))), startMany(h.ex, [...ids].reverse().map((id) => start(id, "b")))]);
    const winners = ids.map((id, i) => [a[i]?.status, b[ids.length - 1 - i]?.status].filter((s) => s === "started").length);
    expect(winners).toEqual(ids.map(() => 1));
    for (const id of ids) expect(types(await h.events(id))).toEqual(["created", "started"]);
  });
});

describe("completeMany", () => {
  async function running(n: number, owner = "w"): Promise<AttemptRef[]> {
    const ids = await Promise.all(Array.from({ length: n }, () => h.insertJob({ payload: diagnostic() })));
    const results = await startMany(h.ex, ids.map((id) => start(id, owner)));
    return results.map((r, i) => ({ jobId: ids[i]!, kind: "diagnostic", attempt: r.status === "started" ? r.job.attempt : -1, owner }));
  }

  it("completes every attempt with its own result and effects, one succeeded event each", async () => {
    const refs = await running(3);
    const inputs: CompleteInput[] = refs.map((ref, i) => ({ ...ref, result: { n: i }, effects: effect(ref) }));
    expect((await completeMany(h.ex, inputs)).map(value)).toEqual([true, true, true]);
    for (const [i, ref] of refs.entries()) {
      expect(await h.job(ref.jobId)).toMatchObject({ state: "SUCCEEDED", progressPercent: 100, leaseOwner: null, result: { n: i } });
      expect(await h.effects(ref.jobId)).toEqual([{ attempt: 1 }]);
      expect((await h.events(ref.jobId)).at(-1)).toMatchObject({ type: "succeeded", sequence: 3, attempt: 1, actor: "w", message: "attempt 1 succeeded" });
    }
  });

  it("a batch with one stale attempt: the others complete, the stale one is rejected and recorded, no effect of it", async () => {
    const refs = await running(3);
    const stale = { ...refs[1]!, attempt: 7 };
    const inputs = [refs[0]!, stale, refs[2]!].map((ref) => ({ ...ref, effects: effect(ref) }));
    expect((await completeMany(h.ex, inputs)).map(value)).toEqual([true, false, true]);
    expect(await h.effects(refs[0]!.jobId)).toEqual([{ attempt: 1 }]);
    expect(await h.effects(refs[1]!.jobId)).toEqual([]);
    expect(types(await h.events(refs[1]!.jobId))).toEqual(["created", "started", "stale_completion_rejected"]);
    expect((await h.job(refs[1]!.jobId)).state).toBe("RUNNING");
  });

  it("a failing effect fails only its own job's completion; the others commit once", async () => {
    const refs = await running(3);
    const inputs = refs.map((ref, i) => ({
      ...ref,
      effects:
        i === 2
          ? async () => {
              throw new Error("effect broke");
            }
          : effect(ref),
    }));
    const out = await completeMany(h.ex, inputs);
    expect(out.map((s) => s.status)).toEqual(["fulfilled", "fulfilled", "rejected"]);
    expect(String((out[2] as PromiseRejectedResult).reason)).toMatch(/effect broke/);
    expect((await h.job(refs[2]!.jobId)).state).toBe("RUNNING");
    for (const ref of refs.slice(0, 2)) {
      expect(await h.job(ref.jobId)).toMatchObject({ state: "SUCCEEDED" });
      expect(await h.effects(ref.jobId)).toEqual([{ attempt: 1 }]);
    }
  });

  it("an effect that dies in a deadlock takes the whole batch with it: no other effect of it survives on its own", async () => {
    // A deadlock (or a Galera node's applier aborting the batch for a commit elsewhere) rolls the transaction back;
    // statements already sent behind the failing one would then run in autocommit. Here the first effect waits for
    // a row another transaction holds, and that transaction then asks for a row the batch holds: InnoDB picks the
    // batch, whose undo is the smaller, as the victim.
    const refs = (await running(3)).sort((a, b) => (a.jobId < b.jobId ? -1 : 1));
    const blocker = await h.insertJob({ payload: diagnostic() });
    const other = await openConnection(h.dbs.urls.provisioning);
    let waiting!: () => void;
    const firstIsWaiting = new Promise<void>((r) => (waiting = r));
    let firstRun = true;
    try {
      await other.beginTransaction();
      // Weight: many changed rows make the other transaction the one InnoDB keeps.
      for (let i = 0; i < 20; i++) await other.query("INSERT INTO diagnostic_effects (job_id, attempt, created_at) SELECT ?, 1000 + seq, NOW(3) FROM seq_1_to_50", [blocker]);
      await other.query("UPDATE jobs SET updated_at = NOW(3) WHERE id = ?", [blocker]);
      const inputs: CompleteInput[] = refs.map((ref, i) => ({
        ...ref,
        effects:
          i === 0
            ? async (tx: Sql) => {
                if (firstRun) {
                  firstRun = false;
                  const blocked = tx.execute`UPDATE jobs SET updated_at = NOW(3) WHERE id = ${blocker}`;
                  waiting();
                  await blocked;
                }
                await effect(ref)(tx);
              }
            : effect(ref),
      }));
      const completing = completeMany(h.ex, inputs);
      await firstIsWaiting;
      await sleep(200);
      // Closes the cycle: the batch holds this row since its compare-and-set. InnoDB rolls the batch back, and this
      // statement then goes through; the other transaction then lets go of everything.
      await other.query("UPDATE jobs SET updated_at = NOW(3) WHERE id = ?", [refs[0]!.jobId]);
      await other.rollback();
      const out = await completing;
      // The batch fell back to one job at a time, after the victim's rollback: each job once, with one effect.
      expect(out.map(value)).toEqual([true, true, true]);
      for (const ref of refs) expect(await h.effects(ref.jobId)).toEqual([{ attempt: 1 }]);
    } finally {
      await other.end().catch(() => undefined);
    }
  });
});
