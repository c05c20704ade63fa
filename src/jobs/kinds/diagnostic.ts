// The diagnostic job kind: sleeps, reports progress, then succeeds, fails or waits for the monitor as asked. For tests,
// benchmarks and SREs checking a deployment end to end; its effect is one diagnostic_effects row per success.
import { z } from "zod";
import { IN_TRANSACTION, type Sql } from "../../db/sql.js";
import type { JobContext, JobKind, JobOutcome } from "../catalog.js";
import { PermanentJobError, RetryableJobError } from "../errors.js";

export const DIAGNOSTIC_KIND = "diagnostic";

export const diagnosticPayload = z.object({
  /** How long the handler sleeps, in small steps (each a checkpoint). */
  sleepMs: z.number().int().min(0).max(3_600_000).default(0),
  outcome: z.enum(["succeed", "fail_permanent", "fail_retryable", "pending"]).default("succeed"),
  /** fail_retryable: attempts 1..failAttempts fail, later ones succeed; 0 = every attempt fails. */
  failAttempts: z.number().int().min(0).max(1_000).default(0),
  /** pending: completion checks answer "pending" until the check numbered pendingChecks, which succeeds. */
  pendingChecks: z.number().int().min(0).max(1_000_000).default(0),
  note: z.string().max(256).default(""),
});

export type DiagnosticPayload = z.output<typeof diagnosticPayload>;

/** Sleep step: cancellation and shutdown are noticed within this. */
const STEP_MS = 100;
const CHECK_AFTER_MS = 100;

export const diagnosticKind: JobKind<DiagnosticPayload> = {
  kind: DIAGNOSTIC_KIND,
  payload: diagnosticPayload,
  ackWaitMs: 30_000,
  maxAttempts: 5,
  backoffMs: [200, 1_000, 5_000],
  timeoutMs: 10 * 60_000,
  permission: "admin.diagnostics",

  async handle(ctx, p) {
    await sleepInSteps(ctx, p.sleepMs);
    ctx.checkpoint();
    switch (p.outcome) {
      case "succeed":
        return succeeded(ctx, p);
      case "fail_permanent":
        throw new PermanentJobError(`diagnostic failure requested${p.note ? `: ${p.note}` : ""}`, "FAILED_PRECONDITION", { note: p.note });
      case "fail_retryable":
        if (p.failAttempts === 0 || ctx.attempt <= p.failAttempts) {
          throw new RetryableJobError(`diagnostic attempt ${ctx.attempt} failed as requested`);
        }
        return succeeded(ctx, p);
      case "pending":
        return { status: "pending", checkAfterMs: CHECK_AFTER_MS, progressMessage: "waiting for the diagnostic check" };
    }
  },

  async check(ctx, p, checks) {
    ctx.checkpoint();
    if (checks < p.pendingChecks) return { status: "pending", checkAfterMs: CHECK_AFTER_MS };
    return succeeded(ctx, p, checks);
  },
};

function succeeded(ctx: JobContext, p: DiagnosticPayload, checks?: number): JobOutcome {
  const { jobId, attempt } = ctx;
  return {
    status: "succeeded",
    result: { sleptMs: p.sleepMs, attempt, ...(checks !== undefined ? { checks } : {}), note: p.note },
    // Guarded: it may go with the completion's compare-and-set (one round trip for a whole batch's effects).
    effects: async (sql: Sql) => {
      await sql.execute`INSERT INTO diagnostic_effects (job_id, attempt, created_at) SELECT ${jobId}, ${attempt}, NOW(3) FROM DUAL WHERE ${IN_TRANSACTION}`;
    },
    effectsGuarded: true,
  };
}

/** Sleeps `ms` in steps, checking for cancellation between them; reports progress as it goes. */
async function sleepInSteps(ctx: JobContext, ms: number): Promise<void> {
  const started = Date.now();
  for (let elapsed = 0; elapsed < ms; elapsed = Date.now() - started) {
    ctx.checkpoint();
    await abortableSleep(Math.min(STEP_MS, ms - elapsed), ctx.signal);
    const done = Math.min(ms, Date.now() - started);
    await ctx.progress(Math.floor((done / ms) * 100), `slept ${done} of ${ms} ms`);
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
