// Completion by observation: the monitor claims pending jobs whose check is due, runs their kind's check(), and
// commits what it finds — succeeded, still pending, failed, cancelled or timed out — through src/jobs/execution.ts.
import { classifyFailure, createAttemptControl, RunnerStoppingError, type Failure } from "../jobs/attempt-context.js";
import { JobCatalog, type JobKind, type JobOutcome } from "../jobs/catalog.js";
import { MONITOR_OWNER, type AttemptRef, type JobExecution } from "../jobs/execution.js";
import { claimDueChecks, timeoutMessage, type DueCheck } from "./queries.js";
import type { Logger } from "../log.js";
import { contextFromTraceparent } from "../telemetry/propagation.js";
import { jobAttributes, withSpan, type Span } from "../telemetry/spans.js";
import { startLoop, type Loop } from "./loop.js";
import type { MonitorResources } from "./resources.js";

export interface CompletionChecksOptions {
  resources: MonitorResources;
  catalog: JobCatalog;
  ex: JobExecution;
  /** Pause between polls when nothing was due; default config.jobs.checkPollMs. */
  pollMs?: number;
  /** Checks claimed (and run concurrently) per poll. Default 32. */
  batch?: number;
  /** How long a claimed check is this monitor's before another may take it; default config.jobs.leaseMs. */
  claimMs?: number;
}

export function startCompletionChecks(options: CompletionChecksOptions): Loop {
  const { resources, ex } = options;
  const batch = options.batch ?? 32;
  const claimMs = options.claimMs ?? resources.config.jobs.leaseMs;
  const log = resources.log.child({ component: "completion-checks" });
  return startLoop({
    name: "completion_checks",
    intervalMs: options.pollMs ?? resources.config.jobs.checkPollMs,
    log,
    async run(span, signal) {
      const due = await claimDueChecks(ex, { limit: batch, claimMs });
      span.setAttribute("monitor.claimed", due.length);
      const results = await Promise.allSettled(due.map((c) => runCheck(options, c, span, signal, log)));
      for (const [i, r] of results.entries()) {
        if (r.status === "rejected") log.error({ err: r.reason, jobId: due[i]?.jobId }, "completion check could not be committed; it is retried after the claim");
      }
      return due.length === batch;
    },
  });
}

/** One check of one job, in a span of the job's own trace (linked to the monitor iteration that claimed it). */
async function runCheck(options: CompletionChecksOptions, c: DueCheck, iteration: Span, stop: AbortSignal, parentLog: Logger): Promise<void> {
  const { ex, catalog, resources } = options;
  const ref: AttemptRef = { jobId: c.jobId, kind: c.kind, attempt: c.attempt, owner: MONITOR_OWNER };
  const log = parentLog.child({ jobId: c.jobId, kind: c.kind, attempt: c.attempt, checks: c.checks });
  const kind = catalog.get(c.kind);
  if (!kind) {
    // Another version of the monitor may know it; the claim runs out and it is due again.
    log.warn("pending job of a kind this monitor does not know");
    return;
  }
  const attributes = { ...jobAttributes({ id: c.jobId, kind: c.kind, attempt: c.attempt }), "job.checks": c.checks };
  await withSpan(`job.check ${c.kind}`, { parent: contextFromTraceparent(c.traceparent), links: [{ context: iteration.spanContext() }], attributes }, async () => {
    const timedOut = timeoutMessage({ kind: c.kind, state: "RUNNING", attempt: c.attempt, owner: MONITOR_OWNER, checks: c.checks - 1 });
    if (c.deadlineInMs !== null && c.deadlineInMs <= 0) {
      await ex.fail({ ...ref, error: { code: "DEADLINE_EXCEEDED", message: timedOut }, eventType: "timed_out" });
      return;
    }
    if (c.cancelRequested) {
      await ex.cancel(ref);
      return;
    }
    const parsed = kind.payload.safeParse(c.payload);
    if (!kind.check || !parsed.success) {
      const message = kind.check ? `the payload does not fit the ${c.kind} job's schema` : `job kind ${c.kind} has no completion check`;
      await ex.fail({ ...ref, error: { code: kind.check ? "INVALID_ARGUMENT" : "UNIMPLEMENTED", message } });
      return;
    }
    const control = createAttemptControl({ ex, ref, services: resources, log, deadlineInMs: c.deadlineInMs, timeoutMessage: timedOut });
    const onStop = () => control.abort(new RunnerStoppingError());
    stop.addEventListener("abort", onStop, { once: true });
    let outcome: JobOutcome | undefined;
    let failure: Failure | undefined;
    try {
      outcome = await kind.check(control.ctx, parsed.data, c.checks);
    } catch (err) {
      failure = classifyFailure(err, control, log);
    } finally {
      stop.removeEventListener("abort", onStop);
      control.dispose();
    }
    if (outcome) await commitOutcome(ex, ref, outcome);
    else if (failure) await commitFailure(ex, ref, kind, c, failure, log);
  });
}

async function commitOutcome(ex: JobExecution, ref: AttemptRef, outcome: JobOutcome): Promise<void> {
  if (outcome.status === "succeeded") {
    await ex.complete({ ...ref, result: outcome.result, effects: outcome.effects, effectsGuarded: outcome.effectsGuarded });
  } else {
    await ex.pending({ ...ref, checkAfterMs: outcome.checkAfterMs, progressPercent: outcome.progressPercent, progressMessage: outcome.progressMessage });
  }
}

async function commitFailure(ex: JobExecution, ref: AttemptRef, kind: JobKind, c: DueCheck, failure: Failure, log: Logger): Promise<void> {
  switch (failure.type) {
    case "cancelled":
      await ex.cancel(ref);
      return;
    case "stopping":
      // Hand the check back at once rather than leave it claimed until the claim runs out.
      await ex.pending({ ...ref, checkAfterMs: 0 });
      return;
    case "lease_lost":
      return;
    case "timed_out":
      await ex.fail({ ...ref, error: failure.error, eventType: "timed_out" });
      return;
    case "permanent":
      await ex.fail({ ...ref, error: failure.error });
      return;
    case "retryable": {
      // A check that cannot tell yet is asked again later; the job's deadline bounds the waiting.
      const checkAfterMs = JobCatalog.backoff(kind, c.checks);
      log.warn({ error: failure.error, checkAfterMs }, "completion check failed; checking again later");
      await ex.pending({ ...ref, checkAfterMs });
      return;
    }
  }
}
