// Storage jobs on a worker and the monitor's completion checks, against the local cloud's real storage services
// (directories under a temporary data directory): a volume create is done when the volume is seen AVAILABLE, a snapshot
// when seen COMPLETED, a volume from a snapshot holds the snapshot's files, a bucket's delete fails while it holds an
// object and succeeds once empty, every step leaves history, and discovery adopts what the account already had.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLocalDriver } from "../../src/clouds/local/driver.js";
import type { DriverServices } from "../../src/clouds/resources.js";
import type { Principal } from "../../src/iam/principal.js";
import { MONITOR_PRINCIPAL } from "../../src/monitor/scheduler.js";
import { findResource, listResourceEvents } from "../../src/resources/repository.js";
import { createResourceService, type ResourceService } from "../../src/resources/service.js";
import { RESOURCES_SYNC_KIND } from "../../src/resources/sync.js";
import { BUCKET, SNAPSHOT, VOLUME } from "../../src/resources/types.js";
import { BUCKET_CREATE_KIND, BUCKET_DELETE_KIND, SNAPSHOT_CREATE_KIND, VOLUME_CREATE_KIND, VOLUME_DELETE_KIND } from "../../src/storage/kinds.js";
import { seedAccount, seedBudgetCode, startServersFixture, type ServersFixture } from "../servers/support.js";

const dataDir = mkdtempSync(join(tmpdir(), "storage-kinds-"));
let f: ServersFixture;
let svc: ResourceService;
let account: string;
let op: Principal;
let local: ReturnType<typeof createLocalDriver>;

const REGION = { id: "local", dataCenters: ["local-a"], capabilities: ["compute", "block_storage", "object_storage"] };
const finished = (jobId: string) => f.h.waitForState(jobId, ["SUCCEEDED", "FAILED", "CANCELLED"], 30_000);
const history = async (id: string) => (await listResourceEvents(f.h.sql, id, 0n, 1000)).map((e) => e.type);

beforeAll(async () => {
  // The fake cloud's credentials carry key "fake-secret": make it this local cloud's account key.
  mkdirSync(join(dataDir, "local-cloud"), { recursive: true });
  writeFileSync(join(dataDir, "local-cloud", "account.key"), "fake-secret\n", { mode: 0o600 });
  const catalogFile = join(dataDir, "catalog.json");
  writeFileSync(catalogFile, JSON.stringify({ regions: [{ id: "local", name: "here", dataCenters: ["local-a"], capabilities: REGION.capabilities }] }));
  local = createLocalDriver({ dataDir, catalogFile, stopGraceMs: 500, addressing: false });
  f = await startServersFixture("storage_kinds", {
    prepare: (cloud) => {
      const s = local.services as DriverServices;
      (cloud as { services?: DriverServices }).services = { volumes: s.volumes, snapshots: s.snapshots, blobStore: s.blobStore, tags: s.tags };
    },
  });
  svc = createResourceService({ sql: f.h.sql, db: f.h.db, jobs: f.jobs });
  await seedBudgetCode(f, "STO", { hard: 10_000_000n }, [f.users.operator]);
  account = await seedAccount(f, { defaultBudgetCode: "STO", regions: [REGION] });
  op = { id: f.users.operator.id, kind: "user", roles: ["operator"], displayName: "operator", accountIds: [account] };
});
afterAll(async () => {
  await f?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** The account's storage directory in the local cloud (named by a fingerprint of its key). */
const storageDir = (): string => {
  const root = join(dataDir, "local-cloud");
  return join(root, readdirSync(root).find((d) => /^[0-9a-f]{16}$/.test(d)) as string, "storage");
};

describe("storage jobs on the local cloud", () => {
  it("a volume is done when seen AVAILABLE; a snapshot when seen COMPLETED; a volume from it holds its files", async () => {
    const { job, resource } = await svc.create(op, VOLUME, { accountId: account, regionId: "local", name: "data", budgetCode: "", tags: { team: "db" }, idempotencyKey: "vol-1", kind: VOLUME_CREATE_KIND, payload: { sizeGiB: 2, volumeType: "", dataCenter: "", snapshotId: null } });
    expect((await finished(job.id)).state).toBe("SUCCEEDED");
    const volume = await findResource(f.h.sql, resource.id);
    expect(volume).toMatchObject({ state: "AVAILABLE", providerId: expect.stringMatching(/^vol-/), tags: { team: "db" }, details: { sizeGiB: "2", volumeType: "standard", dataCenter: "local-a", serverProviderId: "" } });
    expect(await history(resource.id)).toEqual(["CREATE_REQUESTED", "PROVIDER_ID_ASSIGNED", "STATE_CHANGED", "DETAILS_CHANGED"]);

    // What a guest would have written through its mount.
    writeFileSync(join(storageDir(), volume!.providerId!, "note.txt"), "kept");
    const snap = await svc.create(op, SNAPSHOT, { accountId: account, regionId: "local", name: "nightly", budgetCode: "", tags: {}, idempotencyKey: "", kind: SNAPSHOT_CREATE_KIND, payload: { volumeId: resource.id, description: "before" } });
    expect((await finished(snap.job.id)).state).toBe("SUCCEEDED");
    expect(await findResource(f.h.sql, snap.resource.id)).toMatchObject({ state: "COMPLETED", details: { volumeId: volume!.providerId, sizeGiB: "2" } });

    const copy = await svc.create(op, VOLUME, { accountId: account, regionId: "local", name: "copy", budgetCode: "", tags: {}, idempotencyKey: "", kind: VOLUME_CREATE_KIND, payload: { sizeGiB: 2, snapshotId: snap.resource.id } });
    expect((await finished(copy.job.id)).state).toBe("SUCCEEDED");
    const copied = await findResource(f.h.sql, copy.resource.id);
    expect(readFileSync(join(storageDir(), copied!.providerId!, "note.txt"), "utf8")).toBe("kept");

    const del = await svc.act(op, VOLUME, resource.id, { kind: VOLUME_DELETE_KIND, idempotencyKey: "", message: "delete", deletes: true });
    expect((await finished(del.id)).state).toBe("SUCCEEDED");
    expect(await findResource(f.h.sql, resource.id)).toMatchObject({ state: "DELETED" });
    expect(await history(resource.id)).toContain("DELETE_REQUESTED");
  });

  it("a bucket that holds an object cannot be deleted (the job fails saying so); empty, it can", async () => {
    const { job, resource } = await svc.create(op, BUCKET, { accountId: account, regionId: "local", name: "files-one", budgetCode: "", tags: {}, idempotencyKey: "", kind: BUCKET_CREATE_KIND });
    expect((await finished(job.id)).state).toBe("SUCCEEDED");
    const bucket = await findResource(f.h.sql, resource.id);
    const blob = (local.services as DriverServices).blobStore!;
    const target = { cloud: { id: "c", driver: "local", endpoint: "" }, account: { id: account, providerAccountId: null }, credentials: { key: "fake-secret" } };
    const opts = () => ({ signal: new AbortController().signal, deadline: new Date(Date.now() + 10_000) });
    async function* body() {
      yield Buffer.from("hello");
    }
    await blob.putObject(target, { regionId: "local", providerId: bucket!.providerId! }, "a.txt", body(), opts());

    const refused = await svc.act(op, BUCKET, resource.id, { kind: BUCKET_DELETE_KIND, idempotencyKey: "", message: "delete", deletes: true });
    const failed = await finished(refused.id);
    expect(failed.state).toBe("FAILED");
    expect(JSON.stringify(failed)).toContain("not empty");
    expect(await findResource(f.h.sql, resource.id)).toMatchObject({ state: "AVAILABLE" });

    await blob.deleteObject(target, { regionId: "local", providerId: bucket!.providerId! }, "a.txt", opts());
    const ok = await svc.act(op, BUCKET, resource.id, { kind: BUCKET_DELETE_KIND, idempotencyKey: "", message: "delete", deletes: true });
    expect((await finished(ok.id)).state).toBe("SUCCEEDED");
    expect(await findResource(f.h.sql, resource.id)).toMatchObject({ state: "DELETED" });
  });

  it("discovery adopts a volume the account made behind the dispatcher's back", async () => {
    const vols = (local.services as DriverServices).volumes!;
    const target = { cloud: { id: "c", driver: "local", endpoint: "" }, account: { id: account, providerAccountId: null }, credentials: { key: "fake-secret" } };
    const made = await vols.create(target, { regionId: "local", dataCenter: "", name: "outside", clientToken: "outside-1", tags: {}, sizeGiB: 1, volumeType: "", snapshotId: null }, { signal: new AbortController().signal, deadline: new Date(Date.now() + 10_000) });
    const { job } = await f.jobs.createJob({ kind: RESOURCES_SYNC_KIND, payload: { accountId: account }, requester: MONITOR_PRINCIPAL, resource: { type: "account", id: account }, idempotencyKey: null });
    expect((await finished(job.id)).state).toBe("SUCCEEDED");
    const listed = await svc.list(op, VOLUME, { pageSize: 100 });
    expect(listed.items.find((r) => r.providerId === made.providerId)).toMatchObject({ origin: "DISCOVERED", state: "AVAILABLE", name: "outside" });
  });
});
