// The aws driver's storage: EBS volumes, snapshots and AMIs through the real EC2 SDK against the fake EC2 (each request
// as EC2 receives it, EC2's states and errors mapped, idempotent creates), and the blob store through the real S3 SDK
// against s3rver, an S3 implementation started here: buckets, paged listings, a multipart upload streamed in bounded
// parts and a download streamed back with the same bytes.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import S3rver from "s3rver";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAwsDriver } from "../../../src/clouds/aws/driver.js";
import { DriverError, type DriverCallOptions, type DriverTarget } from "../../../src/clouds/driver.js";
import { createDriverRegistry } from "../../../src/clouds/registry.js";
import { CLIENT_TOKEN_TAG, serviceOf } from "../../../src/clouds/resources.js";
import { FakeEc2, type RecordedCall } from "./fake-ec2.js";

const ACCESS_KEY = "AKIAIOSFODNN7STORAGE";
const fake = new FakeEc2({ accessKeyIds: [ACCESS_KEY, "S3RVER"] });
const dir = mkdtempSync(join(tmpdir(), "aws-storage-"));
const s3 = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: join(dir, "s3") });
let driver = createDriverRegistry([createAwsDriver()]).get("aws");
let target: DriverTarget;
const call = (ms = 15_000): DriverCallOptions => ({ signal: new AbortController().signal, deadline: new Date(Date.now() + ms) });
const REGION = "eu-west-1";
const ref = (providerId: string, regionId = REGION) => ({ regionId, providerId });
let n = 0;
const token = (what: string) => `${what}-${++n}`;

beforeAll(async () => {
  const url = await fake.start();
  const { port } = (await s3.run()) as { port: number };
  driver = createDriverRegistry([createAwsDriver({ objectStorage: true, s3Endpoint: `http://127.0.0.1:${port}` })]).get("aws");
  // s3rver knows one account, S3RVER; the fake EC2 takes it too.
  target = { cloud: { id: "c-1", driver: "aws", endpoint: url }, account: { id: "acct-1", providerAccountId: null }, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } };
  await driver.testContext(target, call(60_000));
  fake.calls.length = 0;
});
afterAll(async () => {
  await fake.stop();
  await s3.close();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  fake.calls.length = 0;
});

/** The request's parameters, envelope aside, as EC2 received them. */
function params(c: RecordedCall | undefined): Record<string, string> {
  expect(c).toBeDefined();
  const out: Record<string, string> = {};
  for (const [k, v] of c!.params) if (k !== "Action" && k !== "Version") out[k] = v;
  return out;
}
const failure = async (p: Promise<unknown>): Promise<DriverError> => {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(DriverError);
  return err as DriverError;
};

async function instance(): Promise<string> {
  const s = await driver.launch(target, { regionId: REGION, dataCenter: "eu-west-1a", productId: "t3.micro", imageId: "ami-1a2b3c4d", name: "host", clientToken: token("srv"), bootstrap: {} }, call());
  await driver.getServer(target, ref(s.providerId), call()); // pending → running
  return s.providerId;
}

describe("EBS volumes and snapshots", () => {
  it("creates with EC2's client token, attaches, refuses deleting while attached, detaches and deletes", async () => {
    const volumes = serviceOf(driver, "volumes");
    const t = token("vol");
    const v = await volumes.create(target, { regionId: REGION, dataCenter: "eu-west-1a", name: "data", clientToken: t, tags: { team: "db" }, sizeGiB: 20, volumeType: "", snapshotId: null }, call());
    expect(v).toMatchObject({ name: "data", state: "CREATING", sizeGiB: 20, volumeType: "gp3", dataCenter: "eu-west-1a", tags: { team: "db" }, clientToken: t, attachment: null });
    expect(params(fake.callsOf("CreateVolume")[0])).toEqual({
      AvailabilityZone: "eu-west-1a",
      Size: "20",
      VolumeType: "gp3",
      ClientToken: t,
      "TagSpecification.1.ResourceType": "volume",
      "TagSpecification.1.Tag.1.Key": "Name",
      "TagSpecification.1.Tag.1.Value": "data",
      "TagSpecification.1.Tag.2.Key": "team",
      "TagSpecification.1.Tag.2.Value": "db",
      "TagSpecification.1.Tag.3.Key": CLIENT_TOKEN_TAG,
      "TagSpecification.1.Tag.3.Value": t,
    });
    // A retry is the same volume (EC2 keeps the token).
    const again = await volumes.create(target, { regionId: REGION, dataCenter: "eu-west-1a", name: "data", clientToken: t, tags: { team: "db" }, sizeGiB: 20, volumeType: "", snapshotId: null }, call());
    expect(again.providerId).toBe(v.providerId);
    expect(await volumes.get(target, ref(v.providerId), call())).toMatchObject({ state: "AVAILABLE" });

    const server = await instance();
    await volumes.attach(target, ref(v.providerId), ref(server), "/dev/sdf", call());
    expect(params(fake.callsOf("AttachVolume")[0])).toEqual({ VolumeId: v.providerId, InstanceId: server, Device: "/dev/sdf" });
    expect(await volumes.get(target, ref(v.providerId), call())).toMatchObject({ state: "IN_USE", attachment: { serverProviderId: server, device: "/dev/sdf" } });
    await volumes.attach(target, ref(v.providerId), ref(server), "/dev/sdf", call()); // already so: success, no call
    expect(fake.callsOf("AttachVolume")).toHaveLength(1);

    const other = await volumes.create(target, { regionId: REGION, dataCenter: "eu-west-1a", name: "other", clientToken: token("vol"), tags: {}, sizeGiB: 1, volumeType: "gp2", snapshotId: null }, call());
    await volumes.get(target, ref(other.providerId), call());
    expect(await failure(volumes.attach(target, ref(other.providerId), ref(server), "/dev/sdf", call()))).toMatchObject({ code: "CONFLICT", message: expect.stringContaining("already in use") });
    expect(await failure(volumes.attach(target, ref(other.providerId), ref(server), "/dev/hda", call()))).toMatchObject({ code: "INVALID" });
    expect(await failure(volumes.delete(target, ref(v.providerId), call()))).toMatchObject({ code: "CONFLICT", message: expect.stringContaining(`attached to server ${server} as /dev/sdf: detach it first`) });
    expect(fake.callsOf("DeleteVolume")).toHaveLength(0);

    await volumes.detach(target, ref(v.providerId), call());
    expect(params(fake.callsOf("DetachVolume")[0])).toEqual({ VolumeId: v.providerId });
    expect(await volumes.get(target, ref(v.providerId), call())).toMatchObject({ state: "AVAILABLE", attachment: null });
    await volumes.detach(target, ref(v.providerId), call()); // not attached: success
    expect(fake.callsOf("DetachVolume")).toHaveLength(1);

    expect((await volumes.list(target, REGION, call())).map((x) => x.providerId)).toEqual(expect.arrayContaining([v.providerId, other.providerId]));
    await volumes.delete(target, ref(v.providerId), call());
    expect(params(fake.callsOf("DeleteVolume")[0])).toEqual({ VolumeId: v.providerId });
    expect(await volumes.get(target, ref(v.providerId), call())).toBeNull();
    await volumes.delete(target, ref(v.providerId), call()); // gone: success
    expect(await volumes.get(target, ref("vol-0123456789abcdef0"), call())).toBeNull();
  });

  it("snapshots a volume once per client token (a tag, as EC2 keeps none) and makes a volume from it", async () => {
    const volumes = serviceOf(driver, "volumes");
    const snapshots = serviceOf(driver, "snapshots");
    const v = await volumes.create(target, { regionId: REGION, dataCenter: "eu-west-1b", name: "src", clientToken: token("vol"), tags: {}, sizeGiB: 8, volumeType: "gp3", snapshotId: null }, call());
    const t = token("snap");
    const s = await snapshots.create(target, { regionId: REGION, name: "nightly", clientToken: t, tags: {}, volumeId: v.providerId, description: "before upgrade" }, call());
    expect(s).toMatchObject({ state: "PENDING", volumeId: v.providerId, sizeGiB: 8, clientToken: t, details: { description: "before upgrade" } });
    expect(params(fake.callsOf("CreateSnapshot")[0])).toEqual({
      VolumeId: v.providerId,
      Description: "before upgrade",
      "TagSpecification.1.ResourceType": "snapshot",
      "TagSpecification.1.Tag.1.Key": "Name",
      "TagSpecification.1.Tag.1.Value": "nightly",
      "TagSpecification.1.Tag.2.Key": CLIENT_TOKEN_TAG,
      "TagSpecification.1.Tag.2.Value": t,
    });
    expect(params(fake.callsOf("DescribeSnapshots")[0])).toMatchObject({ "Owner.1": "self", "Filter.1.Name": `tag:${CLIENT_TOKEN_TAG}`, "Filter.1.Value.1": t });
    const again = await snapshots.create(target, { regionId: REGION, name: "nightly", clientToken: t, tags: {}, volumeId: v.providerId, description: "before upgrade" }, call());
    expect(again.providerId).toBe(s.providerId);
    expect(fake.callsOf("CreateSnapshot")).toHaveLength(1);
    expect(await snapshots.get(target, ref(s.providerId), call())).toMatchObject({ state: "COMPLETED" });

    const copy = await volumes.create(target, { regionId: REGION, dataCenter: "eu-west-1b", name: "copy", clientToken: token("vol"), tags: {}, sizeGiB: 10, volumeType: "", snapshotId: s.providerId }, call());
    expect(copy.snapshotId).toBe(s.providerId);
    expect(fake.callsOf("CreateVolume").at(-1)?.params.get("SnapshotId")).toBe(s.providerId);
    expect(await failure(volumes.create(target, { regionId: REGION, dataCenter: "eu-west-1b", name: "small", clientToken: token("vol"), tags: {}, sizeGiB: 4, volumeType: "", snapshotId: s.providerId }, call()))).toMatchObject({ code: "INVALID" });

    expect((await snapshots.list(target, REGION, call())).map((x) => x.providerId)).toContain(s.providerId);
    await snapshots.delete(target, ref(s.providerId), call());
    expect(await snapshots.get(target, ref(s.providerId), call())).toBeNull();
    await snapshots.delete(target, ref(s.providerId), call());
  });
});

describe("AMIs", () => {
  it("creates an image of an instance without rebooting it, once per client token, lists it as the account's own and deregisters it", async () => {
    const images = serviceOf(driver, "images");
    const server = await instance();
    const t = token("img");
    const img = await images.create(target, { regionId: REGION, name: "golden-1", clientToken: t, tags: { tier: "web" }, server: ref(server), description: "web tier" }, call());
    expect(img).toMatchObject({ name: "golden-1", state: "PENDING", public: false, clientToken: t, tags: { tier: "web" } });
    expect(params(fake.callsOf("CreateImage")[0])).toEqual({
      InstanceId: server,
      Name: "golden-1",
      Description: "web tier",
      NoReboot: "true",
      "TagSpecification.1.ResourceType": "image",
      "TagSpecification.1.Tag.1.Key": "tier",
      "TagSpecification.1.Tag.1.Value": "web",
      "TagSpecification.1.Tag.2.Key": CLIENT_TOKEN_TAG,
      "TagSpecification.1.Tag.2.Value": t,
    });
    const again = await images.create(target, { regionId: REGION, name: "golden-1", clientToken: t, tags: { tier: "web" }, server: ref(server), description: "web tier" }, call());
    expect(again.providerId).toBe(img.providerId);
    expect(fake.callsOf("CreateImage")).toHaveLength(1);
    expect(await images.get(target, ref(img.providerId), call())).toMatchObject({ state: "AVAILABLE" });
    expect(await failure(images.create(target, { regionId: REGION, name: "golden-1", clientToken: token("img"), tags: {}, server: ref(server), description: "" }, call()))).toMatchObject({ code: "CONFLICT" });
    expect(await failure(images.create(target, { regionId: REGION, name: "x", clientToken: token("img"), tags: {}, server: ref(server), description: "" }, call()))).toMatchObject({ code: "INVALID" });

    // Launchable like any image, and listed among the account's images.
    expect((await driver.listImages(target, REGION, call())).map((i) => i.id)).toContain(img.providerId);
    expect((await images.list(target, REGION, call())).map((i) => i.providerId)).toContain(img.providerId);

    await images.delete(target, ref(img.providerId), call());
    expect(params(fake.callsOf("DeregisterImage")[0])).toEqual({ ImageId: img.providerId });
    expect(await images.get(target, ref(img.providerId), call())).toBeNull();
    await images.delete(target, ref(img.providerId), call());
  });

  it("tags volumes, snapshots and images through CreateTags", async () => {
    const v = await serviceOf(driver, "volumes").create(target, { regionId: REGION, dataCenter: "eu-west-1a", name: "tagged", clientToken: token("vol"), tags: {}, sizeGiB: 1, volumeType: "", snapshotId: null }, call());
    await serviceOf(driver, "tags").set(target, { type: "volume", ...ref(v.providerId) }, { owner: "ops" }, call());
    expect((await serviceOf(driver, "volumes").get(target, ref(v.providerId), call()))?.tags).toEqual({ owner: "ops" });
  });
});

/** `total` bytes of a pattern, 1 MiB at a time. */
async function* pattern(total: number): AsyncGenerator<Uint8Array> {
  const block = Buffer.alloc(1 << 20);
  for (let i = 0; i < block.length; i++) block[i] = (i * 7) % 253;
  for (let sent = 0; sent < total; sent += block.length) yield block.subarray(0, Math.min(block.length, total - sent));
}
async function digest(body: AsyncIterable<Uint8Array>): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const c of body) {
    hash.update(c);
    size += c.length;
  }
  return { sha256: hash.digest("hex"), size };
}

describe("S3 blob store (s3rver)", () => {
  const S3_REGION = "us-east-1";
  const bucketRef = (name: string) => ref(name, S3_REGION);

  it("creates buckets (a retry is the same bucket), streams a multipart object in and out, pages listings, and deletes a bucket only when empty", async () => {
    const blobs = serviceOf(driver, "blobStore");
    const b = await blobs.create(target, { regionId: S3_REGION, name: "dispatcher-files", clientToken: token("bkt"), tags: {} }, call());
    expect(b).toMatchObject({ providerId: "dispatcher-files", name: "dispatcher-files", state: "AVAILABLE", details: { objects: "0", bytes: "0" } });
    expect((await blobs.create(target, { regionId: S3_REGION, name: "dispatcher-files", clientToken: token("bkt"), tags: {} }, call())).providerId).toBe("dispatcher-files");
    expect(await failure(blobs.create(target, { regionId: S3_REGION, name: "No_Such", clientToken: token("bkt"), tags: {} }, call()))).toMatchObject({ code: "INVALID" });

    // 20 MiB + 3: three parts of 8 MiB at most, never the whole object in memory.
    const size = 20 * 1024 * 1024 + 3;
    const expected = await digest(pattern(size));
    const put = await blobs.putObject(target, bucketRef(b.providerId), "backups/db.tar", pattern(size), call(60_000));
    expect(put).toMatchObject({ key: "backups/db.tar", sizeBytes: size });
    expect(put.checksum).toMatch(/^[0-9a-f]{32}(-\d+)?$/);
    const got = await blobs.getObject(target, bucketRef(b.providerId), "backups/db.tar", call(60_000));
    expect(got?.object.sizeBytes).toBe(size);
    expect(await digest(got!.body)).toEqual(expected);
    expect(await blobs.getObject(target, bucketRef(b.providerId), "backups/none", call())).toBeNull();

    for (const key of ["logs/1", "logs/2", "logs/3"]) await blobs.putObject(target, bucketRef(b.providerId), key, pattern(100), call());
    const first = await blobs.listObjects(target, bucketRef(b.providerId), { prefix: "logs/", pageSize: 2, pageToken: "" }, call());
    expect(first.objects.map((o) => o.key)).toEqual(["logs/1", "logs/2"]);
    expect(first.nextPageToken).not.toBe("");
    const second = await blobs.listObjects(target, bucketRef(b.providerId), { prefix: "logs/", pageSize: 2, pageToken: first.nextPageToken }, call());
    expect(second).toMatchObject({ objects: [{ key: "logs/3", sizeBytes: 100 }], nextPageToken: "" });
    expect(await blobs.get(target, bucketRef(b.providerId), call())).toMatchObject({ details: { objects: "4", bytes: String(size + 300) } });
    expect((await blobs.list(target, S3_REGION, call())).map((x) => x.name)).toContain("dispatcher-files");

    expect(await failure(blobs.delete(target, bucketRef(b.providerId), call()))).toMatchObject({ code: "CONFLICT", message: expect.stringContaining("not empty") });
    for (const key of ["backups/db.tar", "logs/1", "logs/2", "logs/3"]) await blobs.deleteObject(target, bucketRef(b.providerId), key, call());
    await blobs.delete(target, bucketRef(b.providerId), call());
    expect(await blobs.get(target, bucketRef(b.providerId), call())).toBeNull();
    await blobs.delete(target, bucketRef(b.providerId), call());
  });
});
