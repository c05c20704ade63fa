// The few named errors that services throw. src/rpc/status.ts is the one place that turns them into gRPC status.

export interface FieldViolation {
  /** Path of the request field, e.g. "page_size" or "resource.id". */
  field: string;
  description: string;
}

export interface QuotaViolation {
  subject: string;
  description: string;
}

/** Base of every error a caller may see as something other than INTERNAL. */
export abstract class DomainError extends Error {
  abstract readonly code: "NOT_FOUND" | "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "PERMISSION_DENIED" | "UNAUTHENTICATED" | "ABORTED" | "UNAVAILABLE" | "ALREADY_EXISTS" | "DEADLINE_EXCEEDED" | "CANCELLED" | "RESOURCE_EXHAUSTED";
  /** Machine-readable reason (UPPER_SNAKE_CASE) for google.rpc.ErrorInfo. */
  readonly reason: string;
  readonly metadata: Record<string, string>;

  constructor(message: string, reason: string, metadata: Record<string, string> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.reason = reason;
    this.metadata = metadata;
  }
}

export class NotFoundError extends DomainError {
  readonly code = "NOT_FOUND";
  constructor(resourceType: string, id: string) {
    super(`${resourceType} ${JSON.stringify(id)} not found`, `${resourceType.toUpperCase().replace(/\W+/g, "_")}_NOT_FOUND`, { resourceType, id });
  }
}

export class InvalidArgumentError extends DomainError {
  readonly code = "INVALID_ARGUMENT";
  constructor(
    readonly violations: FieldViolation[],
    reason = "INVALID_ARGUMENT",
  ) {
    super(violations.map((v) => `${v.field}: ${v.description}`).join("; ") || "invalid argument", reason);
  }

  /** Shorthand for a single bad field. */
  static field(field: string, description: string): InvalidArgumentError {
    return new InvalidArgumentError([{ field, description }]);
  }
}

export class FailedPreconditionError extends DomainError {
  readonly code = "FAILED_PRECONDITION";
  constructor(message: string, reason = "FAILED_PRECONDITION", readonly quotaViolations: QuotaViolation[] = [], metadata: Record<string, string> = {}) {
    super(message, reason, metadata);
  }
}

export class PermissionDeniedError extends DomainError {
  readonly code = "PERMISSION_DENIED";
  constructor(message = "permission denied", reason = "PERMISSION_DENIED", metadata: Record<string, string> = {}) {
    super(message, reason, metadata);
  }
}

export class UnauthenticatedError extends DomainError {
  readonly code = "UNAUTHENTICATED";
  constructor(message = "missing or invalid credentials", reason = "UNAUTHENTICATED") {
    super(message, reason);
  }
}

export class AbortedError extends DomainError {
  readonly code = "ABORTED";
  constructor(message: string, reason = "ABORTED", metadata: Record<string, string> = {}) {
    super(message, reason, metadata);
  }
}

export class AlreadyExistsError extends DomainError {
  readonly code = "ALREADY_EXISTS";
  constructor(resourceType: string, id: string) {
    super(`${resourceType} ${JSON.stringify(id)} already exists`, `${resourceType.toUpperCase().replace(/\W+/g, "_")}_ALREADY_EXISTS`, { resourceType, id });
  }
}

/** A dependency (database, NATS, KM, a cloud) cannot be reached; the caller may retry. */
export class UnavailableError extends DomainError {
  readonly code = "UNAVAILABLE";
  constructor(message: string, reason = "UNAVAILABLE", options?: ErrorOptions) {
    super(message, reason, {}, options);
  }
}

export class DeadlineExceededError extends DomainError {
  readonly code = "DEADLINE_EXCEEDED";
  constructor(message = "deadline exceeded") {
    super(message, "DEADLINE_EXCEEDED");
  }
}

export class CancelledError extends DomainError {
  readonly code = "CANCELLED";
  constructor(message = "cancelled") {
    super(message, "CANCELLED");
  }
}

/** A limit was reached (rate, concurrency, size); `retryAfterMs`, when known, becomes a RetryInfo detail. */
export class ResourceExhaustedError extends DomainError {
  readonly code = "RESOURCE_EXHAUSTED";
  constructor(
    message: string,
    reason: string,
    readonly retryAfterMs: number | null = null,
    metadata: Record<string, string> = {},
  ) {
    super(message, reason, metadata);
  }
}
