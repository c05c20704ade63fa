// How a job handler says an attempt failed: retry later (with backoff) or give up now.

/** The attempt failed for a reason that may pass (rate limit, timeout, a dependency down): retry with backoff. */
export class RetryableJobError extends Error {
  constructor(
    message: string,
    readonly code = "UNAVAILABLE",
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "RetryableJobError";
  }
}

/** The job cannot succeed as asked (bad credentials, unknown image): fail it now, with this reason. */
export class PermanentJobError extends Error {
  constructor(
    message: string,
    readonly code = "FAILED_PRECONDITION",
    readonly details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "PermanentJobError";
  }
}

/** Thrown by ctx.checkpoint() once cancellation was requested; the worker records the job CANCELLED. */
export class JobCancelledError extends Error {
  constructor(message = "cancelled on request") {
    super(message);
    this.name = "JobCancelledError";
  }
}
