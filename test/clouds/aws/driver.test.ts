// The aws driver through the real EC2 SDK against a fake EC2 Query API endpoint on 127.0.0.1: discovery calls, the
// launch → describe → terminate round trip, ClientToken idempotency, and how failures are classified and become job
// errors without ever carrying a credential.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { toJobError } from "../../../src/clouds/access.js";
import { endpointFor } from "../../../src/clouds/aws/client.js";
import { createAwsDriver } from "../../../src/clouds/aws/driver.js";
import { DriverError, type DriverCallOptions, type DriverTarget } from "../../../src/clouds/driver.js";
import { createDriverRegistry } from "../../../src/clouds/registry.js";
import { PermanentJobError, RetryableJobError } from "../../../src/jobs/errors.js";
import { FakeEc2 } from "./fake-ec2.js";

const ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE";
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SESSION = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";

const fake = new FakeEc2({ accessKeyIds: [ACCESS_KEY], pageSize: 2 });
const driver = createDriverRegistry([createAwsDriver()]).get("aws");
let target: DriverTarget;
const call = (ms = 15_000): DriverCallOptions => ({ signal: new AbortController().signal, deadline: new Date(Date.now() + ms) });
const account = { id: "acct-1", cloud: { id: "c-1", name: "aws-test", driver: "aws", endpoint: "" } };

beforeAll(async () => {
  const url = await fake.start();
  target = { cloud: { id: "c-1", driver: "aws", endpoint: url }, account: { id: "acct-1", providerAccountId: null }, credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET } };
  // The first call loads the SDK (seconds on a busy machine): done here, so no test's deadline pays for it.
  await driver.testContext(target, call(60_000));
  fake.calls.length = 0;
});
afterAll(() => fake.stop());
afterEach(() => {
  fake.calls.length = 0;
});

async function failure(p: Promise<unknown>): Promise<DriverError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DriverError);
  return err as DriverError;
}

describe("discovery", () => {
  it("testContext signs with the account's key and reads the account number from the default security group", async () => {
    expect(await driver.testContext(target, call())).toEqual({ providerAccountId: "123456789012" });
    expect(fake.calls).toHaveLength(1);
    expect(fake.calls[0]).toMatchObject({ action: "DescribeSecurityGroups", accessKeyId: ACCESS_KEY, region: "us-east-1" });
    expect(fake.calls[0]!.params.get("Filter.1.Name")).toBe("group-name");
  });

  it("passes an optional session token as the security token header", async () => {
    await driver.testContext({ ...target, credentials: { ...target.credentials, sessionToken: SESSION } }, call());
    expect(fake.calls[0]!.securityToken).toBe(SESSION);
    expect(fake.calls[0]!.authorization).toContain(ACCESS_KEY);
    expect(fake.calls[0]!.authorization).not.toContain(SECRET);
    await driver.testContext(target, call());
    expect(fake.calls[1]!.securityToken).toBe("");
  });

  it("lists regions with their availability zones, each zone list asked of its own region", async () => {
    const regions = await driver.listRegions(target, call());
    expect(regions).toEqual([
      { id: "eu-west-1", name: "Europe (Ireland)", dataCenters: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] },
      { id: "us-east-1", name: "US East (N. Virginia)", dataCenters: ["us-east-1a", "us-east-1b", "us-east-1c"] },
    ]);
    const zoneCalls = fake.calls.filter((c) => c.action === "DescribeAvailabilityZones").map((c) => c.region).sort();
    expect(zoneCalls).toEqual(["eu-west-1", "us-east-1"]);
  });

  it("probes compute, block storage, networking, firewalls, static addresses and key pairs; object storage only when configured", async () => {
    expect(await driver.probeCapabilities(target, "eu-west-1", call())).toEqual(["compute", "block_storage", "networking", "firewalls", "static_addresses", "key_pairs"]);
    expect(fake.actions()).toEqual(["DescribeAccountAttributes", "DescribeInstances", "DescribeVolumes", "DescribeVpcs", "DescribeSecurityGroups", "DescribeAddresses", "DescribeKeyPairs"]);
    expect(fake.calls[1]!.params.get("DryRun")).toBe("true");
    const withS3 = createDriverRegistry([createAwsDriver({ objectStorage: true })]).get("aws");
    expect(await withS3.probeCapabilities(target, "eu-west-1", call())).toEqual(["compute", "block_storage", "object_storage", "networking", "firewalls", "static_addresses", "key_pairs"]);
  });

  it("a capability the IAM policy forbids is absent, not an error", async () => {
    const limited = new FakeEc2({ forbidden: ["DescribeVolumes", "DescribeInstances", "DescribeAddresses", "DescribeKeyPairs"] });
    const url = await limited.start();
    try {
      expect(await driver.probeCapabilities({ ...target, cloud: { ...target.cloud, endpoint: url } }, "us-east-1", call())).toEqual(["networking", "firewalls"]);
    } finally {
      await limited.stop();
    }
  });

  it("lists the built-in instance types the region offers, and the account's own images", async () => {
    const products = await driver.listProducts(target, "us-east-1", call());
    expect(products.find((p) => p.id === "t3.micro")).toEqual({ id: "t3.micro", name: "t3.micro (2 vCPU, 1 GiB)", cpus: 2, memoryMb: 1024, diskGb: 0, hourlyPriceMicros: 10_400, accruesWhenStopped: false });
    // The fake offers no r5 types in the region: the offering list narrows the table.
    expect(products.some((p) => p.id.startsWith("r5"))).toBe(false);
    expect(products.length).toBeGreaterThan(15);
    const images = await driver.listImages(target, "us-east-1", call());
    expect(images).toEqual([
      { id: "ami-1a2b3c4d", name: "My_AMI", platform: "linux" },
      { id: "ami-5e6f7a8b", name: "Windows_Base", platform: "windows" },
    ]);
    expect(fake.calls.find((c) => c.action === "DescribeImages")!.params.get("Owner.1")).toBe("self");
  });
});

describe("servers", () => {
  const launch = (clientToken: string, bootstrap: Record<string, string> = {}) =>
    driver.launch(target, { regionId: "eu-west-1", dataCenter: "eu-west-1b", productId: "t3.micro", imageId: "ami-1a2b3c4d", name: "web-1", clientToken, bootstrap }, call());

  it("launch → describe → stop → start → reboot → terminate round trip, states mapped", async () => {
    const launched = await launch("01JSERVER00000000000000001", { DISPATCHER_AGENT_JOIN_TOKEN: "jt-s3cr3t'x", DISPATCHER_AGENT_BRIDGE_URL: "https://bridge.example:3303" });
    expect(launched).toMatchObject({ name: "web-1", regionId: "eu-west-1", dataCenter: "eu-west-1b", productId: "t3.micro", imageId: "ami-1a2b3c4d", state: "PENDING", clientToken: "01JSERVER00000000000000001" });
    expect(launched.providerId).toMatch(/^i-[0-9a-f]+$/);
    expect(launched.addresses.private).toEqual([expect.stringMatching(/^192\.168\.1\./)]);
    expect(launched.launchedAt).toBeInstanceOf(Date);
    // The bootstrap entries reach the guest as a shell env file in base64 user data.
    const run = fake.calls.find((c) => c.action === "RunInstances")!;
    expect(run.params.get("ClientToken")).toBe("01JSERVER00000000000000001");
    expect(run.params.get("TagSpecification.1.Tag.1.Value")).toBe("web-1");
    const env = Buffer.from(run.params.get("UserData")!, "base64").toString("utf8");
    expect(env).toContain("DISPATCHER_AGENT_BRIDGE_URL='https://bridge.example:3303'\n");
    expect(env).toContain(`DISPATCHER_AGENT_JOIN_TOKEN='jt-s3cr3t'\\''x'\n`);

    const ref = { regionId: "eu-west-1", providerId: launched.providerId };
    const running = await driver.getServer(target, ref, call());
    expect(running).toMatchObject({ providerId: launched.providerId, state: "RUNNING", clientToken: "01JSERVER00000000000000001" });
    expect(running!.addresses.public).toEqual([expect.stringMatching(/^54\./)]);
    expect(running!.details).toMatchObject({ vpcId: "vpc-11112222", subnetId: "subnet-56f5f633" });

    await driver.stop(target, ref, call());
    expect((await driver.getServer(target, ref, call()))!.state).toBe("STOPPED");
    await driver.start(target, ref, call());
    expect((await driver.getServer(target, ref, call()))!.state).toBe("RUNNING");
    await driver.reboot(target, ref, call());
    await driver.terminate(target, ref, call());
    expect(fake.instances.get(launched.providerId)!.state).toBe("shutting-down");
    expect((await driver.getServer(target, ref, call()))!.state).toBe("TERMINATED");
    // Terminating what is already terminated, or unknown to EC2, succeeds.
    await driver.terminate(target, ref, call());
    await driver.terminate(target, { regionId: "eu-west-1", providerId: "i-0123456789abcdef0" }, call());
    expect(await driver.getServer(target, { regionId: "eu-west-1", providerId: "i-0123456789abcdef0" }, call())).toBeNull();
  });

  it("the same client token twice launches one instance", async () => {
    const before = fake.instances.size;
    const a = await launch("01JSERVER00000000000000002");
    const b = await launch("01JSERVER00000000000000002");
    expect(b.providerId).toBe(a.providerId);
    expect(fake.instances.size).toBe(before + 1);
  });

  it("listServers follows every page of DescribeInstances", async () => {
    await launch("01JSERVER00000000000000003");
    await launch("01JSERVER00000000000000004");
    fake.calls.length = 0;
    const all = await driver.listServers(target, "eu-west-1", call());
    expect(all.map((s) => s.providerId).sort()).toEqual([...fake.instances.keys()].sort());
    expect(all.length).toBeGreaterThanOrEqual(4);
    // Pages of two (the fake's limit): more than one call, each after the first carrying the previous token.
    const pages = fake.calls.filter((c) => c.action === "DescribeInstances");
    expect(pages.length).toBe(Math.ceil(all.length / 2));
    expect(pages[1]!.params.get("NextToken")).toBe("2");
  });
});

describe("failures", () => {
  it("throttling is THROTTLED and retryable, the SDK making one attempt only; the job retries", async () => {
    fake.failNext(1, "RequestLimitExceeded", { message: "Request limit exceeded." });
    const err = await failure(driver.testContext(target, call()));
    expect(err).toMatchObject({ code: "THROTTLED", retryable: true, providerCode: "RequestLimitExceeded" });
    expect(fake.calls).toHaveLength(1);
    const job = toJobError(err, account);
    expect(job).toBeInstanceOf(RetryableJobError);
    expect((job as RetryableJobError).code).toBe("RESOURCE_EXHAUSTED");
    // The next call goes through.
    await driver.testContext(target, call());
  });

  it("5xx is UNAVAILABLE and retryable", async () => {
    fake.failNext(1, "InternalError", { message: "An internal error has occurred" });
    expect(await failure(driver.listImages(target, "us-east-1", call()))).toMatchObject({ code: "UNAVAILABLE", retryable: true });
  });

  it("an auth failure is AUTH and permanent with a clear message, and no credential anywhere in it", async () => {
    const wrong = { ...target, credentials: { accessKeyId: "AKIAWRONGKEY0000EXAM", secretAccessKey: SECRET, sessionToken: SESSION } };
    const err = await failure(driver.testContext(wrong, call()));
    expect(err).toMatchObject({ code: "AUTH", retryable: false, providerCode: "AuthFailure" });
    expect(err.message).toMatch(/^AWS refused the credentials \(AuthFailure\) for DescribeSecurityGroups: /);
    const job = toJobError(err, account);
    expect(job).toBeInstanceOf(PermanentJobError);
    expect((job as PermanentJobError).code).toBe("PERMISSION_DENIED");
    expect((job as PermanentJobError).details).toMatchObject({ driverCode: "AUTH", providerCode: "AuthFailure" });
    for (const text of [err.message, JSON.stringify(err), String(err.cause), JSON.stringify(job), job.message, String(job.cause)]) {
      for (const secret of [SECRET, SESSION, "AKIAWRONGKEY0000EXAM"]) expect(text).not.toContain(secret);
    }
  });

  it("a provider message that echoes a credential is scrubbed", async () => {
    fake.failNext(1, "InvalidParameterValue", { message: `Value (${ACCESS_KEY}) for parameter is invalid` });
    const err = await failure(driver.listImages(target, "us-east-1", call()));
    expect(err).toMatchObject({ code: "INVALID", retryable: false });
    expect(err.message).toContain("[redacted]");
    expect(err.message).not.toContain(ACCESS_KEY);
    expect(String(err.cause)).not.toContain(ACCESS_KEY);
  });

  it("classifies not found, invalid image, quota, forbidden operations and missing fields", async () => {
    const ref = { regionId: "us-east-1", providerId: "i-0123456789abcdef0" };
    expect(await failure(driver.start(target, ref, call()))).toMatchObject({ code: "NOT_FOUND", providerCode: "InvalidInstanceID.NotFound" });
    const req = { regionId: "us-east-1", dataCenter: "", productId: "t3.micro", imageId: "ami-nothex", name: "x", clientToken: "tok-invalid", bootstrap: {} };
    expect(await failure(driver.launch(target, req, call()))).toMatchObject({ code: "INVALID", providerCode: "InvalidAMIID.Malformed", retryable: false });
    fake.failNext(1, "InsufficientInstanceCapacity", { message: "We currently do not have sufficient t3.micro capacity" });
    expect(await failure(driver.launch(target, { ...req, imageId: "ami-1a2b3c4d" }, call()))).toMatchObject({ code: "QUOTA", retryable: false });
    fake.failNext(1, "UnauthorizedOperation");
    const denied = await failure(driver.listImages(target, "us-east-1", call()));
    expect(denied).toMatchObject({ code: "AUTH", retryable: false });
    expect(denied.message).toMatch(/^AWS refused the credentials \(UnauthorizedOperation\) for DescribeImages/);
    const missing = await failure(driver.testContext({ ...target, credentials: { accessKeyId: ACCESS_KEY } }, call()));
    expect(missing).toMatchObject({ code: "AUTH" });
    expect(missing.message).toMatch(/lack secretAccessKey/);
  });

  it("an unreachable endpoint is UNAVAILABLE; a passed deadline is TIMEOUT; both retryable", async () => {
    const closed = new FakeEc2();
    const url = await closed.start();
    await closed.stop();
    const down = await failure(driver.testContext({ ...target, cloud: { ...target.cloud, endpoint: url } }, call()));
    expect(down).toMatchObject({ code: "UNAVAILABLE", retryable: true });
    const late = await failure(driver.testContext(target, { signal: new AbortController().signal, deadline: new Date(Date.now() - 1) }));
    expect(late).toMatchObject({ code: "TIMEOUT", retryable: true });
  });

  it("a provider that does not answer: the call ends at its deadline (TIMEOUT) or when the caller aborts", async () => {
    fake.hangNext(1);
    let t0 = Date.now();
    const late = await failure(driver.listImages(target, "us-east-1", call(300)));
    expect(late).toMatchObject({ code: "TIMEOUT", retryable: true });
    expect(late.message).toMatch(/timed out/);
    expect(Date.now() - t0).toBeLessThan(2_000);
    fake.hangNext(1);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 200);
    t0 = Date.now();
    const cancelled = await failure(driver.listImages(target, "us-east-1", { signal: abort.signal, deadline: new Date(Date.now() + 10_000) }));
    expect(cancelled).toMatchObject({ code: "TIMEOUT" });
    expect(cancelled.message).toMatch(/was cancelled/);
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it("a {region} endpoint template resolves per region, a fixed URL stays; a bad endpoint is INVALID", async () => {
    expect(endpointFor("https://ec2.{region}.amazonaws.com", "eu-west-1")).toBe("https://ec2.eu-west-1.amazonaws.com");
    expect(endpointFor("", "ap-south-1")).toBe("https://ec2.ap-south-1.amazonaws.com");
    expect(endpointFor("https://ec2.amazonaws.com/", "us-gov-west-1")).toBe("https://ec2.us-gov-west-1.amazonaws.com");
    expect(endpointFor(fake.url, "eu-west-1")).toBe(fake.url);
    // A region name from a provider answer never steers the host anywhere else.
    expect(() => endpointFor("https://{region}/", "169.254.169.254")).toThrow(/not an AWS region name/);
    expect(() => endpointFor("ftp://ec2.example", "eu-west-1")).toThrow(/http\(s\)/);
    await driver.listImages(target, "eu-west-1", call());
    expect(fake.calls.at(-1)!.region).toBe("eu-west-1");
    expect(await failure(driver.testContext({ ...target, cloud: { ...target.cloud, endpoint: "not a url" } }, call()))).toMatchObject({ code: "INVALID" });
  });
});
