// What every driver call carries (the account's target, a deadline and signal, a provider ref) and how it fails
// (DriverError, classified retryable or not); the capabilities a region may offer. Shared by the driver model and its
// resource services, which both build on it.

/**
 * What a region offers an account. A capability the account has not subscribed to (or that the provider or this
 * machine cannot give) is simply absent. `firewalls`, `static_addresses` and `key_pairs` gate the resource services of
 * the same names; `block_storage` gates volumes and snapshots, `object_storage` the blob store (SERVICE_CAPABILITY).
 */
export const CAPABILITIES = ["compute", "block_storage", "object_storage", "networking", "firewalls", "static_addresses", "key_pairs", "load_balancing", "dns"] as const;
export type Capability = (typeof CAPABILITIES)[number];

export interface DriverCallOptions {
  /** Aborts the call (job cancelled, timed out, process stopping). */
  signal: AbortSignal;
  /** The call fails with a retryable TIMEOUT past this. */
  deadline: Date;
}

/** Everything a driver call needs to reach the account; built per call by src/clouds/access.ts. */
export interface DriverTarget {
  cloud: { id: string; driver: string; endpoint: string };
  account: { id: string; providerAccountId: string | null };
  /** Secret fields from KM, in memory for this call only: never log, persist or put them in a span or error. */
  credentials: Readonly<Record<string, string>>;
}

/** A server (or any resource) as the provider names it. */
export interface ServerRef {
  regionId: string;
  providerId: string;
}

/**
 * Why a driver call failed, classified: THROTTLED, TIMEOUT and UNAVAILABLE are worth retrying; the rest are not.
 * The message must be safe to show a user: never a credential, never a raw provider response carrying one.
 */
export type DriverErrorCode = "THROTTLED" | "TIMEOUT" | "UNAVAILABLE" | "AUTH" | "NOT_FOUND" | "INVALID" | "CONFLICT" | "QUOTA" | "UNSUPPORTED" | "INTERNAL";

const RETRYABLE: ReadonlySet<DriverErrorCode> = new Set(["THROTTLED", "TIMEOUT", "UNAVAILABLE"]);

export class DriverError extends Error {
  readonly retryable: boolean;
  /** The provider's own error code (e.g. RequestLimitExceeded), for logs and job details. */
  readonly providerCode: string | undefined;

  constructor(
    readonly code: DriverErrorCode,
    message: string,
    options?: ErrorOptions & { retryable?: boolean; providerCode?: string },
  ) {
    super(message, options);
    this.name = "DriverError";
    this.retryable = options?.retryable ?? RETRYABLE.has(code);
    this.providerCode = options?.providerCode;
  }
}

/** The signal of a driver call: aborts on the caller's signal or at the deadline, whichever comes first. */
export function callSignal(options: DriverCallOptions): AbortSignal {
  const ms = Math.max(0, options.deadline.getTime() - Date.now());
  return AbortSignal.any([options.signal, AbortSignal.timeout(ms)]);
}
