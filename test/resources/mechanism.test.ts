// The generic resource mechanism on a worker and the monitor's completion checks, against the fake cloud's resource
// services: a create is a job done only when the cloud shows the resource (provider id recorded at once, client token =
// the row's id, a repeated idempotency key answering the same job), every change leaves history, another account's
// resource is NOT_FOUND, a region without the type's capability is refused naming it until discovery adds it (no
// restart), tags are set after creation and filter lists, the hard quota refuses with a quota violation, and
// resources.sync adopts what the account has and retires what it no longer has.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FailedPreconditionError, NotFoundError } from "../../src/errors.js";
import type { Principal } from "../../src/iam/principal.js";
import { MONITOR_PRINCIPAL } from "../../src/monitor/scheduler.js";
import { ADDRESS_ALLOCATE_KIND, ADDRESS_RELEASE_KIND, FIREWALL_CREATE_KIND } from "../../src/network/kinds.js";
import { findResource, listResourceEvents } from "../../src/resources/repository.js";
import { createResourceService, type ResourceService } from "../../src/resources/service.js";
import { RESOURCES_SYNC_KIND } from "../../src/resources/sync.js";
import { ADDRESS, FIREWALL } from "../../src/resources/types.js";
import { seedAccount, seedBudgetCode, startServersFixture, type ServersFixture } from "../servers/support.js";
import { withFakeResources, type FakeResources } from "./fake-services.js";

let f: ServersFixture;
let fake: FakeResources;
let svc: ResourceService;
let account: string;
let other: string;
let op: Principal;
let outsider: Principal;

const REGIONS = [
  { id: "r1", dataCenters: ["r1-a"], capabilities: ["compute", "firewalls", "static_addresses", "key_pairs"] },
  { id: "r2", dataCenters: ["r2-a"], capabilities: ["compute"] },
];

const allocate = (over: Partial<Parameters<ResourceService["create"]>[2]> = {}) =>
  svc.create(op, ADDRESS, { accountId: account, regionId: "r1", name: "", budgetCode: "", tags: {}, idempotencyKey: "", kind: ADDRESS_ALLOCATE_KIND, ...over });

const finished = (jobId: string) => f.h.waitForState(jobId, ["SUCCEEDED", "FAILED", "CANCELLED"], 20_000);
const history = async (id: string) => (await listResourceEvents(f.h.sql, id, 0n, 1000)).map((e) => e.type);

beforeAll(async () => {
  f = await startServersFixture("res_mech", { prepare: (cloud) => void (fake = withFakeResources(cloud)) });
  svc = createResourceService({ sql: f.h.sql, db: f.h.db, jobs: f.jobs });
  await seedBudgetCode(f, "NET", { hard: 10_000_000n }, [f.users.operator]);
  account = await seedAccount(f, { defaultBudgetCode: "NET", regions: REGIONS });
  other = await seedAccount(f, { defaultBudgetCode: "NET", regions: REGIONS });
  op = { id: f.users.operator.id, kind: "user", roles: ["operator"], displayName: "operator", accountIds: [account, other] };
  outsider = { id: f.users.scoped.id, kind: "user", roles: ["operator"], displayName: "scoped", accountIds: [other] };
});
afterAll(async () => {
  await f?.close();
});

describe("generic resource jobs", () => {
  it("creates: provider id recorded by the worker, SUCCEEDED once the cloud shows it, a repeated key the same job", async () => {
    fake.steps = 3;
    const { job, resource } = await allocate({ idempotencyKey: "alloc-1", tags: { team: "web" } });
    expect(resource).toMatchObject({ type: "address", state: "PENDING", budgetCode: "NET", origin: "CREATED", clientToken: resource.id, hourlyPriceMicros: 5_000n });
    const again = await allocate({ idempotencyKey: "alloc-1", tags: { team: "web" } });
    expect([again.job.id, again.resource.id]).toEqual([job.id, resource.id]);
    expect((await finished(job.id)).state).toBe("SUCCEEDED");
    const row = await findResource(f.h.sql, resource.id);
    expect(row).toMatchObject({ state: "ALLOCATED", providerId: expect.stringMatching(/^address-/), tags: { team: "web" }, details: { ip: expect.stringMatching(/^198\.51\.100\./), serverProviderId: "" } });
    expect(fake.calls.filter((c) => c === `address.allocate ${resource.id}`)).toHaveLength(1);
    expect(await history(resource.id)).toEqual(["CREATE_REQUESTED", "PROVIDER_ID_ASSIGNED", "STATE_CHANGED", "DETAILS_CHANGED"]);
    const events = await listResourceEvents(f.h.sql, resource.id, 0n, 100);
    expect(events.slice(1).every((e) => e.jobId === job.id)).toBe(true);
    expect(events.find((e) => e.type === "STATE_CHANGED")).toMatchObject({ fromState: "PENDING", toState: "ALLOCATED" });
    fake.steps = 1;
  });

  it("answers NOT_FOUND for another account's resource, and lists only what the caller's accounts hold", async () => {
    const { job, resource } = await allocate();
    await finished(job.id);
    for (const call of [() => svc.get(outsider, ADDRESS, resource.id), () => svc.listEvents(outsider, ADDRESS, resource.id, { pageSize: 10 }), () => svc.act(outsider, ADDRESS, resource.id, { kind: ADDRESS_RELEASE_KIND, idempotencyKey: "", message: "x", deletes: true }), () => svc.setTags(outsider, ADDRESS, resource.id, { set: { a: "b" }, remove: [] }, "")]) {
      await expect(call()).rejects.toBeInstanceOf(NotFoundError);
    }
    // Of the right account but asked for as another type: not found either.
    await expect(svc.get(op, FIREWALL, resource.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(svc.create(outsider, ADDRESS, { accountId: account, regionId: "r1", name: "", budgetCode: "", tags: {}, idempotencyKey: "", kind: ADDRESS_ALLOCATE_KIND })).rejects.toBeInstanceOf(NotFoundError);
    const listed = await svc.list(outsider, ADDRESS, { pageSize: 100 });
    expect(listed.items.map((r) => r.accountId).every((a) => a === other)).toBe(true);
    expect((await svc.list(op, ADDRESS, { pageSize: 100 })).items.map((r) => r.id)).toContain(resource.id);
  });

  it("refuses a region without the type's capability, naming it, and accepts it once discovery records it", async () => {
    const attempt = () => svc.create(op, FIREWALL, { accountId: account, regionId: "r2", name: "", budgetCode: "", tags: {}, idempotencyKey: "", kind: FIREWALL_CREATE_KIND, payload: { description: "d" } });
    const err = await attempt().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect(err).toMatchObject({ reason: "CAPABILITY_MISSING", metadata: { capability: "firewalls", region: "r2" } });
    expect((err as Error).message).toContain("firewalls");
    await f.h.sql.execute`INSERT INTO subscriptions (account_id, region_id, capability) VALUES (${account}, 'r2', 'firewalls')`;
    const { job, resource } = await attempt();
    expect((await finished(job.id)).state).toBe("SUCCEEDED");
    expect((await findResource(f.h.sql, resource.id))?.state).toBe("AVAILABLE");
    await f.h.sql.execute`DELETE FROM subscriptions WHERE account_id = ${account} AND region_id = 'r2' AND capability = 'firewalls'`;
  });

  it("sets and removes tags after creation, done when the cloud shows them, and filters lists by tag", async () => {
    const { job, resource } = await allocate({ tags: { env: "dev", owner: "ann" } });
    await finished(job.id);
    const tagJob = await svc.setTags(op, ADDRESS, resource.id, { set: { env: "prod", tier: "edge" }, remove: ["owner"] }, "");
    expect((await finished(tagJob.id)).state).toBe("SUCCEEDED");
    expect((await findResource(f.h.sql, resource.id))?.tags).toEqual({ env: "prod", tier: "edge" });
    expect(await history(resource.id)).toEqual(expect.arrayContaining(["ACTION_REQUESTED", "TAGS_CHANGED"]));
    const byTag = await svc.list(op, ADDRESS, { tags: { env: "prod", tier: "edge" }, pageSize: 100 });
    expect(byTag.items.map((r) => r.id)).toEqual([resource.id]);
    expect((await svc.list(op, ADDRESS, { tags: { env: "dev" }, pageSize: 100 })).items.map((r) => r.id)).not.toContain(resource.id);
    await expect(svc.setTags(op, ADDRESS, resource.id, { set: { "aws:x": "1", ok: "\u0000" }, remove: [] }, "")).rejects.toMatchObject({ code: "INVALID_ARGUMENT", violations: [expect.objectContaining({ field: 'set["aws:x"]' }), expect.objectContaining({ field: 'set["ok"]' })] });
    await expect(allocate({ tags: { "dispatcher:client-token": "x" } })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("admits a priced create only within the budget code's hard quota, with a quota violation otherwise", async () => {
    await seedBudgetCode(f, "TINY", { hard: 100n }, [f.users.operator]);
    const err = await allocate({ budgetCode: "TINY" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "FAILED_PRECONDITION", reason: "QUOTA_EXCEEDED", quotaViolations: [expect.objectContaining({ subject: "budget_codes/TINY" })] });
    // A type that costs nothing needs no budget code.
    const { resource } = await svc.create(op, FIREWALL, { accountId: account, regionId: "r1", name: "free", budgetCode: "TINY", tags: {}, idempotencyKey: "", kind: FIREWALL_CREATE_KIND });
    expect(resource.budgetCode).toBe("");
  });

  it("deletes: gone from the cloud ends the row DELETED with its history, and deleted resources take no more jobs", async () => {
    const { job, resource } = await allocate();
    await finished(job.id);
    const del = await svc.act(op, ADDRESS, resource.id, { kind: ADDRESS_RELEASE_KIND, idempotencyKey: "", message: "release", deletes: true });
    expect((await finished(del.id)).state).toBe("SUCCEEDED");
    const row = await findResource(f.h.sql, resource.id);
    expect(row?.state).toBe("DELETED");
    expect(row?.deletedAt).toBeInstanceOf(Date);
    expect(await history(resource.id)).toEqual(expect.arrayContaining(["DELETE_REQUESTED", "STATE_CHANGED"]));
    expect((await svc.list(op, ADDRESS, { pageSize: 100 })).items.map((r) => r.id)).not.toContain(resource.id);
    await expect(svc.act(op, ADDRESS, resource.id, { kind: ADDRESS_RELEASE_KIND, idempotencyKey: "", message: "again", deletes: true })).rejects.toMatchObject({ reason: "RESOURCE_DELETED" });
  });

  it("discovery adopts what the account has, updates what it knows and retires what is gone", async () => {
    const { job, resource } = await allocate();
    await finished(job.id);
    const known = (await findResource(f.h.sql, resource.id))!;
    fake.plant(account, "firewall", { providerId: "sg-planted", name: "legacy", tags: { from: "console" } });
    fake.plant(account, "key_pair", { providerId: "kp-planted", name: "deploy" });
    fake.remove(known.providerId!);
    const sync = await f.jobs.createJob({ kind: RESOURCES_SYNC_KIND, payload: { accountId: account }, requester: MONITOR_PRINCIPAL, resource: { type: "account", id: account }, idempotencyKey: null });
    expect((await finished(sync.job.id)).state).toBe("SUCCEEDED");
    const firewalls = (await svc.list(op, FIREWALL, { accountId: account, tags: { from: "console" }, pageSize: 100 })).items;
    expect(firewalls).toHaveLength(1);
    expect(firewalls[0]).toMatchObject({ providerId: "sg-planted", origin: "DISCOVERED", name: "legacy", state: "AVAILABLE", createdBy: "discovery" });
    expect(await history(firewalls[0]!.id)).toEqual(["ADOPTED"]);
    expect((await findResource(f.h.sql, resource.id))?.state).toBe("DELETED");
    // A second sync changes nothing.
    const again = await f.jobs.createJob({ kind: RESOURCES_SYNC_KIND, payload: { accountId: account }, requester: MONITOR_PRINCIPAL, resource: { type: "account", id: account }, idempotencyKey: null });
    expect((await finished(again.job.id)).state).toBe("SUCCEEDED");
    expect((await svc.list(op, FIREWALL, { accountId: account, tags: { from: "console" }, pageSize: 100 })).items).toHaveLength(1);
    expect(await history(firewalls[0]!.id)).toEqual(["ADOPTED"]);
  });
});
