// VolumeService, SnapshotService and ImageService over gRPC with the DB-backed authenticator, a worker and the
// monitor's checks, against the local cloud for real (servers are processes, volumes directories, images copies of a
// server's root): a volume is created, attached to a running server (done when seen attached), refused deletion while
// attached with the reason, detached, snapshotted (done when seen COMPLETED) and copied; an image of a server launches
// a new one; each resource keeps its history and its size-based price; a hard quota refuses a volume with a
// QuotaFailure; discovery adopts and retires what was made behind the dispatcher's back; another account's objects are
// NOT_FOUND; and every method of the three services is in the permission table, each role allowed what it says.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status, type Client, type MethodDefinition } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUILT_IN_CATALOG, type LocalCatalog } from "../../src/clouds/local/catalog.js";
import { createLocalDriver } from "../../src/clouds/local/driver.js";
import { ServerState } from "../../src/gen/proto/dispatcher/v1/servers.js";
import { ImageServiceService, SnapshotServiceService, VolumeServiceService } from "../../src/gen/proto/dispatcher/v1/storage.js";
import { METHOD_PERMISSIONS, isAllowed } from "../../src/iam/permissions.js";
import type { DriverServices } from "../../src/clouds/resources.js";
import { MONITOR_PRINCIPAL } from "../../src/monitor/scheduler.js";
import { RESOURCES_SYNC_KIND } from "../../src/resources/sync.js";
import { hourlyPriceOf, VOLUME } from "../../src/resources/types.js";
import { insecureClient, rawCall } from "../rpc/fixtures.js";
import { seedAccount, seedBudgetCode, startServersFixture, type ServersFixture } from "../servers/support.js";

let local: ReturnType<typeof createLocalDriver>;
const dataDir = mkdtempSync(join(tmpdir(), "storage-api-"));
let f: ServersFixture;
let account: string;
let other: string;
let raw: Client;

const REGION = { id: "local", dataCenters: ["local-a"], capabilities: ["compute", "block_storage"] };
// The catalog row seedAccount records ("img-1") is the local cloud's basic guest here.
const CATALOG: LocalCatalog = { ...BUILT_IN_CATALOG, regions: [{ id: "local", name: "here", dataCenters: ["local-a"], capabilities: REGION.capabilities as LocalCatalog["regions"][number]["capabilities"] }], images: [{ ...(BUILT_IN_CATALOG.images[0] as LocalCatalog["images"][number]), id: "img-1" }] };
const finished = (jobId: string) => f.h.waitForState(jobId, ["SUCCEEDED", "FAILED", "CANCELLED"], 30_000);
const none = { pageSize: 100, pageToken: "", regionId: "", tags: {}, includeDeleted: false };

/** The account's storage directory in the local cloud (named by a fingerprint of its key). */
const storageDir = (): string => {
  const root = join(dataDir, "local-cloud");
  return join(root, readdirSync(root).find((d) => /^[0-9a-f]{16}$/.test(d)) as string, "storage");
};

beforeAll(async () => {
  // The fixture's KM hands out key "fake-secret": make it this local cloud's account key.
  mkdirSync(join(dataDir, "local-cloud"), { recursive: true });
  writeFileSync(join(dataDir, "local-cloud", "account.key"), "fake-secret\n", { mode: 0o600 });
  const catalogFile = join(dataDir, "catalog.json");
  writeFileSync(catalogFile, JSON.stringify(CATALOG));
  local = createLocalDriver({ dataDir, catalogFile, stopGraceMs: 500, addressing: false });
  // The fixture's cloud (driver "fake", which seedAccount's accounts use) becomes the local cloud, servers and all.
  f = await startServersFixture("storage_api", { prepare: (cloud) => void Object.assign(cloud, local, { name: "fake" }) });
  await seedBudgetCode(f, "STO", { hard: 10_000_000n }, [f.users.operator, f.users.scoped]);
  await seedBudgetCode(f, "STO-DB", { hard: 10_000_000n }, [f.users.operator]);
  account = await seedAccount(f, { defaultBudgetCode: "STO", regions: [REGION] });
  other = await seedAccount(f, { defaultBudgetCode: "STO", regions: [REGION] });
  await f.scope(other);
  raw = insecureClient(f.server.address);
}, 60_000);
afterAll(async () => {
  raw?.close();
  const op = f?.client(f.users.admin);
  if (op) {
    const { servers } = await op.servers.listServers({ accountId: "", regionId: "", state: 0, budgetCode: "", pageSize: 100, pageToken: "" });
    for (const s of servers.filter((x) => x.state !== ServerState.SERVER_STATE_TERMINATED)) await op.servers.terminateServer({ id: s.id, idempotencyKey: "" }).then((r) => finished(r.job!.id)).catch(() => undefined);
  }
  await f?.close();
  rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

async function runningServer(imageId = "img-1"): Promise<string> {
  const c = f.client(f.users.operator);
  const launched = await c.servers.launchServer({ accountId: account, regionId: "local", dataCenter: "", productId: "small", imageId, name: "", budgetCode: "", idempotencyKey: "" });
  expect((await finished(launched.job!.id)).state).toBe("SUCCEEDED");
  return launched.server!.id;
}

describe("volumes and snapshots", () => {
  it("creates, attaches (done when seen attached), refuses deleting while attached, detaches, snapshots and copies", async () => {
    const c = f.client(f.users.operator);
    const serverId = await runningServer();
    const created = await c.volumes.createVolume({ accountId: account, regionId: "local", name: "data", sizeGib: 3, volumeType: "", dataCenter: "", snapshotId: "", budgetCode: "", tags: { team: "db" }, idempotencyKey: "vol-data" });
    expect(created.volume).toMatchObject({ info: { state: "PENDING", budgetCode: "STO" }, sizeGib: 3, hourlyPriceMicros: hourlyPriceOf(VOLUME, { sizeGiB: "3" }).toString() });
    // The same idempotency key is the same job and volume.
    const again = await c.volumes.createVolume({ accountId: account, regionId: "local", name: "data", sizeGib: 3, volumeType: "", dataCenter: "", snapshotId: "", budgetCode: "", tags: {}, idempotencyKey: "vol-data" });
    expect([again.job!.id, again.volume!.info!.id]).toEqual([created.job!.id, created.volume!.info!.id]);
    expect((await finished(created.job!.id)).state).toBe("SUCCEEDED");
    const id = created.volume!.info!.id;
    expect((await c.volumes.getVolume({ id })).volume).toMatchObject({ info: { state: "AVAILABLE", providerId: expect.stringMatching(/^vol-/), tags: { team: "db" } }, volumeType: "standard", dataCenter: "local-a" });

    const attach = await c.volumes.attachVolume({ id, serverId, device: "/dev/sdf", idempotencyKey: "" });
    expect((await finished(attach.job!.id)).state).toBe("SUCCEEDED");
    const attached = (await c.volumes.getVolume({ id })).volume!;
    expect(attached).toMatchObject({ info: { state: "IN_USE" }, attachment: { serverId, device: "/dev/sdf" } });

    const refused = await c.volumes.deleteVolume({ id, idempotencyKey: "" }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ codeName: "FAILED_PRECONDITION", errorInfo: { reason: "VOLUME_ATTACHED" } });
    expect((refused as Error).message).toContain(`attached to server ${serverId} as /dev/sdf: detach it first`);

    // A guest's write through its mount, then a snapshot of it and a volume made from the snapshot.
    writeFileSync(join(storageDir(), attached.info!.providerId, "note.txt"), "kept");
    const snap = await c.snapshots.createSnapshot({ volumeId: id, name: "nightly", description: "before upgrade", budgetCode: "", tags: {}, idempotencyKey: "" });
    expect((await finished(snap.job!.id)).state).toBe("SUCCEEDED");
    const snapshot = (await c.snapshots.getSnapshot({ id: snap.snapshot!.info!.id })).snapshot!;
    expect(snapshot).toMatchObject({ info: { state: "COMPLETED", budgetCode: "STO" }, volumeId: id, sizeGib: 3, hourlyPriceMicros: expect.not.stringMatching(/^0$/) });
    await expect(c.volumes.createVolume({ accountId: account, regionId: "local", name: "", sizeGib: 2, volumeType: "", dataCenter: "", snapshotId: snapshot.info!.id, budgetCode: "", tags: {}, idempotencyKey: "" })).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT", fieldViolations: [{ field: "size_gib" }] });
    const copy = await c.volumes.createVolume({ accountId: account, regionId: "local", name: "copy", sizeGib: 4, volumeType: "ssd", dataCenter: "local-a", snapshotId: snapshot.info!.id, budgetCode: "", tags: {}, idempotencyKey: "" });
    expect((await finished(copy.job!.id)).state).toBe("SUCCEEDED");
    const copied = (await c.volumes.getVolume({ id: copy.volume!.info!.id })).volume!;
    expect(copied).toMatchObject({ snapshotId: snapshot.info!.id, sizeGib: 4, volumeType: "ssd" });
    expect(readFileSync(join(storageDir(), copied.info!.providerId, "note.txt"), "utf8")).toBe("kept");

    const detach = await c.volumes.detachVolume({ id, idempotencyKey: "" });
    expect((await finished(detach.job!.id)).state).toBe("SUCCEEDED");
    await expect(c.volumes.detachVolume({ id, idempotencyKey: "" })).rejects.toMatchObject({ codeName: "FAILED_PRECONDITION", errorInfo: { reason: "VOLUME_NOT_ATTACHED" } });
    const tag = await c.volumes.setVolumeTags({ id, change: { set: { tier: "gold" }, remove: ["team"] }, idempotencyKey: "" });
    expect((await finished(tag.job!.id)).state).toBe("SUCCEEDED");
    expect((await c.volumes.listVolumes({ ...none, accountId: account, tags: { tier: "gold" } })).volumes.map((v) => v.info!.id)).toEqual([id]);

    for (const del of [c.snapshots.deleteSnapshot({ id: snapshot.info!.id, idempotencyKey: "" }), c.volumes.deleteVolume({ id, idempotencyKey: "" }), c.volumes.deleteVolume({ id: copied.info!.id, idempotencyKey: "" })]) {
      expect((await finished((await del).job!.id)).state).toBe("SUCCEEDED");
    }
    const states = (await c.volumes.listVolumeEvents({ id, pageSize: 100, pageToken: "" })).events.filter((e) => e.type === "STATE_CHANGED").map((e) => e.toState);
    expect(states).toEqual(["AVAILABLE", "IN_USE", "AVAILABLE", "DELETED"]);
    expect((await c.snapshots.listSnapshotEvents({ id: snapshot.info!.id, pageSize: 100, pageToken: "" })).events.map((e) => e.type)).toContain("DELETE_REQUESTED");
    expect(readdirSync(storageDir()).filter((d) => d.startsWith("vol-") || d.startsWith("snap-"))).toEqual([]);
  });

  it("answers bad fields with violations, and a hard quota refuses a volume with a QuotaFailure", async () => {
    const c = f.client(f.users.operator);
    const bad = await c.volumes.createVolume({ accountId: account, regionId: "local", name: "", sizeGib: 0, volumeType: "no such/type", dataCenter: "", snapshotId: "", budgetCode: "", tags: {}, idempotencyKey: "" }).catch((e: { fieldViolations: Array<{ field: string }> }) => e);
    expect((bad as { fieldViolations: Array<{ field: string }> }).fieldViolations.map((v) => v.field)).toEqual(["size_gib", "volume_type"]);
    await expect(c.volumes.createVolume({ accountId: account, regionId: "local", name: "", sizeGib: 1, volumeType: "", dataCenter: "elsewhere", snapshotId: "", budgetCode: "", tags: {}, idempotencyKey: "" })).rejects.toMatchObject({ fieldViolations: [{ field: "data_center" }] });
    await expect(c.volumes.attachVolume({ id: "x", serverId: "y", device: "sdf", idempotencyKey: "" })).rejects.toMatchObject({ fieldViolations: [{ field: "device" }] });
    // 16 TiB at $0.08 a GiB-month is $1,310.72 a month; the code allows $0.50.
    await seedBudgetCode(f, "STO-TINY", { hard: 50n }, [f.users.operator]);
    const err = await c.volumes.createVolume({ accountId: account, regionId: "local", name: "", sizeGib: 16_384, volumeType: "", dataCenter: "", snapshotId: "", budgetCode: "STO-TINY", tags: {}, idempotencyKey: "" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ codeName: "FAILED_PRECONDITION", quotaViolations: [{ subject: "budget_codes/STO-TINY" }] });
  });
});

describe("budget codes of what is made from something", () => {
  it("bills a snapshot to its volume's code and an image to its server's, unless the caller names one", async () => {
    const c = f.client(f.users.operator);
    const vol = await c.volumes.createVolume({ accountId: account, regionId: "local", name: "db", sizeGib: 1, volumeType: "", dataCenter: "", snapshotId: "", budgetCode: "STO-DB", tags: {}, idempotencyKey: "" });
    expect((await finished(vol.job!.id)).state).toBe("SUCCEEDED");
    const volumeId = vol.volume!.info!.id;
    const inherited = await c.snapshots.createSnapshot({ volumeId, name: "", description: "", budgetCode: "", tags: {}, idempotencyKey: "" });
    const named = await c.snapshots.createSnapshot({ volumeId, name: "", description: "", budgetCode: "STO", tags: {}, idempotencyKey: "" });
    expect([inherited.snapshot!.info!.budgetCode, named.snapshot!.info!.budgetCode]).toEqual(["STO-DB", "STO"]);

    const launched = await c.servers.launchServer({ accountId: account, regionId: "local", dataCenter: "", productId: "small", imageId: "img-1", name: "", budgetCode: "STO-DB", idempotencyKey: "" });
    expect((await finished(launched.job!.id)).state).toBe("SUCCEEDED");
    const image = await c.images.createImage({ serverId: launched.server!.id, name: "", description: "", budgetCode: "", tags: {}, idempotencyKey: "" });
    expect(image.image!.info!.budgetCode).toBe("STO-DB");
    for (const job of [inherited.job!, named.job!, image.job!]) expect((await finished(job.id)).state).toBe("SUCCEEDED");
    // Gone again, so that the listings below see only what they make.
    const deletes = [
      c.images.deleteImage({ id: image.image!.info!.id, idempotencyKey: "" }),
      c.snapshots.deleteSnapshot({ id: inherited.snapshot!.info!.id, idempotencyKey: "" }),
      c.snapshots.deleteSnapshot({ id: named.snapshot!.info!.id, idempotencyKey: "" }),
      c.volumes.deleteVolume({ id: volumeId, idempotencyKey: "" }),
    ];
    for (const del of deletes) expect((await finished((await del).job!.id)).state).toBe("SUCCEEDED");
  }, 60_000);
});

describe("volumes named at launch", () => {
  it("creates a new volume and attaches it and an existing one once the server runs; refuses bad and foreign volumes before launching", async () => {
    const c = f.client(f.users.operator);
    const existing = await c.volumes.createVolume({ accountId: account, regionId: "local", name: "", sizeGib: 1, volumeType: "", dataCenter: "", snapshotId: "", budgetCode: "", tags: {}, idempotencyKey: "" });
    await finished(existing.job!.id);
    const launch = { accountId: account, regionId: "local", dataCenter: "", productId: "small", imageId: "img-1", name: "", budgetCode: "", idempotencyKey: "with-volumes" };
    const vols = [{ device: "/dev/sdf", volumeId: existing.volume!.info!.id, sizeGib: 0, volumeType: "", snapshotId: "" }, { device: "/dev/sdg", volumeId: "", sizeGib: 2, volumeType: "ssd", snapshotId: "" }];
    const launched = await c.servers.launchServer({ ...launch, volumes: vols });
    expect(launched.volumeJobs).toHaveLength(2);
    // The same key: the same server and the same attach jobs.
    const again = await c.servers.launchServer({ ...launch, volumes: vols });
    expect([again.server!.id, ...again.volumeJobs.map((j) => j.id)]).toEqual([launched.server!.id, ...launched.volumeJobs.map((j) => j.id)]);
    for (const j of [launched.job!, ...launched.volumeJobs]) expect((await finished(j.id)).state).toBe("SUCCEEDED");
    const made = launched.volumeJobs[1]!.resource!.id;
    for (const [id, device] of [[existing.volume!.info!.id, "/dev/sdf"], [made, "/dev/sdg"]] as const) {
      expect((await c.volumes.getVolume({ id })).volume).toMatchObject({ info: { state: "IN_USE" }, attachment: { serverId: launched.server!.id, device } });
    }
    expect((await c.volumes.getVolume({ id: made })).volume).toMatchObject({ sizeGib: 2, volumeType: "ssd", info: { budgetCode: "STO", tags: { "launched-with": launched.server!.id } } });

    const before = (await c.servers.listServers({ accountId: account, regionId: "", state: 0, budgetCode: "", pageSize: 1000, pageToken: "" })).servers.length;
    const bad = await c.servers.launchServer({ ...launch, idempotencyKey: "", volumes: [{ device: "sdf", volumeId: "", sizeGib: 0, volumeType: "", snapshotId: "" }, { device: "/dev/sdh", volumeId: "x", sizeGib: 3, volumeType: "", snapshotId: "" }] }).catch((e: unknown) => e);
    expect((bad as { fieldViolations: Array<{ field: string }> }).fieldViolations.map((v) => v.field)).toEqual(["volumes[0].device", "volumes[0].size_gib", "volumes[1].volume_id"]);
    // Already attached: refused with the reason, before a server is recorded.
    await expect(c.servers.launchServer({ ...launch, idempotencyKey: "", volumes: [vols[0]!] })).rejects.toMatchObject({ codeName: "FAILED_PRECONDITION", errorInfo: { reason: "VOLUME_ATTACHED" } });
    const theirs = await f.client(f.users.scoped).volumes.createVolume({ accountId: other, regionId: "local", name: "", sizeGib: 1, volumeType: "", dataCenter: "", snapshotId: "", budgetCode: "", tags: {}, idempotencyKey: "" });
    await expect(c.servers.launchServer({ ...launch, idempotencyKey: "", volumes: [{ device: "/dev/sdf", volumeId: theirs.volume!.info!.id, sizeGib: 0, volumeType: "", snapshotId: "" }] })).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT" });
    expect((await c.servers.listServers({ accountId: account, regionId: "", state: 0, budgetCode: "", pageSize: 1000, pageToken: "" })).servers.length).toBe(before);
  }, 60_000);
});

describe("machine images", () => {
  it("makes an image of a server, lists it beside the public ones, launches a server from it, and deregisters it", async () => {
    const c = f.client(f.users.operator);
    const serverId = await runningServer();
    const rootOf = async (id: string) => join(storageDir(), "..", (await c.servers.getServer({ id })).server!.providerId, "root");
    writeFileSync(join(await rootOf(serverId), "marker.txt"), "from the first server");
    const made = await c.images.createImage({ serverId, name: "golden", description: "with the marker", budgetCode: "", tags: { stage: "prod" }, idempotencyKey: "" });
    expect((await finished(made.job!.id)).state).toBe("SUCCEEDED");
    const image = (await c.images.getImage({ id: made.image!.info!.id })).image!;
    expect(image).toMatchObject({ info: { state: "AVAILABLE", providerId: expect.stringMatching(/^img-/), budgetCode: "STO" }, public: false, sourceServerId: serverId });
    expect(Number(image.sizeBytes)).toBeGreaterThan(0);
    const listed = await c.images.listMachineImages({ accountId: account, regionId: "local", ownOnly: false, includeDeleted: false, pageSize: 50, pageToken: "" });
    expect(listed.images.map((i) => [i.info!.id, i.public])).toEqual([[image.info!.id, false], ["img-1", true]]);
    expect((await c.images.listMachineImages({ accountId: account, regionId: "local", ownOnly: true, includeDeleted: false, pageSize: 50, pageToken: "" })).images).toHaveLength(1);
    await expect(c.images.listMachineImages({ accountId: "", regionId: "", ownOnly: false, includeDeleted: false, pageSize: 0, pageToken: "" })).rejects.toMatchObject({ fieldViolations: [{ field: "account_id" }, { field: "region_id" }] });

    const fromImage = await runningServer(image.info!.id);
    expect((await c.servers.getServer({ id: fromImage })).server).toMatchObject({ imageId: image.info!.providerId });
    expect(readFileSync(join(await rootOf(fromImage), "marker.txt"), "utf8")).toBe("from the first server");

    const del = await c.images.deleteImage({ id: image.info!.id, idempotencyKey: "" });
    expect((await finished(del.job!.id)).state).toBe("SUCCEEDED");
    expect((await c.images.listImageEvents({ id: image.info!.id, pageSize: 100, pageToken: "" })).events.filter((e) => e.type === "STATE_CHANGED").map((e) => e.toState)).toEqual(["AVAILABLE", "DELETED"]);
    // Deregistered, it no longer launches.
    await expect(c.servers.launchServer({ accountId: account, regionId: "local", dataCenter: "", productId: "small", imageId: image.info!.id, name: "", budgetCode: "", idempotencyKey: "" })).rejects.toMatchObject({ fieldViolations: [{ field: "image_id" }] });
  }, 60_000);
});

describe("discovery", () => {
  it("adopts a volume and a snapshot made behind the dispatcher's back, billed to the default code at their size, and retires them once gone", async () => {
    const target = { cloud: { id: "c", driver: "fake", endpoint: "" }, account: { id: account, providerAccountId: null }, credentials: { key: "fake-secret" } };
    const call = () => ({ signal: new AbortController().signal, deadline: new Date(Date.now() + 10_000) });
    const services = local.services as DriverServices;
    const vol = await services.volumes!.create(target, { regionId: "local", dataCenter: "", name: "outside", clientToken: "outside-vol", tags: {}, sizeGiB: 5, volumeType: "", snapshotId: null }, call());
    const snap = await services.snapshots!.create(target, { regionId: "local", name: "outside-snap", clientToken: "outside-snap", tags: {}, volumeId: vol.providerId, description: "" }, call());
    const sync = async () => {
      const { job } = await f.jobs.createJob({ kind: RESOURCES_SYNC_KIND, payload: { accountId: account }, requester: MONITOR_PRINCIPAL, resource: { type: "account", id: account }, idempotencyKey: null });
      expect((await finished(job.id)).state).toBe("SUCCEEDED");
    };
    await sync();
    const c = f.client(f.users.operator);
    const volume = (await c.volumes.listVolumes({ ...none, accountId: account })).volumes.find((v) => v.info!.providerId === vol.providerId);
    expect(volume).toMatchObject({ info: { origin: "DISCOVERED", state: "AVAILABLE", budgetCode: "STO" }, sizeGib: 5, hourlyPriceMicros: hourlyPriceOf(VOLUME, { sizeGiB: "5" }).toString() });
    const snapshot = (await c.snapshots.listSnapshots({ ...none, accountId: account })).snapshots.find((x) => x.info!.providerId === snap.providerId);
    expect(snapshot).toMatchObject({ info: { origin: "DISCOVERED", state: "COMPLETED" }, volumeId: volume!.info!.id });

    await services.snapshots!.delete(target, { regionId: "local", providerId: snap.providerId }, call());
    await services.volumes!.delete(target, { regionId: "local", providerId: vol.providerId }, call());
    await sync();
    expect((await c.volumes.getVolume({ id: volume!.info!.id })).volume!.info!.state).toBe("DELETED");
    expect((await c.snapshots.getSnapshot({ id: snapshot!.info!.id })).snapshot!.info!.state).toBe("DELETED");
  });
});

describe("access", () => {
  it("answers NOT_FOUND for another account's volume, snapshot, image or server, and lists none of them", async () => {
    const op = f.client(f.users.operator);
    const serverId = await runningServer();
    const vol = await op.volumes.createVolume({ accountId: account, regionId: "local", name: "", sizeGib: 1, volumeType: "", dataCenter: "", snapshotId: "", budgetCode: "", tags: {}, idempotencyKey: "" });
    await finished(vol.job!.id);
    const snap = await op.snapshots.createSnapshot({ volumeId: vol.volume!.info!.id, name: "", description: "", budgetCode: "", tags: {}, idempotencyKey: "" });
    const img = await op.images.createImage({ serverId, name: "", description: "", budgetCode: "", tags: {}, idempotencyKey: "" });
    await Promise.all([finished(snap.job!.id), finished(img.job!.id)]);
    const outsider = f.client(f.users.scoped);
    const v = vol.volume!.info!.id;
    const s = snap.snapshot!.info!.id;
    const i = img.image!.info!.id;
    const calls: Array<() => Promise<unknown>> = [
      () => outsider.volumes.getVolume({ id: v }),
      () => outsider.volumes.deleteVolume({ id: v, idempotencyKey: "" }),
      () => outsider.volumes.attachVolume({ id: v, serverId, device: "/dev/sdg", idempotencyKey: "" }),
      () => outsider.volumes.detachVolume({ id: v, idempotencyKey: "" }),
      () => outsider.volumes.setVolumeTags({ id: v, change: { set: { a: "b" }, remove: [] }, idempotencyKey: "" }),
      () => outsider.volumes.listVolumeEvents({ id: v, pageSize: 10, pageToken: "" }),
      () => outsider.volumes.createVolume({ accountId: account, regionId: "local", name: "", sizeGib: 1, volumeType: "", dataCenter: "", snapshotId: "", budgetCode: "", tags: {}, idempotencyKey: "" }),
      () => outsider.volumes.createVolume({ accountId: other, regionId: "local", name: "", sizeGib: 1, volumeType: "", dataCenter: "", snapshotId: s, budgetCode: "", tags: {}, idempotencyKey: "" }),
      () => outsider.snapshots.getSnapshot({ id: s }),
      () => outsider.snapshots.deleteSnapshot({ id: s, idempotencyKey: "" }),
      () => outsider.snapshots.listSnapshotEvents({ id: s, pageSize: 10, pageToken: "" }),
      () => outsider.snapshots.createSnapshot({ volumeId: v, name: "", description: "", budgetCode: "", tags: {}, idempotencyKey: "" }),
      () => outsider.images.getImage({ id: i }),
      () => outsider.images.deleteImage({ id: i, idempotencyKey: "" }),
      () => outsider.images.listImageEvents({ id: i, pageSize: 10, pageToken: "" }),
      () => outsider.images.createImage({ serverId, name: "", description: "", budgetCode: "", tags: {}, idempotencyKey: "" }),
      () => outsider.images.listMachineImages({ accountId: account, regionId: "local", ownOnly: false, includeDeleted: false, pageSize: 10, pageToken: "" }),
    ];
    for (const call of calls) await expect(call()).rejects.toMatchObject({ codeName: "NOT_FOUND" });
    // Their own volume cannot be attached to this account's server either.
    const theirs = await outsider.volumes.createVolume({ accountId: other, regionId: "local", name: "", sizeGib: 1, volumeType: "", dataCenter: "", snapshotId: "", budgetCode: "", tags: {}, idempotencyKey: "" });
    await finished(theirs.job!.id);
    await expect(outsider.volumes.attachVolume({ id: theirs.volume!.info!.id, serverId, device: "/dev/sdg", idempotencyKey: "" })).rejects.toMatchObject({ codeName: "NOT_FOUND" });
    const lists = [
      (await outsider.volumes.listVolumes({ ...none, accountId: "", includeDeleted: true })).volumes,
      (await outsider.snapshots.listSnapshots({ ...none, accountId: "", includeDeleted: true })).snapshots,
    ];
    for (const l of lists) expect(l.every((x) => x.info!.accountId === other)).toBe(true);
    for (const del of [op.images.deleteImage({ id: i, idempotencyKey: "" }), op.snapshots.deleteSnapshot({ id: s, idempotencyKey: "" }), op.volumes.deleteVolume({ id: v, idempotencyKey: "" })]) await finished((await del).job!.id);
  }, 60_000);

  it("refuses readers every change, and lets them read", async () => {
    const reader = f.client(f.users.reader);
    await expect(reader.volumes.createVolume({ accountId: account, regionId: "local", name: "", sizeGib: 1, volumeType: "", dataCenter: "", snapshotId: "", budgetCode: "", tags: {}, idempotencyKey: "" })).rejects.toMatchObject({ codeName: "PERMISSION_DENIED" });
    await expect(reader.snapshots.createSnapshot({ volumeId: "x", name: "", description: "", budgetCode: "", tags: {}, idempotencyKey: "" })).rejects.toMatchObject({ codeName: "PERMISSION_DENIED" });
    await expect(reader.images.createImage({ serverId: "x", name: "", description: "", budgetCode: "", tags: {}, idempotencyKey: "" })).rejects.toMatchObject({ codeName: "PERMISSION_DENIED" });
    expect((await reader.volumes.listVolumes({ ...none, accountId: account, includeDeleted: true })).volumes.length).toBeGreaterThan(0);
  });

  it("names every method in the permission table and allows each built-in role exactly what the table grants", async () => {
    const methods = [VolumeServiceService, SnapshotServiceService, ImageServiceService].flatMap((s) => Object.values(s) as Array<MethodDefinition<unknown, unknown>>);
    expect(methods).toHaveLength(18);
    const users = { admin: f.users.admin, operator: f.users.operator, reader: f.users.reader };
    for (const m of methods) {
      const permission = METHOD_PERMISSIONS[m.path];
      expect(permission, m.path).toMatch(/^(volumes|snapshots|images)\.(read|write)$/);
      expect(permission!.endsWith(".read"), m.path).toBe(/\/(Get|List)/.test(m.path));
      for (const [role, user] of Object.entries(users)) {
        const allowed = isAllowed({ id: "x", kind: "user", roles: [role], displayName: "x" }, permission!);
        expect(allowed, `${role} ${m.path}`).toBe(role !== "reader" || permission!.endsWith(".read"));
        const err = await rawCall(raw, m.path, m.responseStream, user.secret);
        if (allowed) expect([status.PERMISSION_DENIED, status.UNAUTHENTICATED], `${role} ${m.path}`).not.toContain(err?.code);
        else expect(err?.code, `${role} ${m.path}`).toBe(status.PERMISSION_DENIED);
      }
      expect((await rawCall(raw, m.path, m.responseStream, undefined))?.code, m.path).toBe(status.UNAUTHENTICATED);
    }
  });
});
