// The one error edge: thrown errors → gRPC status with google.rpc details (and back again, for clients and tests).
import { Metadata, status as Code } from "@grpc/grpc-js";
import { isDatabaseUnavailable, isTransientConflict } from "../db/errors.js";
import { AbortedError, DomainError, FailedPreconditionError, InvalidArgumentError, ResourceExhaustedError, UnavailableError, type FieldViolation, type QuotaViolation } from "../errors.js";
import { type Any } from "../gen/proto/google/protobuf/any.js";
import { BadRequest, ErrorInfo, QuotaFailure, RetryInfo } from "../gen/proto/google/rpc/error_details.js";
import { Status } from "../gen/proto/google/rpc/status.js";

/** ErrorInfo.domain of every error this service raises. */
export const ERROR_DOMAIN = "dispatcher.v1";
/** The trailer that carries a serialized google.rpc.Status (the gRPC rich error model). */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

const TYPE_PREFIX = "type.googleapis.com/";
const ERROR_INFO_TYPE = `${TYPE_PREFIX}google.rpc.ErrorInfo`;
const BAD_REQUEST_TYPE = `${TYPE_PREFIX}google.rpc.BadRequest`;
const QUOTA_FAILURE_TYPE = `${TYPE_PREFIX}google.rpc.QuotaFailure`;
const RETRY_INFO_TYPE = `${TYPE_PREFIX}google.rpc.RetryInfo`;

/** What a caller learns when a database cannot serve: no host, no statement. */
const DATABASE_UNAVAILABLE = new UnavailableError("the database is unavailable; retry shortly", "DATABASE_UNAVAILABLE");
/** A deadlock, lock wait timeout or Galera certification conflict that outlasted the transaction's own retries. */
const DATABASE_CONFLICT = new AbortedError("the database aborted the change for a concurrent one; retry it", "DATABASE_CONFLICT");

/** What grpc-js needs to end a call: code, message and trailers. */
export interface RpcStatus {
  code: Code;
  details: string;
  metadata: Metadata;
}

/** The decoded rich error of a call. */
export interface StatusDetails {
  code: Code;
  /** Canonical code name, e.g. "NOT_FOUND". */
  codeName: string;
  message: string;
  errorInfo?: { reason: string; domain: string; metadata: Record<string, string> };
  fieldViolations: FieldViolation[];
  quotaViolations: QuotaViolation[];
  /** From RetryInfo: how long the caller should wait before trying again. */
  retryDelayMs?: number;
}

/** "NOT_FOUND" for 5; "UNKNOWN" for anything that is not a gRPC code. */
export function codeName(code: number): string {
  return (Code as unknown as Record<number, string>)[code] ?? "UNKNOWN";
}

/**
 * The status for a thrown value. DomainErrors keep their code and message and gain ErrorInfo (+ BadRequest or
 * QuotaFailure). Anything else becomes INTERNAL "internal error": the caller learns nothing of the cause, which the
 * adapter logs.
 */
export function toRpcStatus(err: unknown): RpcStatus {
  const status = statusMessage(err);
  if (status === null) return internalStatus();
  const metadata = new Metadata();
  metadata.set(STATUS_DETAILS_KEY, Buffer.from(Status.encode(status).finish()));
  return { code: status.code, details: status.message, metadata };
}

/**
 * The google.rpc.Status for a thrown value, as toRpcStatus sends it in its trailer (also the per-item error of a
 * batch call); INTERNAL "internal error" without details for anything unexpected (the caller logs the cause).
 */
export function toStatusMessage(err: unknown): Status {
  return statusMessage(err) ?? { code: Code.INTERNAL, message: "internal error", details: [] };
}

/** null: an unexpected error (INTERNAL, no details). */
function statusMessage(err: unknown): Status | null {
  // A store that went away is the caller's to retry, not a bug: UNAVAILABLE (the adapter logs the cause). A conflict
  // with a concurrent transaction (on Galera, one certified first on another node) is ABORTED: nothing was applied.
  if (!(err instanceof DomainError)) {
    if (isDatabaseUnavailable(err)) return statusMessage(DATABASE_UNAVAILABLE);
    return isTransientConflict(err) ? statusMessage(DATABASE_CONFLICT) : null;
  }
  const details: Any[] = [pack(ERROR_INFO_TYPE, ErrorInfo.encode({ reason: err.reason, domain: ERROR_DOMAIN, metadata: err.metadata }).finish())];
  if (err instanceof InvalidArgumentError && err.violations.length > 0) {
    const fieldViolations = err.violations.map((v) => ({ field: v.field, description: v.description, reason: "" }));
    details.push(pack(BAD_REQUEST_TYPE, BadRequest.encode({ fieldViolations }).finish()));
  }
  if (err instanceof FailedPreconditionError && err.quotaViolations.length > 0) {
    details.push(pack(QUOTA_FAILURE_TYPE, QuotaFailure.encode({ violations: err.quotaViolations }).finish()));
  }
  if (err instanceof ResourceExhaustedError && err.retryAfterMs !== null) {
    const ms = Math.max(0, Math.ceil(err.retryAfterMs));
    details.push(pack(RETRY_INFO_TYPE, RetryInfo.encode({ retryDelay: { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 } }).finish()));
  }
  return { code: Code[err.code], message: err.message, details };
}

/** INTERNAL "internal error", with no details: used for every unexpected failure. */
export function internalStatus(): RpcStatus {
  return { code: Code.INTERNAL, details: "internal error", metadata: new Metadata() };
}

/**
 * Decodes the rich error in a call's trailers. Returns null when there is no (readable) status-details trailer.
 * Unknown detail types are skipped.
 */
export function decodeStatusDetails(metadata: Metadata): StatusDetails | null {
  const raw = metadata.get(STATUS_DETAILS_KEY)[0];
  if (raw === undefined) return null;
  let status: Status;
  try {
    status = Status.decode(typeof raw === "string" ? Buffer.from(raw, "base64") : raw);
  } catch {
    return null;
  }
  return decodeStatus(status);
}

/** The rich error a google.rpc.Status carries. Unknown detail types are skipped. */
export function decodeStatus(status: Status): StatusDetails {
  const out: StatusDetails = { code: status.code, codeName: codeName(status.code), message: status.message, fieldViolations: [], quotaViolations: [] };
  for (const any of status.details) {
    try {
      if (any.typeUrl.endsWith("/google.rpc.ErrorInfo")) {
        const info = ErrorInfo.decode(any.value);
        out.errorInfo = { reason: info.reason, domain: info.domain, metadata: { ...info.metadata } };
      } else if (any.typeUrl.endsWith("/google.rpc.BadRequest")) {
        out.fieldViolations.push(...BadRequest.decode(any.value).fieldViolations.map((v) => ({ field: v.field, description: v.description })));
      } else if (any.typeUrl.endsWith("/google.rpc.QuotaFailure")) {
        out.quotaViolations.push(...QuotaFailure.decode(any.value).violations.map((v) => ({ subject: v.subject, description: v.description })));
      } else if (any.typeUrl.endsWith("/google.rpc.RetryInfo")) {
        const delay = RetryInfo.decode(any.value).retryDelay;
        if (delay) out.retryDelayMs = Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1_000_000);
      }
    } catch {
      // A malformed detail is ignored rather than hiding the status itself.
    }
  }
  return out;
}

function pack(typeUrl: string, value: Uint8Array): Any {
  return { typeUrl, value: Buffer.from(value) };
}
