// DispatcherError: what every failed call of the client throws, with the decoded google.rpc details.
import { Metadata, status as Code, type ServiceError } from "@grpc/grpc-js";
import type { FieldViolation, QuotaViolation } from "../errors.js";
import { Status } from "../gen/proto/google/rpc/status.js";
import { codeName, decodeStatusDetails, STATUS_DETAILS_KEY } from "../rpc/status.js";

export class DispatcherError extends Error {
  /** Numeric gRPC status code. */
  readonly code: Code;
  /** Canonical code name, e.g. "NOT_FOUND". */
  readonly codeName: string;
  /** google.rpc.ErrorInfo, when the server sent one (every dispatcher DomainError does). */
  readonly errorInfo: { reason: string; domain: string; metadata: Record<string, string> } | undefined;
  readonly fieldViolations: FieldViolation[];
  readonly quotaViolations: QuotaViolation[];
  /** Trailers as received. */
  readonly metadata: Metadata | undefined;

  constructor(code: Code, message: string, metadata?: Metadata, options?: ErrorOptions) {
    super(message, options);
    this.name = "DispatcherError";
    this.code = code;
    this.codeName = codeName(code);
    this.metadata = metadata;
    const details = metadata ? decodeStatusDetails(metadata) : null;
    this.errorInfo = details?.errorInfo;
    this.fieldViolations = details?.fieldViolations ?? [];
    this.quotaViolations = details?.quotaViolations ?? [];
  }

  /** The error as the client sees it: a grpc-js ServiceError becomes its status; anything else UNKNOWN. */
  static from(err: unknown): DispatcherError {
    if (err instanceof DispatcherError) return err;
    if (isServiceError(err)) return new DispatcherError(err.code, err.details, err.metadata, { cause: err });
    return new DispatcherError(Code.UNKNOWN, err instanceof Error ? err.message : String(err), undefined, { cause: err });
  }

  /** The error a google.rpc.Status describes (one item's failure in a batch call's answer). */
  static fromStatus(status: Status): DispatcherError {
    const metadata = new Metadata();
    metadata.set(STATUS_DETAILS_KEY, Buffer.from(Status.encode(status).finish()));
    return new DispatcherError(status.code, status.message, metadata);
  }
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number" && typeof (err as Partial<ServiceError>).details === "string";
}
