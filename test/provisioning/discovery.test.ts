// Account validation and discovery end to end over a real gRPC server, MariaDB, JetStream, a worker and the monitor's
// discovery scheduler, with an in-test cloud driver: connecting an account makes it ACTIVE through its validation job;
// bad credentials make it FAILED with a clear reason and one VALIDATION_FAILED event; a capability added in the cloud
// shows up after one discovery cycle, with an event; the API shows only what is subscribed; DiscoverAccount is scoped.
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DispatcherClients } from "../../src/client/index.js";
import { AccountStatus } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import { JobState } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { createApiKey } from "../../src/iam/api-keys/keys.js";
import { MONITOR_PRINCIPAL, scheduledJobKey } from "../../src/monitor/scheduler.js";
import { SERVERS_SYNC_KIND } from "../../src/servers/kinds/names.js";
import { ACCOUNT_DISCOVER_KIND } from "../../src/provisioning/discovery/kind.js";
import { recordValidationFailure } from "../../src/provisioning/discovery/repository.js";
import { GOOD_KEY, image, openDiscoveryHarness, product, region, TEST_DRIVER, type DiscoveryHarness } from "./discovery-support.js";
import { insertUser } from "./support.js";
import { sleep, until } from "../support/poll.js";

/** Short enough that a test sees a second discovery cycle, long enough that cycles do not pile up. */
const INTERVAL_MS = 1_500;

let h: DiscoveryHarness;
let admin: DispatcherClients;
let cloudId = "";

beforeAll(async () => {
  h = await openDiscoveryHarness("prov_discovery", { discoveryIntervalMs: INTERVAL_MS });
  admin = h.f.client(h.f.users.admin.secret);
  cloudId = (await admin.clouds.createCloud({ name: "test cloud", driver: TEST_DRIVER, endpoint: "https://api.cloud.test" })).cloud?.id ?? "";
});
afterAll(async () => {
  await h?.close();
});

const connect = (name: string, key = GOOD_KEY) => admin.accounts.createAccount({ name, cloudId, credentials: { type: "test-key", fields: { key } } });

async function finished(jobId: string): Promise<{ state: JobState; error?: { code: string; message: string } | undefined }> {
  return until(
    async () => {
      const { job } = await admin.jobs.getJob({ id: jobId });
      return job && [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED].includes(job.state) ? job : null;
    },
    20_000,
    `job ${jobId} to finish`,
  );
}

const eventsOf = async (id: string) => (await admin.accounts.listAccountEvents({ id, pageSize: 1000 })).events;
const subscriptionsOf = async (accountId: string, regionId = "") => (await admin.accounts.listSubscriptions({ accountId, regionId })).subscriptions.map((s) => `${s.regionId}/${s.capability}`).sort();

describe("validation", () => {
  it("connecting an account starts its validation job in the same transaction; the account is ACTIVE once it ran", async () => {
    h.cloud.regions = [region("r1", ["compute", "block_storage"], [product("small"), product("large", 90_000)], [image("base"), image("base")]), region("r2", ["object_storage"])];
    const { account, validationJob } = await connect("valid");
    expect(account?.status).toBe(AccountStatus.ACCOUNT_STATUS_PENDING);
    expect(validationJob).toMatchObject({ kind: ACCOUNT_DISCOVER_KIND, requestedBy: h.f.users.admin.id, resource: { type: "account", id: account?.id } });
    expect((await finished(validationJob?.id ?? "")).state).toBe(JobState.JOB_STATE_SUCCEEDED);

    const after = (await admin.accounts.getAccount({ id: account?.id })).account;
    expect(after).toMatchObject({ status: AccountStatus.ACCOUNT_STATUS_ACTIVE, providerAccountId: "test-account-42" });
    expect(after?.statusMessage).toContain("credentials valid");
    expect(after?.validateTime).toBeInstanceOf(Date);
    expect(after?.discoverTime).toBeInstanceOf(Date);
    expect(after?.etag).not.toBe(account?.etag);
    const listed = await admin.accounts.listSubscriptions({ accountId: account?.id });
    expect(listed.regions.map((r) => r.id)).toEqual(["r1", "r2"]);
    expect(listed.regions[0]).toEqual({ id: "r1", name: "Region r1", dataCenters: ["r1a"] });
    expect(await subscriptionsOf(account?.id ?? "")).toEqual(["r1/block_storage", "r1/compute", "r2/object_storage"]);
    const events = await eventsOf(account?.id ?? "");
    expect(events.map((e) => `${e.type}:${e.regionId}`)).toEqual(["VALIDATED:", "REGION_ADDED:r1", "REGION_ADDED:r2", "SUBSCRIBED:r1", "SUBSCRIBED:r1", "SUBSCRIBED:r2"]);
    expect(events.every((e) => e.jobId === validationJob?.id)).toBe(true);
    // The catalog: products and images only where compute is subscribed, one row per id.
    const products = await h.f.dbs.provisioning.catalogProduct.findMany({ where: { accountId: account?.id ?? "" }, orderBy: { productId: "asc" } });
    expect(products.map((p) => `${p.regionId}/${p.productId}/${p.hourlyPriceMicros}`)).toEqual(["r1/large/90000", "r1/small/10000"]);
    expect(await h.f.dbs.provisioning.catalogImage.count({ where: { accountId: account?.id ?? "" } })).toBe(1);
    const row = await h.f.dbs.provisioning.account.findUniqueOrThrow({ where: { id: account?.id ?? "" } });
    expect(row.nextDiscoveryAt?.getTime()).toBeGreaterThan(Date.now() - 1_000);
    expect(row.nextDiscoveryAt?.getTime()).toBeLessThanOrEqual(Date.now() + INTERVAL_MS);
  });

  it("bad credentials: the job fails with a clear reason, the account is FAILED saying why, with one VALIDATION_FAILED event", async () => {
    const { account, validationJob } = await connect("refused", "wrong-key");
    const job = await finished(validationJob?.id ?? "");
    expect(job.state).toBe(JobState.JOB_STATE_FAILED);
    expect(job.error?.code).toBe("PERMISSION_DENIED");
    expect(job.error?.message).toContain("the access key was refused by the provider");
    const after = (await admin.accounts.getAccount({ id: account?.id })).account;
    expect(after?.status).toBe(AccountStatus.ACCOUNT_STATUS_FAILED);
    expect(after?.statusMessage).toMatch(/^validation failed: .*the access key was refused by the provider/);
    expect(after?.statusMessage).not.toContain("wrong-key");
    const events = await eventsOf(account?.id ?? "");
    expect(events.map((e) => [e.type, e.jobId])).toEqual([["VALIDATION_FAILED", validationJob?.id]]);
    expect(events[0]?.message).toBe(after?.statusMessage);
    // A redelivered attempt of the same job records nothing twice.
    await recordValidationFailure(h.f.sql, { accountId: account?.id ?? "", jobId: validationJob?.id ?? "", message: "again", now: new Date() });
    expect((await eventsOf(account?.id ?? "")).length).toBe(1);
    expect((await admin.accounts.listSubscriptions({ accountId: account?.id })).subscriptions).toEqual([]);
  });
});

describe("scheduled discovery", () => {
  it("a capability added in the cloud shows up after one discovery cycle, with an event; one removed goes, with an event", async () => {
    h.cloud.regions = [region("r1", ["compute"])];
    const { account, validationJob } = await connect("watched");
    const id = account?.id ?? "";
    await finished(validationJob?.id ?? "");
    expect(await subscriptionsOf(id)).toEqual(["r1/compute"]);
    h.cloud.regions = [region("r1", ["compute", "object_storage", "teleport"]), region("r3", ["dns"])];
    const scheduler = h.startScheduler();
    try {
      await until(async () => (await subscriptionsOf(id)).includes("r1/object_storage"), 15_000, "object_storage to be discovered");
      expect(await subscriptionsOf(id)).toEqual(["r1/compute", "r1/object_storage", "r3/dns"]);
      const added = (await eventsOf(id)).filter((e) => e.jobId !== validationJob?.id);
      expect(added.map((e) => `${e.type}:${e.regionId}`)).toEqual(["REGION_ADDED:r3", "SUBSCRIBED:r1", "SUBSCRIBED:r3"]);
      expect(added.find((e) => e.message.includes("object_storage"))?.message).toBe("object_storage subscribed in r1");
      const { job } = await admin.jobs.getJob({ id: added[0]?.jobId });
      expect(job).toMatchObject({ kind: ACCOUNT_DISCOVER_KIND, requestedBy: MONITOR_PRINCIPAL.id, resource: { type: "account", id } });

      h.cloud.regions = [region("r1", ["compute"])];
      await until(async () => !(await subscriptionsOf(id)).includes("r1/object_storage"), 15_000, "object_storage to go");
      const types = (await eventsOf(id)).map((e) => `${e.type}:${e.regionId}`);
      expect(types.slice(-3).sort()).toEqual(["REGION_REMOVED:r3", "UNSUBSCRIBED:r1", "UNSUBSCRIBED:r3"]);
    } finally {
      await scheduler.stop(0);
    }
  });

  it("replicas claim each due account once: one job per account and due time", async () => {
    h.cloud.regions = [region("r1", ["compute"])];
    const { account, validationJob } = await connect("claimed");
    const id = account?.id ?? "";
    await finished(validationJob?.id ?? "");
    // Due now, far from the next cycle: exactly one discovery must start however many replicas poll.
    const due = new Date(Date.now() - 1_000);
    h.config.discovery.intervalMs = 3_600_000;
    await h.f.dbs.provisioning.account.update({ where: { id }, data: { nextDiscoveryAt: due } });
    const replicas = [h.startScheduler({ pollMs: 20 }), h.startScheduler({ pollMs: 20 }), h.startScheduler({ pollMs: 20 })];
    try {
      const job = await until(() => h.f.dbs.provisioning.job.findFirst({ where: { kind: ACCOUNT_DISCOVER_KIND, resourceId: id, requestedBy: MONITOR_PRINCIPAL.id } }), 10_000, "the scheduled job");
      expect(job.idempotencyKey).toBe(scheduledJobKey(ACCOUNT_DISCOVER_KIND, id, due));
      await sleep(500);
      expect(await h.f.dbs.provisioning.job.count({ where: { kind: ACCOUNT_DISCOVER_KIND, resourceId: id, requestedBy: MONITOR_PRINCIPAL.id } })).toBe(1);
      const row = await h.f.dbs.provisioning.account.findUniqueOrThrow({ where: { id } });
      expect(row.nextDiscoveryAt?.getTime()).toBeGreaterThan(Date.now() + 3_000_000);
      // Active accounts get server syncs too; failed ones do not.
      await until(() => h.f.dbs.provisioning.job.findFirst({ where: { kind: SERVERS_SYNC_KIND, resourceId: id } }), 10_000, "a servers.sync job");
      const failed = await h.f.dbs.provisioning.account.findFirstOrThrow({ where: { name: "refused" } });
      expect(await h.f.dbs.provisioning.job.count({ where: { kind: SERVERS_SYNC_KIND, resourceId: failed.id } })).toBe(0);
      expect(await h.f.dbs.provisioning.job.count({ where: { kind: SERVERS_SYNC_KIND, resourceId: id } })).toBe(1);
    } finally {
      await Promise.all(replicas.map((r) => r.stop(0)));
      h.config.discovery.intervalMs = INTERVAL_MS;
    }
  });
});

describe("the API", () => {
  it("shows only subscribed capabilities and the account's regions, to callers whose groups may use the account", async () => {
    h.cloud.regions = [region("r1", ["compute", "dns", "warp_drive"]), region("r2", [])];
    const { account, validationJob } = await connect("shown");
    const id = account?.id ?? "";
    await finished(validationJob?.id ?? "");
    expect(await subscriptionsOf(id)).toEqual(["r1/compute", "r1/dns"]);
    const r2 = await admin.accounts.listSubscriptions({ accountId: id, regionId: "r2" });
    expect(r2).toEqual({ subscriptions: [], regions: [{ id: "r2", name: "Region r2", dataCenters: ["r2a"] }] });
    expect(await admin.accounts.listSubscriptions({ accountId: id, regionId: "nowhere" })).toEqual({ subscriptions: [], regions: [] });

    const userId = await insertUser(h.f.dbs, ["reader"]);
    const reader = h.f.client((await createApiKey(h.f.dbs.provisioning, userId, "reader")).secret);
    const missing = "01HZZZZZZZZZZZZZZZZZZZZZZZ";
    for (const call of [() => reader.accounts.listSubscriptions({ accountId: id }), () => reader.accounts.listAccountEvents({ id })]) {
      await expect(call()).rejects.toMatchObject({ code: status.NOT_FOUND });
    }
    await expect(admin.accounts.listSubscriptions({ accountId: missing })).rejects.toMatchObject({ code: status.NOT_FOUND });
    const { group } = await admin.groups.createGroup({ name: "shown users", roles: [] });
    await admin.groups.addGroupMember({ groupId: group?.id, userId });
    await admin.groups.setGroupAccounts({ groupId: group?.id, accountIds: [id] });
    const member = h.f.client((await createApiKey(h.f.dbs.provisioning, userId, "member")).secret);
    expect((await member.accounts.listSubscriptions({ accountId: id })).subscriptions.map((s) => s.capability).sort()).toEqual(["compute", "dns"]);
    await expect(member.accounts.listSubscriptions({ accountId: "" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "account_id" }] });
  });

  it("pages account events oldest first", async () => {
    const account = await h.f.dbs.provisioning.account.findFirstOrThrow({ where: { name: "valid" } });
    const all = await eventsOf(account.id);
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await admin.accounts.listAccountEvents({ id: account.id, pageSize: 2, pageToken });
      seen.push(...page.events.map((e) => e.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual(all.map((e) => e.id));
    expect(all.length).toBeGreaterThan(2);
    expect([...seen].map(BigInt).sort((a, b) => (a < b ? -1 : 1)).map(String)).toEqual(seen);
    await expect(admin.accounts.listAccountEvents({ id: account.id, pageToken: "bogus" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "page_token" }] });
  });

  it("DiscoverAccount starts a job on demand: operators and admins, in scope, idempotent, not for disabled accounts", async () => {
    const account = await h.f.dbs.provisioning.account.findFirstOrThrow({ where: { name: "valid" } });
    const first = (await admin.accounts.discoverAccount({ id: account.id, idempotencyKey: "now-1" })).job;
    expect(first).toMatchObject({ kind: ACCOUNT_DISCOVER_KIND, requestedBy: h.f.users.admin.id, resource: { type: "account", id: account.id } });
    expect((await admin.accounts.discoverAccount({ id: account.id, idempotencyKey: "now-1" })).job?.id).toBe(first?.id);
    expect((await finished(first?.id ?? "")).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    await expect(h.f.client(h.f.users.reader.secret).accounts.discoverAccount({ id: account.id })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    // An operator whose groups do not name the account: NOT_FOUND, as for an account that does not exist.
    const operator = h.f.client(h.f.users.operator.secret);
    const hidden = (await operator.accounts.discoverAccount({ id: account.id }).catch((e: unknown) => e)) as Error & { code: number };
    const absent = (await operator.accounts.discoverAccount({ id: "01HZZZZZZZZZZZZZZZZZZZZZZZ" }).catch((e: unknown) => e)) as Error & { code: number };
    expect([hidden.code, absent.code]).toEqual([status.NOT_FOUND, status.NOT_FOUND]);
    expect(hidden.message.replace(account.id, "ID")).toBe(absent.message.replace("01HZZZZZZZZZZZZZZZZZZZZZZZ", "ID"));
    await h.f.dbs.provisioning.account.update({ where: { id: account.id }, data: { status: "DISABLED" } });
    try {
      await expect(admin.accounts.discoverAccount({ id: account.id })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION, errorInfo: { reason: "ACCOUNT_DISABLED" } });
    } finally {
      await h.f.dbs.provisioning.account.update({ where: { id: account.id }, data: { status: "ACTIVE" } });
    }
  });
});
