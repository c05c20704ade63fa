// The context one attempt (a worker's handler run, or a monitor's completion check) gets: its abort signal and why
// it aborted, checkpoint(), throttled progress; and how a thrown error maps to the job's outcome.
import type { Logger } from "../log.js";
import type { JobContext, JobServices } from "./catalog.js";
import { JobCancelledError, PermanentJobError, RetryableJobError } from "./errors.js";
import type { AttemptRef, JobExecution } from "./execution.js";
import type { JobError } from "./model.js";

/** Abort reason: the process is stopping; the job stays RUNNING and another runner picks it up after its lease. */
export class RunnerStoppingError extends Error {
  constructor() {
    super("the runner is stopping");
    this.name = "RunnerStoppingError";
  }
}

/** Abort reason: the job's deadline passed. */
export class JobTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JobTimeoutError";
  }
}

/** Abort reason: the attempt no longer holds the job (requeued, taken over or ended elsewhere). */
export class LeaseLostError extends Error {
  constructor() {
    super("the attempt lost its lease on the job");
    this.name = "LeaseLostError";
  }
}

export interface AttemptControl {
  readonly ctx: JobContext;
  /** Cancellation was requested (requestCancel). */
  cancelRequested(): boolean;
  /** Aborts the attempt's signal with `reason` (the first reason wins). */
  abort(reason: Error): void;
  /** Cancellation was requested: checkpoint() throws from now on and the signal aborts. */
  requestCancel(): void;
  /** Clears the deadline timer. */
  dispose(): void;
}

export interface AttemptControlOptions {
  ex: JobExecution;
  ref: AttemptRef;
  /** What the handler may use (only these fields reach its context). */
  services: JobServices;
  log: Logger;
  deadlineInMs: number | null;
  /** The job's error message when the deadline aborts the attempt. */
  timeoutMessage?: string;
  cancelRequested?: boolean;
  /** Progress writes closer together than this are dropped (each is a commit and an event). Default 500 ms. */
  progressIntervalMs?: number;
}

export function createAttemptControl(options: AttemptControlOptions): AttemptControl {
  const { ex, ref, log, services } = options;
  const controller = new AbortController();
  let cancelRequested = false;
  let lastProgress = 0;
  const minInterval = options.progressIntervalMs ?? 500;
  const abort = (reason: Error) => {
    if (!controller.signal.aborted) controller.abort(reason);
  };
  const requestCancel = () => {
    cancelRequested = true;
    abort(new JobCancelledError());
  };
  const deadline =
    options.deadlineInMs === null
      ? undefined
      : setTimeout(() => abort(new JobTimeoutError(options.timeoutMessage ?? `timed out while attempt ${ref.attempt} of ${ref.kind} was running`)), Math.max(0, options.deadlineInMs));
  deadline?.unref();
  if (options.cancelRequested) requestCancel();

  const ctx: JobContext = {
    sql: services.sql,
    now: services.now,
    drivers: services.drivers,
    km: () => services.km(),
    config: services.config,
    nats: services.nats,
    relay: services.relay,
    localStarts: services.localStarts,
    jobId: ref.jobId,
    kind: ref.kind,
    attempt: ref.attempt,
    signal: controller.signal,
    log,
    async progress(percent, message) {
      const now = Date.now();
      if (percent < 100 && now - lastProgress < minInterval) return;
      lastProgress = now;
      try {
        await ex.progress(ref, percent, message);
      } catch (err) {
        log.warn({ err }, "could not record job progress");
      }
    },
    checkpoint() {
      if (cancelRequested) throw new JobCancelledError();
      if (controller.signal.aborted) throw controller.signal.reason;
    },
  };
  // Methods, not a getter: an object literal with an accessor over per-attempt state gets a hidden class of its own,
  // which keeps the attempt's objects alive through minor collections.
  return {
    ctx,
    cancelRequested: () => cancelRequested,
    abort,
    requestCancel,
    dispose: () => clearTimeout(deadline),
  };
}

/** What to do with an attempt that threw. */
export type Failure =
  | { type: "cancelled" }
  | { type: "stopping" }
  | { type: "lease_lost" }
  | { type: "timed_out"; error: JobError }
  | { type: "permanent"; error: JobError }
  | { type: "retryable"; error: JobError };

/**
 * Maps an error thrown by a handler or check to an outcome. Once the signal aborted, its reason decides (a handler
 * often rethrows an AbortError of its own). Unknown errors are retryable and reach the job as "internal error" only:
 * their message may carry anything, so it goes to the log, never the job row.
 */
export function classifyFailure(err: unknown, control: AttemptControl, log: Logger): Failure {
  const signal = control.ctx.signal;
  const reason: unknown = signal.aborted ? signal.reason : err;
  if (reason instanceof JobCancelledError) {
    if (control.cancelRequested()) return { type: "cancelled" };
  } else if (reason instanceof RunnerStoppingError) {
    return { type: "stopping" };
  } else if (reason instanceof LeaseLostError) {
    return { type: "lease_lost" };
  } else if (reason instanceof JobTimeoutError) {
    return { type: "timed_out", error: { code: "DEADLINE_EXCEEDED", message: reason.message } };
  }
  // A handler that found its job no longer held by this attempt (e.g. a parent's release round) gives it up.
  if (err instanceof LeaseLostError) return { type: "lease_lost" };
  if (err instanceof PermanentJobError) {
    return { type: "permanent", error: { code: err.code, message: err.message, ...(Object.keys(err.details).length ? { details: err.details } : {}) } };
  }
  if (err instanceof RetryableJobError) return { type: "retryable", error: { code: err.code, message: err.message } };
  log.error({ err }, "job handler failed unexpectedly");
  return { type: "retryable", error: { code: "INTERNAL", message: `internal error in the ${control.ctx.kind} handler` } };
}
