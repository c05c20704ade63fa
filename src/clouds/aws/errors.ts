// What an EC2 failure means to the dispatcher: each provider error code, HTTP status or network failure becomes a
// DriverError whose message is safe to show (never a credential, never a raw response) and whose code tells the job
// system whether retrying can help.
import { DriverError, type DriverErrorCode } from "../driver.js";

const THROTTLED = new Set(["RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled", "RequestThrottledException", "TooManyRequestsException", "SlowDown"]);
const AUTH = new Set(["AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch", "InvalidAccessKeyId", "IncompleteSignature", "MissingAuthenticationToken", "ExpiredToken", "ExpiredTokenException", "AccessDenied", "AccessDeniedException", "Blocked", "PendingVerification"]);
const QUOTA = new Set(["InstanceLimitExceeded", "InsufficientInstanceCapacity", "VcpuLimitExceeded", "InsufficientAddressCapacity", "VolumeLimitExceeded", "MaxSpotInstanceCountExceeded", "InsufficientCapacity"]);
const INVALID = new Set(["InvalidParameterValue", "InvalidParameterCombination", "InvalidParameter", "MissingParameter", "UnknownParameter", "InvalidInstanceID.Malformed", "InvalidInstanceType", "Unsupported", "UnsupportedOperation", "ValidationError", "InvalidUserData.Malformed", "InvalidAvailabilityZone", "InvalidQueryParameter", "MalformedQueryString", "InvalidKey.Format", "InvalidGroup.Reserved"]);
// A resource in a state or use that forbids the call: a security group still used or named by a rule, an address still
// associated, a name taken (`*.Duplicate`; a duplicate rule is not an error to the firewall service, which asks first).
const CONFLICT = new Set(["IncorrectInstanceState", "IncorrectState", "IdempotentParameterMismatch", "OptInRequired", "InvalidInstanceID", "DependencyViolation", "InvalidGroup.InUse", "InvalidIPAddress.InUse", "Resource.AlreadyAssociated", "CannotDelete"]);
const UNAVAILABLE = new Set(["InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "ServiceUnavailableException", "RequestExpired"]);
const UNSUPPORTED = new Set(["InvalidAction", "UnknownOperation", "UnknownOperationException"]);
const NETWORK = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "ECONNABORTED", "UND_ERR_SOCKET"]);

const AUTH_HINTS: Readonly<Record<string, string>> = {
  AuthFailure: "AWS could not validate the access key and secret; check both, and that the key is active",
  UnauthorizedOperation: "the credentials are valid but their IAM policy does not allow this call",
  InvalidClientTokenId: "the access key id is not known to AWS (deleted, mistyped, or from another partition)",
  SignatureDoesNotMatch: "the secret access key does not belong to the access key id",
  InvalidAccessKeyId: "the access key id is not known to AWS",
  ExpiredToken: "the session token has expired; store fresh temporary credentials",
  OptInRequired: "the account is not subscribed to EC2 in this region",
};

const MAX_PROVIDER_MESSAGE = 300;

/**
 * Classifies anything the SDK threw for `operation`. `secrets` are the call's credential values: any of them found in
 * a provider message is replaced, so no secret can reach a message even if a provider echoed one.
 */
export function classifyAwsError(err: unknown, operation: string, secrets: readonly string[], abortedByCaller: boolean): DriverError {
  if (err instanceof DriverError) return err;
  const e = (err ?? {}) as { name?: unknown; message?: unknown; code?: unknown; $fault?: unknown; $metadata?: { httpStatusCode?: unknown; requestId?: unknown } };
  const name = typeof e.name === "string" ? e.name : "Error";
  const status = typeof e.$metadata?.httpStatusCode === "number" ? e.$metadata.httpStatusCode : undefined;
  const requestId = typeof e.$metadata?.requestId === "string" ? e.$metadata.requestId : undefined;
  const providerMessage = scrub(typeof e.message === "string" ? e.message : "", secrets);
  const networkCode = typeof e.code === "string" ? e.code : undefined;
  const cause = safeCause(name, providerMessage, status, requestId);

  if (name === "AbortError" || name === "TimeoutError" || networkCode === "ETIMEDOUT" || networkCode === "ESOCKETTIMEDOUT") {
    const why = abortedByCaller ? "was cancelled" : "timed out before AWS answered";
    return new DriverError("TIMEOUT", `AWS ${operation} ${why}`, { cause, providerCode: name });
  }
  if (networkCode && NETWORK.has(networkCode)) {
    return new DriverError("UNAVAILABLE", `AWS ${operation} could not reach the EC2 endpoint (${networkCode})`, { cause, providerCode: networkCode });
  }
  const code = providerCode(name, status);
  if (!code) {
    // Not a provider answer: a client-side failure (unparseable response, bad endpoint). Unknown, so not retried blindly.
    return new DriverError("INTERNAL", `AWS ${operation} failed: ${clip(providerMessage) || name}`, { cause });
  }
  const driverCode = classifyCode(code, status);
  if (driverCode === "AUTH") {
    const hint = AUTH_HINTS[code] ?? "AWS rejected the request's authentication";
    // The provider's own text is left out on purpose: it may quote policy documents or key fragments.
    return new DriverError("AUTH", `AWS refused the credentials (${code}) for ${operation}: ${hint}`, { cause: safeCause(name, "", status, requestId), providerCode: code });
  }
  const detail = clip(providerMessage);
  const message = `AWS ${operation} failed (${code})${detail ? `: ${detail}` : ""}`;
  return new DriverError(driverCode, message, { cause, providerCode: code });
}

function classifyCode(code: string, status: number | undefined): DriverErrorCode {
  if (THROTTLED.has(code) || status === 429) return "THROTTLED";
  if (AUTH.has(code)) return "AUTH";
  if (code.startsWith("InvalidAMIID.")) return "INVALID";
  if (code === "InvalidInstanceID.NotFound" || code.endsWith(".NotFound")) return "NOT_FOUND";
  if (QUOTA.has(code) || code.endsWith("LimitExceeded")) return "QUOTA";
  if (INVALID.has(code) || code.endsWith(".Malformed")) return "INVALID";
  if (CONFLICT.has(code) || code.endsWith(".Duplicate")) return "CONFLICT";
  if (UNSUPPORTED.has(code)) return "UNSUPPORTED";
  if (UNAVAILABLE.has(code) || (status !== undefined && status >= 500)) return "UNAVAILABLE";
  if (status === 401 || status === 403) return "AUTH";
  return "INVALID";
}

/** The provider's error code, when the error is an answer from EC2 (it has an HTTP status). */
function providerCode(name: string, status: number | undefined): string | undefined {
  if (status === undefined) return undefined;
  return name === "Error" || name === "" ? `HTTP${status}` : name;
}

function safeCause(name: string, message: string, status: number | undefined, requestId: string | undefined): Error {
  const parts = [name, status !== undefined ? `HTTP ${status}` : undefined, requestId ? `request ${requestId}` : undefined, message || undefined];
  const cause = new Error(parts.filter(Boolean).join("; "));
  cause.name = "AwsError";
  return cause;
}

export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join("[redacted]");
  return out;
}

function clip(text: string): string {
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length > MAX_PROVIDER_MESSAGE ? `${oneLine.slice(0, MAX_PROVIDER_MESSAGE)}…` : oneLine;
}
