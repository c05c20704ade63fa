// The aws driver under the job system: a worker on the real MariaDB and NATS runs a job that reaches a fake EC2
// endpoint through withCloud (account and cloud rows in the database, credentials from a KM stand-in). A throttled
// EC2 is retried by the job system with its backoff; refused credentials fail the job at once with a clear reason; a
// server.launch with firewalls, a key pair, sealed user data and tags, throttled once, is retried and its RunInstances
// carries the provider's group id, key name, tags and the script, which reaches no row or log line.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { withCloud } from "../../../src/clouds/access.js";
import { createAwsDriver } from "../../../src/clouds/aws/driver.js";
import { createDriverRegistry } from "../../../src/clouds/registry.js";
import { newId } from "../../../src/db/ids.js";
import type { JobKind } from "../../../src/jobs/catalog.js";
import { startWorker, type RunningWorker } from "../../../src/jobs/worker.js";
import type { KmClient } from "../../../src/km/client.js";
import { openExecHarness, types, type ExecHarness } from "../../jobs/exec-support.js";
import { until } from "../../support/poll.js";
import { FakeEc2 } from "./fake-ec2.js";
import { insertAccount, insertCloud } from "../../support/rows.js";
import { credentialKeyOf } from "../../../src/agent/secrets.js";
import { serviceOf } from "../../../src/clouds/resources.js";
import { generateKeyPair } from "../../../src/clouds/ssh-keys.js";
import { insertResource } from "../../../src/resources/repository.js";
import { SERVER_LAUNCH_KIND } from "../../../src/servers/kinds/names.js";
import { findServer, insertServer } from "../../../src/servers/repository.js";
import { sealUserData } from "../../../src/servers/user-data.js";

const ACCESS_KEY = "AKIAJOBTESTEXAMPLE01";
const SECRET = "jobTestSecretKey/K7MDENG/bPxRfiCYEXAMPLE";
const KIND = "test.aws-identity";

const fake = new FakeEc2({ accessKeyIds: [ACCESS_KEY] });
let h: ExecHarness;
let worker: RunningWorker;
let endpoint = "";
let cloudOf = "";
const credentialsById = new Map<string, Record<string, string>>();

// What a job of the coming servers and discovery kinds does first: reach the account's cloud through withCloud.
const identityKind: JobKind<{ accountId: string }> = {
  kind: KIND,
  payload: z.object({ accountId: z.string() }),
  ackWaitMs: 10_000,
  maxAttempts: 3,
  backoffMs: [100],
  timeoutMs: 60_000,
  permission: "admin.diagnostics",
  async handle(ctx, p) {
    const answer = await withCloud(ctx, p.accountId, { purpose: KIND, timeoutMs: 20_000 }, (driver, target, call) => driver.testContext(target, call));
    return { status: "succeeded", result: { providerAccountId: answer.providerAccountId } };
  },
};

const km = {
  async useCredential(input: { id: string }, use: (fields: Readonly<Record<string, string>>) => Promise<unknown>) {
    const fields = credentialsById.get(input.id);
    if (!fields) throw new Error(`no credential ${input.id}`);
    return use(Object.freeze({ ...fields }));
  },
} as unknown as KmClient;

beforeAll(async () => {
  const url = await fake.start();
  endpoint = url;
  h = await openExecHarness("awsjob", { leaseMs: 2_000 });
  h.catalog.register(identityKind);
  const cloudId = newId();
  cloudOf = cloudId;
  await insertCloud(h.sql, { id: cloudId, name: `aws-${cloudId}`, driver: "aws", endpoint: url });
  await insertAccount(h.sql, { id: "A".repeat(26), name: "good", cloudId, credentialId: "cred-good" });
  await insertAccount(h.sql, { id: "B".repeat(26), name: "bad", cloudId, credentialId: "cred-bad" });
  credentialsById.set("cred-good", { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET });
  credentialsById.set("cred-bad", { accessKeyId: "AKIAREVOKEDKEY000001", secretAccessKey: SECRET });
  const drivers = createDriverRegistry([createAwsDriver()]);
  // The first call loads the SDK (seconds on a busy machine): done here, so no job attempt's deadline pays for it.
  await drivers.get("aws").testContext({ cloud: { id: cloudId, driver: "aws", endpoint: url }, account: { id: "warm-up", providerAccountId: null }, credentials: credentialsById.get("cred-good")! }, { signal: new AbortController().signal, deadline: new Date(Date.now() + 60_000) });
  fake.calls.length = 0;
  const resources = { ...h.resources("aws-w1"), drivers, km: () => km };
  worker = await startWorker({ resources, catalog: h.catalog });
});
afterAll(async () => {
  await worker?.stop(1_000);
  await h?.close();
  await fake.stop();
});

async function run(accountId: string): Promise<string> {
  const id = await h.insertJob({ kind: KIND, payload: { accountId }, maxAttempts: 3 });
  await h.publish(id, KIND);
  return id;
}

describe("aws driver in jobs", () => {
  it("EC2 throttles once: the job retries with its backoff and succeeds on attempt 2", async () => {
    fake.failNext(1, "RequestLimitExceeded", { message: "Request limit exceeded." });
    const id = await run("A".repeat(26));
    const row = await h.waitForState(id, ["SUCCEEDED", "FAILED"]);
    expect(row).toMatchObject({ state: "SUCCEEDED", attempt: 2, result: { providerAccountId: "123456789012" } });
    const events = await h.events(id);
    expect(types(events)).toEqual(["created", "started", "retry_scheduled", "started", "succeeded"]);
    expect(events[2]!.message).toMatch(/RESOURCE_EXHAUSTED: aws cloud aws-\w+: AWS DescribeSecurityGroups failed \(RequestLimitExceeded\)/);
  });

  it("AWS refuses the credentials: the job fails at once with the reason and no secret", async () => {
    const id = await run("B".repeat(26));
    const row = await h.waitForState(id, ["SUCCEEDED", "FAILED"]);
    expect(row).toMatchObject({ state: "FAILED", attempt: 1, errorCode: "PERMISSION_DENIED" });
    expect(row.errorMessage).toMatch(/AWS refused the credentials \(AuthFailure\)/);
    expect(row.errorDetails).toMatchObject({ driverCode: "AUTH", providerCode: "AuthFailure" });
    const everything = JSON.stringify({ row, events: await h.events(id), logs: h.lines });
    for (const secret of [SECRET, "AKIAREVOKEDKEY000001"]) expect(everything).not.toContain(secret);
  });
});

describe("server.launch with options on aws", () => {
  it("is throttled once, retried by the job system, and RunInstances carries the group, key, tags and script", async () => {
    const accountId = "A".repeat(26);
    const drivers = createDriverRegistry([createAwsDriver()]);
    const target = { cloud: { id: cloudOf, driver: "aws", endpoint }, account: { id: accountId, providerAccountId: null }, credentials: credentialsById.get("cred-good")! };
    const call = { signal: new AbortController().signal, deadline: new Date(Date.now() + 30_000) };
    const aws = drivers.get("aws");
    const group = await serviceOf(aws, "firewalls").create(target, { regionId: "eu-west-1", name: "job-web", description: "web", clientToken: newId(), tags: {} }, call);
    const key = await serviceOf(aws, "keyPairs").importKey(target, { regionId: "eu-west-1", name: "job-ops", clientToken: newId(), tags: {}, publicKey: generateKeyPair("ed25519", "").publicKey }, call);
    const row = (type: "firewall" | "key_pair", providerId: string, name: string) => ({ id: newId(), accountId, regionId: "eu-west-1", type, providerId, name, state: "AVAILABLE", origin: "CREATED" as const, budgetCode: "", tags: {}, details: {}, clientToken: null, hourlyPriceMicros: 0n, createdBy: "t" });
    const fw = row("firewall", group.providerId, "job-web");
    const kp = row("key_pair", key.providerId, "job-ops");
    await insertResource(h.sql, fw);
    await insertResource(h.sql, kp);
    const serverId = newId();
    await insertServer(h.sql, { id: serverId, accountId, regionId: "eu-west-1", dataCenter: "", providerId: null, name: "job-server", productId: "t3.micro", imageId: "ami-1a2b3c4d", budgetCode: "", state: "PENDING", origin: "LAUNCHED", addresses: { private: [], public: [] }, details: {}, tags: { role: "web" }, hourlyPriceMicros: 0n, accruesWhenStopped: false, launchedAt: null, createdBy: "t" });
    const script = `#!/bin/sh\necho job-s3cret-${serverId} > /root/marker\n`;
    fake.calls.length = 0;
    fake.failNext(1, "RequestLimitExceeded", { action: "RunInstances", message: "Request limit exceeded." });
    const id = await h.insertJob({ kind: SERVER_LAUNCH_KIND, payload: { serverId, firewallIds: [fw.id], keyPairId: kp.id, userData: sealUserData(credentialKeyOf(h.config), serverId, script) }, maxAttempts: 3 });
    await h.publish(id, SERVER_LAUNCH_KIND);
    // The handler's part ends with the provider id recorded (the monitor's checks are not running here).
    const launched = await until(async () => (await findServer(h.sql, serverId))?.providerId ?? null, 30_000, "the provider id");
    const events = await h.events(id);
    expect(types(events).slice(0, 4)).toEqual(["created", "started", "retry_scheduled", "started"]);
    expect(events[2]!.message).toMatch(/RunInstances failed \(RequestLimitExceeded\)/);
    const runs = fake.callsOf("RunInstances");
    expect(runs).toHaveLength(2);
    const sent = Object.fromEntries(runs[1]!.params);
    expect(sent).toMatchObject({ "SecurityGroupId.1": group.providerId, KeyName: "job-ops", ClientToken: serverId, "TagSpecification.1.Tag.2.Key": "role", "TagSpecification.1.Tag.2.Value": "web" });
    expect(Buffer.from(sent.UserData!, "base64").toString("utf8")).toContain(script);
    expect(launched).toMatch(/^i-/);
    const stored = JSON.stringify({ job: await h.job(id), events, logs: h.lines, servers: await h.sql.query`SELECT * FROM servers WHERE id = ${serverId}` }, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
    expect(stored).not.toContain(`job-s3cret-${serverId}`);
  }, 60_000);
});
