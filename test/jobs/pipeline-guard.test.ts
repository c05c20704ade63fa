// Statements pipelined behind another in a transaction: when the one before them dies in a deadlock, InnoDB rolls the
// whole transaction back and the statements already sent run on their own, in autocommit. IN_TRANSACTION (carried by
// appendEvent's pipelined form and by the job path's pipelined statements) makes them change nothing there.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openConnection } from "../../src/db/connect.js";
import type { Sql } from "../../src/db/sql.js";
import type { JobContext } from "../../src/jobs/catalog.js";
import { diagnosticKind } from "../../src/jobs/kinds/diagnostic.js";
import { appendEvent } from "../../src/jobs/events.js";
import { diagnostic, openExecHarness, types, type ExecHarness } from "./exec-support.js";
import { sleep } from "../support/poll.js";

let h: ExecHarness;
beforeAll(async () => {
  h = await openExecHarness("pipeline_guard");
}, 120_000);
afterAll(async () => {
  await h?.close();
});

/**
 * Runs a transaction that sends an UPDATE of `victimRow` (held by another transaction, which then closes a lock cycle
 * so that InnoDB picks this one as the deadlock victim) and, pipelined behind it, an event of `jobId`. One try only: a
 * deadlock would otherwise run the transaction again, and the retry would write the event for good.
 */
async function deadlockBehind(victimRow: string, jobId: string, pipelined: boolean): Promise<unknown> {
  return deadlockBehindStatement(victimRow, (tx) => appendEvent(tx, { jobId, type: "progress", fromState: "QUEUED", toState: "QUEUED", attempt: 0, actor: "test", message: "pipelined" }, { pipelined }));
}

/** deadlockBehind with any statement (or effect) pipelined behind the victim UPDATE. */
async function deadlockBehindStatement(victimRow: string, pipelinedStatement: (tx: Sql) => Promise<unknown>): Promise<unknown> {
  const heldByUs = await h.insertJob({ payload: diagnostic() });
  const other = await openConnection(h.dbs.urls.provisioning);
  try {
    await other.beginTransaction();
    // Weight: many changed rows make the other transaction the one InnoDB keeps.
    for (let i = 0; i < 20; i++) await other.query("INSERT INTO diagnostic_effects (job_id, attempt, created_at) SELECT ?, 1000 + seq, NOW(3) FROM seq_1_to_50", [victimRow]);
    await other.query("UPDATE jobs SET updated_at = NOW(3) WHERE id = ?", [victimRow]);
    let sent!: () => void;
    const pipelineSent = new Promise<void>((r) => (sent = r));
    const ours = h.sql
      .transaction(async (tx) => {
        await tx.execute`UPDATE jobs SET updated_at = NOW(3) WHERE id = ${heldByUs}`;
        const blocked = tx.execute`UPDATE jobs SET updated_at = NOW(3) WHERE id = ${victimRow}`;
        const event = pipelinedStatement(tx);
        sent();
        await Promise.allSettled([blocked, event]);
        await blocked;
      }, { tries: 1 })
      .then(
        () => "committed",
        (err: unknown) => err,
      );
    await pipelineSent;
    await sleep(200);
    // Closes the cycle: this transaction now waits for the row ours holds; InnoDB rolls ours back.
    await other.query("UPDATE jobs SET updated_at = NOW(3) WHERE id = ?", [heldByUs]);
    await other.rollback();
    return await ours;
  } finally {
    await other.end().catch(() => undefined);
  }
}

describe("statements pipelined behind a deadlock victim", () => {
  it("a pipelined event does nothing once its transaction is rolled back", async () => {
    const victim = await h.insertJob({ payload: diagnostic() });
    const job = await h.insertJob({ payload: diagnostic() });
    const outcome = await deadlockBehind(victim, job, true);
    expect(String((outcome as { code?: string }).code ?? outcome)).toMatch(/DEADLOCK|Deadlock/);
    expect(types(await h.events(job))).not.toContain("progress");
  });

  it("without the guard the same event is written on its own, in autocommit (the hazard the guard removes)", async () => {
    const victim = await h.insertJob({ payload: diagnostic() });
    const job = await h.insertJob({ payload: diagnostic() });
    const outcome = await deadlockBehind(victim, job, false);
    expect(String((outcome as { code?: string }).code ?? outcome)).toMatch(/DEADLOCK|Deadlock/);
    expect(types(await h.events(job))).toContain("progress");
  });

  it("a guarded effect (the diagnostic kind's, sent with its completion) does nothing once its transaction is rolled back", async () => {
    const victim = await h.insertJob({ payload: diagnostic() });
    const job = await h.insertJob({ payload: diagnostic() });
    const ctx = { jobId: job, attempt: 1, checkpoint: () => undefined } as unknown as JobContext;
    const outcome = await diagnosticKind.check?.(ctx, diagnosticKind.payload.parse({}), 0);
    if (outcome?.status !== "succeeded" || !outcome.effects) throw new Error("the diagnostic kind should succeed with an effect");
    expect(outcome.effectsGuarded).toBe(true);
    const effects = outcome.effects;
    const result = await deadlockBehindStatement(victim, (tx) => effects(tx));
    expect(String((result as { code?: string }).code ?? result)).toMatch(/DEADLOCK|Deadlock/);
    const rows = await h.sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM diagnostic_effects WHERE job_id = ${job}`;
    expect(Number(rows[0]?.n)).toBe(0);
  });
});
