// The local cloud's storage for real: a guest writes through the volume attached to its server and another guest reads
// it back from a volume made of a snapshot; an image carries a server's root into a new server; a bucket's objects
// stream in and out with their sha256, and deleting everything leaves nothing on disk.
import { createHash } from "node:crypto";
import { existsSync, lstatSync, readFileSync, readdirSync } from "node:fs";
import { get } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DriverError, type LaunchRequest, type ServerObservation, type ServerRef } from "../../../src/clouds/driver.js";
import { BUILT_IN_CATALOG, type LocalCatalog } from "../../../src/clouds/local/catalog.js";
import { serviceOf, type VolumeObservation } from "../../../src/clouds/resources.js";
import { callOptions, startLocalCloud, type LocalCloudFixture } from "./support.js";
import { until } from "../../support/poll.js";

// A guest that reads and writes files under its HOME on request: GET /read/<path>, GET /write/<path>?<text>.
const DISK_GUEST = [
  "const fs=require('fs'),p=require('path');",
  "require('http').createServer((q,s)=>{const u=new URL(q.url,'http://x');const f=p.join(process.env.HOME,decodeURIComponent(u.pathname.slice(6)));",
  "try{if(u.pathname.startsWith('/write/')){fs.writeFileSync(f,decodeURIComponent(u.search.slice(1)));s.end('written')}else s.end(fs.readFileSync(f))}catch(e){s.end(e.code||'error')}})",
  ".listen(Number(process.argv[1]),process.argv[2])",
].join("");
const CATALOG: LocalCatalog = { ...BUILT_IN_CATALOG, images: [...BUILT_IN_CATALOG.images, { id: "disk", name: "reads and writes files", platform: "linux", env: {}, port: 8080, command: ["{node}", "-e", DISK_GUEST, "{port}", "{bind}"] }] };

let f: LocalCloudFixture;
beforeAll(() => {
  f = startLocalCloud("storage", { stopGraceMs: 500 });
  f.writeCatalog(CATALOG);
});
afterAll(async () => {
  await f?.cleanup();
});

let n = 0;
const token = (what: string): string => `${what}-${++n}-${Date.now()}`;
const ref = (providerId: string): ServerRef => ({ regionId: "local", providerId });
const volumes = () => serviceOf(f.driver, "volumes");
const snapshots = () => serviceOf(f.driver, "snapshots");
const images = () => serviceOf(f.driver, "images");
const blobs = () => serviceOf(f.driver, "blobStore");
const accountDir = (): string => {
  const root = join(f.dataDir, "local-cloud");
  const [dir] = readdirSync(root).filter((d) => /^[0-9a-f]{16}$/.test(d));
  return join(root, dir as string);
};
const failure = async (p: Promise<unknown>): Promise<DriverError> => {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(DriverError);
  return err as DriverError;
};

async function launch(extra: Partial<LaunchRequest> = {}): Promise<ServerObservation> {
  const s = await f.driver.launch(f.target, { regionId: "local", dataCenter: "", productId: "small", imageId: "disk", name: `disk ${++n}`, clientToken: token("srv"), bootstrap: {}, ...extra }, callOptions());
  return until(async () => {
    const x = await f.driver.getServer(f.target, ref(s.providerId), callOptions());
    return x?.state === "RUNNING" ? x : null;
  }, 30_000, "the server RUNNING");
}

/** Asks the guest (over HTTP, as anything reaching the server would) to read or write a file under its HOME. */
function guest(s: ServerObservation, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: s.addresses.private[0], port: Number(s.details.port), path, timeout: 5_000, agent: false }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve(body));
    }).on("error", reject);
  });
}

async function volume(extra: { sizeGiB?: number; snapshotId?: string | null } = {}): Promise<VolumeObservation> {
  return volumes().create(f.target, { regionId: "local", dataCenter: "", name: `vol ${++n}`, clientToken: token("vol"), tags: { team: "storage" }, sizeGiB: extra.sizeGiB ?? 1, volumeType: "", snapshotId: extra.snapshotId ?? null }, callOptions());
}

describe("local cloud volumes and snapshots", () => {
  it("a guest writes through an attached volume; a volume from a snapshot of it shows the file in a second server", async () => {
    const [s1, s2] = await Promise.all([launch(), launch()]);
    const v = await volume();
    expect(v).toMatchObject({ state: "AVAILABLE", sizeGiB: 1, volumeType: "standard", dataCenter: "local-a", attachment: null, tags: { team: "storage" } });
    // The same client token is the same volume.
    const again = await volumes().create(f.target, { regionId: "local", dataCenter: "", name: v.name, clientToken: v.clientToken as string, tags: {}, sizeGiB: 1, volumeType: "", snapshotId: null }, callOptions());
    expect(again.providerId).toBe(v.providerId);

    await volumes().attach(f.target, ref(v.providerId), ref(s1.providerId), "/dev/sdf", callOptions());
    await volumes().attach(f.target, ref(v.providerId), ref(s1.providerId), "/dev/sdf", callOptions()); // again: success
    expect(await volumes().get(f.target, ref(v.providerId), callOptions())).toMatchObject({ state: "IN_USE", attachment: { serverProviderId: s1.providerId, device: "/dev/sdf" }, details: { mount: "~/mnt/sdf" } });
    expect(await guest(s1, "/write/mnt/sdf/note.txt?first")).toBe("written");
    expect(readFileSync(join(accountDir(), "storage", v.providerId, "note.txt"), "utf8")).toBe("first");

    // Attached elsewhere, on a device another volume has, or deleted while attached: CONFLICT saying why.
    expect(await failure(volumes().attach(f.target, ref(v.providerId), ref(s2.providerId), "/dev/sdg", callOptions()))).toMatchObject({ code: "CONFLICT", message: expect.stringContaining(`attached to server ${s1.providerId} as /dev/sdf`) });
    const other = await volume();
    expect(await failure(volumes().attach(f.target, ref(other.providerId), ref(s1.providerId), "/dev/sdf", callOptions()))).toMatchObject({ code: "CONFLICT" });
    expect(await failure(volumes().delete(f.target, ref(v.providerId), callOptions()))).toMatchObject({ code: "CONFLICT", message: expect.stringContaining("detach it first") });

    const snap = await snapshots().create(f.target, { regionId: "local", name: "before", clientToken: token("snap"), tags: {}, volumeId: v.providerId, description: "first note" }, callOptions());
    expect(snap).toMatchObject({ state: "COMPLETED", volumeId: v.providerId, sizeGiB: 1 });
    // Point in time: what the guest writes afterwards is not in it.
    expect(await guest(s1, "/write/mnt/sdf/note.txt?second")).toBe("written");

    expect(await failure(volume({ sizeGiB: 1, snapshotId: "snap-0000000000000000" }))).toMatchObject({ code: "INVALID" });
    const copy = await volume({ sizeGiB: 2, snapshotId: snap.providerId });
    expect(copy).toMatchObject({ snapshotId: snap.providerId, sizeGiB: 2 });
    await volumes().attach(f.target, ref(copy.providerId), ref(s2.providerId), "/dev/xvdg", callOptions());
    expect(await guest(s2, "/read/mnt/xvdg/note.txt")).toBe("first");
    expect(await guest(s1, "/read/mnt/sdf/note.txt")).toBe("second");

    // Detached, it is gone from the guest and its files stay; deleted, its files are gone.
    await volumes().detach(f.target, ref(v.providerId), callOptions());
    expect(await guest(s1, "/read/mnt/sdf/note.txt")).toBe("ENOENT");
    expect(await volumes().get(f.target, ref(v.providerId), callOptions())).toMatchObject({ state: "AVAILABLE", attachment: null });
    await volumes().delete(f.target, ref(v.providerId), callOptions());
    expect(await volumes().get(f.target, ref(v.providerId), callOptions())).toBeNull();
    expect(existsSync(join(accountDir(), "storage", v.providerId))).toBe(false);
    await volumes().delete(f.target, ref(v.providerId), callOptions()); // gone already: success

    // A terminated server lets go of its volume (its files intact); the guest's link went with the server's root.
    await f.driver.terminate(f.target, ref(s2.providerId), callOptions());
    expect(await volumes().get(f.target, ref(copy.providerId), callOptions())).toMatchObject({ state: "AVAILABLE", attachment: null });
    expect(readFileSync(join(accountDir(), "storage", copy.providerId, "note.txt"), "utf8")).toBe("first");

    const listed = await volumes().list(f.target, "local", callOptions());
    expect(listed.map((x) => x.providerId)).toEqual(expect.arrayContaining([copy.providerId, other.providerId]));
    expect(listed.map((x) => x.providerId)).not.toContain(v.providerId);
    expect((await snapshots().list(f.target, "local", callOptions())).map((x) => x.providerId)).toContain(snap.providerId);
    await snapshots().delete(f.target, ref(snap.providerId), callOptions());
    expect(await snapshots().get(f.target, ref(snap.providerId), callOptions())).toBeNull();
    expect(existsSync(join(accountDir(), "storage", snap.providerId))).toBe(false);
  });

  it("refuses bad sizes, types, devices and unknown ids, and volumes where the region has no block storage", async () => {
    expect(await failure(volume({ sizeGiB: 0 }))).toMatchObject({ code: "INVALID" });
    expect(await failure(volumes().create(f.target, { regionId: "local", dataCenter: "", name: "x", clientToken: token("vol"), tags: {}, sizeGiB: 1, volumeType: "gp9", snapshotId: null }, callOptions()))).toMatchObject({ code: "INVALID" });
    const v = await volume();
    expect(await failure(volumes().attach(f.target, ref(v.providerId), ref("ls-0000000000000000"), "/dev/sda", callOptions()))).toMatchObject({ code: "INVALID" });
    expect(await failure(volumes().attach(f.target, ref(v.providerId), ref("../../etc"), "/dev/sdf", callOptions()))).toMatchObject({ code: "NOT_FOUND" });
    expect(await failure(volumes().attach(f.target, ref("vol-0000000000000000"), ref("ls-0000000000000000"), "/dev/sdf", callOptions()))).toMatchObject({ code: "NOT_FOUND" });
    expect(await volumes().get(f.target, ref("../vol"), callOptions())).toBeNull();
    await serviceOf(f.driver, "tags").set(f.target, { type: "volume", ...ref(v.providerId) }, { owner: "ops" }, callOptions());
    expect((await volumes().get(f.target, ref(v.providerId), callOptions()))?.tags).toEqual({ team: "storage", owner: "ops" });

    f.writeCatalog({ ...CATALOG, regions: CATALOG.regions.map((r) => ({ ...r, capabilities: r.capabilities.filter((c) => c !== "block_storage") })) });
    try {
      expect(await failure(volume())).toMatchObject({ code: "UNSUPPORTED", message: expect.stringContaining("block_storage") });
      expect(await failure(volumes().list(f.target, "local", callOptions()))).toMatchObject({ code: "UNSUPPORTED" });
    } finally {
      f.writeCatalog(CATALOG);
    }
  });
});

describe("local cloud machine images", () => {
  it("an image of a server carries its root (not its volumes or agent registration) into a server launched from it", async () => {
    const s1 = await launch();
    expect(await guest(s1, "/write/marker.txt?from-first")).toBe("written");
    expect(await guest(s1, "/write/agent.json?{}")).toBe("written");
    const v = await volume();
    await volumes().attach(f.target, ref(v.providerId), ref(s1.providerId), "/dev/sdh", callOptions());

    const img = await images().create(f.target, { regionId: "local", name: "golden", clientToken: token("img"), tags: {}, server: ref(s1.providerId), description: "with marker" }, callOptions());
    expect(img).toMatchObject({ state: "AVAILABLE", public: false, platform: "linux" });
    expect((await images().list(f.target, "local", callOptions())).map((i) => i.providerId)).toContain(img.providerId);

    const s2 = await launch({ imageId: img.providerId });
    expect(s2.imageId).toBe(img.providerId);
    expect(await guest(s2, "/read/marker.txt")).toBe("from-first");
    expect(await guest(s2, "/read/agent.json")).toBe("ENOENT");
    expect(existsSync(join(accountDir(), s2.providerId, "root", "mnt"))).toBe(false);

    // Deregistered, it launches no more; the server made from it still boots.
    await images().delete(f.target, ref(img.providerId), callOptions());
    expect(await images().get(f.target, ref(img.providerId), callOptions())).toBeNull();
    expect(await failure(launch({ imageId: img.providerId }))).toMatchObject({ code: "INVALID" });
    await f.driver.stop(f.target, ref(s2.providerId), callOptions());
    await f.driver.start(f.target, ref(s2.providerId), callOptions());
    const back = await until(async () => {
      const x = await f.driver.getServer(f.target, ref(s2.providerId), callOptions());
      return x?.state === "RUNNING" ? x : null;
    }, 30_000, "the server RUNNING again");
    expect(await guest(back, "/read/marker.txt")).toBe("from-first");
    expect(existsSync(join(accountDir(), "storage", img.providerId))).toBe(false);
  });
});

/** `total` bytes of a repeating pattern, `chunk` at a time. */
async function* pattern(total: number, chunk = 1 << 20): AsyncGenerator<Uint8Array> {
  const block = Buffer.alloc(chunk);
  for (let i = 0; i < chunk; i++) block[i] = (i * 31) % 251;
  for (let sent = 0; sent < total; sent += chunk) yield block.subarray(0, Math.min(chunk, total - sent));
}

async function sha256Of(body: AsyncIterable<Uint8Array>): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const c of body) {
    hash.update(c);
    size += c.length;
  }
  return { sha256: hash.digest("hex"), size };
}

describe("local cloud buckets", () => {
  it("needs object storage in the region, and works once the catalog gives it, without a new driver", async () => {
    const create = () => blobs().create(f.target, { regionId: "local", name: `late-${++n}`, clientToken: token("bkt"), tags: {} }, callOptions());
    expect(await failure(create())).toMatchObject({ code: "UNSUPPORTED", message: expect.stringContaining("object_storage") });
    f.writeCatalog({ ...CATALOG, regions: CATALOG.regions.map((r) => ({ ...r, capabilities: [...r.capabilities, "object_storage"] })) });
    expect(await create()).toMatchObject({ state: "AVAILABLE" });
  });

  it("streams objects in and out with their sha256, lists by prefix in pages, and deletes a bucket only when empty", async () => {
    f.writeCatalog({ ...CATALOG, regions: CATALOG.regions.map((r) => ({ ...r, capabilities: [...r.capabilities, "object_storage"] })) });
    const b = await blobs().create(f.target, { regionId: "local", name: `files-${++n}`, clientToken: token("bkt"), tags: {} }, callOptions());
    const bucket = ref(b.providerId);
    expect(await failure(blobs().create(f.target, { regionId: "local", name: b.name, clientToken: token("bkt"), tags: {} }, callOptions()))).toMatchObject({ code: "CONFLICT" });
    expect(await failure(blobs().create(f.target, { regionId: "local", name: "Bad_Name", clientToken: token("bkt"), tags: {} }, callOptions()))).toMatchObject({ code: "INVALID" });

    const size = 20 * 1024 * 1024 + 7;
    const expected = await sha256Of(pattern(size));
    const put = await blobs().putObject(f.target, bucket, "big/one.bin", pattern(size), callOptions());
    expect(put).toMatchObject({ key: "big/one.bin", sizeBytes: size, checksum: expected.sha256 });
    for (const key of ["a/1", "a/2", "a/3", "b/1"]) await blobs().putObject(f.target, bucket, key, pattern(10 + key.length), callOptions());
    expect(await blobs().get(f.target, bucket, callOptions())).toMatchObject({ details: { objects: "5", bytes: String(size + 4 * 13) } });

    const got = await blobs().getObject(f.target, bucket, "big/one.bin", callOptions());
    expect(got?.object).toMatchObject({ sizeBytes: size, checksum: expected.sha256 });
    expect(await sha256Of(got?.body ?? pattern(0))).toEqual(expected);
    expect(await blobs().getObject(f.target, bucket, "nope", callOptions())).toBeNull();

    const page1 = await blobs().listObjects(f.target, bucket, { prefix: "a/", pageSize: 2, pageToken: "" }, callOptions());
    expect(page1.objects.map((o) => o.key)).toEqual(["a/1", "a/2"]);
    const page2 = await blobs().listObjects(f.target, bucket, { prefix: "a/", pageSize: 2, pageToken: page1.nextPageToken }, callOptions());
    expect(page2).toMatchObject({ objects: [{ key: "a/3" }], nextPageToken: "" });
    expect(await failure(blobs().listObjects(f.target, bucket, { prefix: "", pageSize: 0, pageToken: "" }, callOptions()))).toMatchObject({ code: "INVALID" });

    // Overwritten, the new body is the object; a reader of the old one finishes reading the old one.
    const old = await blobs().getObject(f.target, bucket, "a/1", callOptions());
    await blobs().putObject(f.target, bucket, "a/1", pattern(5), callOptions());
    expect((await sha256Of(old?.body ?? pattern(0))).size).toBe(13);
    expect((await blobs().getObject(f.target, bucket, "a/1", callOptions()))?.object.sizeBytes).toBe(5);

    expect(await failure(blobs().delete(f.target, bucket, callOptions()))).toMatchObject({ code: "CONFLICT", message: expect.stringContaining("not empty: it holds 5 objects") });
    for (const key of ["big/one.bin", "a/1", "a/2", "a/3", "b/1"]) await blobs().deleteObject(f.target, bucket, key, callOptions());
    await blobs().deleteObject(f.target, bucket, "a/1", callOptions()); // gone already: success
    await blobs().delete(f.target, bucket, callOptions());
    expect(await blobs().get(f.target, bucket, callOptions())).toBeNull();
    expect(existsSync(join(accountDir(), "storage", b.providerId))).toBe(false);
  });

  it("leaves nothing on disk once everything is deleted", async () => {
    for (const v of await volumes().list(f.target, "local", callOptions())) {
      if (v.attachment) await volumes().detach(f.target, ref(v.providerId), callOptions());
      await volumes().delete(f.target, ref(v.providerId), callOptions());
    }
    for (const s of await snapshots().list(f.target, "local", callOptions())) await snapshots().delete(f.target, ref(s.providerId), callOptions());
    for (const i of await images().list(f.target, "local", callOptions())) await images().delete(f.target, ref(i.providerId), callOptions());
    for (const b of await blobs().list(f.target, "local", callOptions())) await blobs().delete(f.target, ref(b.providerId), callOptions());
    const storage = join(accountDir(), "storage");
    expect(existsSync(storage) ? readdirSync(storage) : []).toEqual([]);
    for (const kind of ["volumes", "snapshots", "images", "buckets"]) {
      const dir = join(accountDir(), kind);
      expect(existsSync(dir) ? readdirSync(dir).filter((x) => lstatSync(join(dir, x)).isFile()) : []).toEqual([]);
    }
  });
});
