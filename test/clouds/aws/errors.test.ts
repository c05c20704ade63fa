// The classification of EC2 failures, case by case: provider codes, HTTP statuses, network errors and aborts.
import { describe, expect, it } from "vitest";
import { classifyAwsError } from "../../../src/clouds/aws/errors.js";

const provider = (name: string, status: number, message = "provider text") => Object.assign(new Error(message), { name, $fault: status >= 500 ? "server" : "client", $metadata: { httpStatusCode: status, requestId: "req-1" } });
const network = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code });

describe("classifyAwsError", () => {
  it.each([
    ["RequestLimitExceeded", 503, "THROTTLED", true],
    ["Throttling", 400, "THROTTLED", true],
    ["ThrottlingException", 400, "THROTTLED", true],
    ["SomethingNew", 429, "THROTTLED", true],
    ["InternalError", 500, "UNAVAILABLE", true],
    ["SomethingNew", 502, "UNAVAILABLE", true],
    ["AuthFailure", 401, "AUTH", false],
    ["UnauthorizedOperation", 403, "AUTH", false],
    ["InvalidClientTokenId", 403, "AUTH", false],
    ["SignatureDoesNotMatch", 403, "AUTH", false],
    ["InvalidInstanceID.NotFound", 400, "NOT_FOUND", false],
    ["InvalidAMIID.NotFound", 400, "INVALID", false],
    ["InvalidAMIID.Malformed", 400, "INVALID", false],
    ["InvalidParameterValue", 400, "INVALID", false],
    ["InstanceLimitExceeded", 400, "QUOTA", false],
    ["InsufficientInstanceCapacity", 500, "QUOTA", false],
    ["IncorrectInstanceState", 400, "CONFLICT", false],
    ["IdempotentParameterMismatch", 400, "CONFLICT", false],
    ["InvalidAction", 400, "UNSUPPORTED", false],
    ["InvalidGroup.NotFound", 400, "NOT_FOUND", false],
    ["InvalidPermission.NotFound", 400, "NOT_FOUND", false],
    ["InvalidGroup.Duplicate", 400, "CONFLICT", false],
    ["InvalidPermission.Duplicate", 400, "CONFLICT", false],
    ["InvalidKeyPair.Duplicate", 400, "CONFLICT", false],
    ["DependencyViolation", 400, "CONFLICT", false],
    ["CannotDelete", 400, "CONFLICT", false],
    ["InvalidIPAddress.InUse", 400, "CONFLICT", false],
    ["Resource.AlreadyAssociated", 400, "CONFLICT", false],
    ["InvalidKey.Format", 400, "INVALID", false],
    ["AddressLimitExceeded", 400, "QUOTA", false],
    ["RulesPerSecurityGroupLimitExceeded", 400, "QUOTA", false],
  ])("%s (HTTP %i) → %s, retryable %s", (name, status, code, retryable) => {
    const err = classifyAwsError(provider(name, status), "RunInstances", [], false);
    expect(err).toMatchObject({ code, retryable, providerCode: name });
  });

  it("network failures are UNAVAILABLE, timeouts and aborts TIMEOUT, all retryable", () => {
    expect(classifyAwsError(network("ECONNREFUSED"), "DescribeRegions", [], false)).toMatchObject({ code: "UNAVAILABLE", retryable: true });
    expect(classifyAwsError(network("ECONNRESET"), "DescribeRegions", [], false)).toMatchObject({ code: "UNAVAILABLE", retryable: true });
    expect(classifyAwsError(network("ETIMEDOUT"), "DescribeRegions", [], false)).toMatchObject({ code: "TIMEOUT", retryable: true });
    const abort = Object.assign(new Error("aborted"), { name: "AbortError" });
    expect(classifyAwsError(abort, "DescribeRegions", [], false).message).toMatch(/timed out/);
    expect(classifyAwsError(abort, "DescribeRegions", [], true).message).toMatch(/was cancelled/);
  });

  it("an AUTH message leaves the provider's text out; others keep it with credentials redacted", () => {
    const auth = classifyAwsError(provider("UnauthorizedOperation", 403, "Encoded authorization failure message: AKIAEXAMPLEKEY123456"), "RunInstances", ["AKIAEXAMPLEKEY123456"], false);
    expect(auth.message).toBe("AWS refused the credentials (UnauthorizedOperation) for RunInstances: the credentials are valid but their IAM policy does not allow this call");
    const other = classifyAwsError(provider("InvalidParameterValue", 400, "bad value s3cretValue"), "RunInstances", ["s3cretValue"], false);
    expect(other.message).toBe("AWS RunInstances failed (InvalidParameterValue): bad value [redacted]");
    expect(String(other.cause)).toContain("request req-1");
    expect(String(other.cause)).not.toContain("s3cretValue");
  });

  it("a failure that is no provider answer is INTERNAL and not retried", () => {
    expect(classifyAwsError(new Error("Unexpected end of XML"), "DescribeImages", [], false)).toMatchObject({ code: "INTERNAL", retryable: false });
  });
});
