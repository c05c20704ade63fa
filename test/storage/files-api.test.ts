// FileService over gRPC with the DB-backed authenticator, a worker and the monitor's checks, against the local cloud's
// real blob store (directories under a temporary data directory): a bucket made and deleted by jobs; objects streamed
// in and out with their sha256, listed by prefix a page at a time, their metadata read back; an upload whose body
// disagrees with what its header announced stores nothing; the upload in parts (the gRPC-Web form); a bucket that
// holds objects refused deletion with the reason; the object_storage capability gate, lifted without a restart once
// discovery records it; another account's bucket NOT_FOUND from every method; readers read and change nothing; and
// every method in the permission table with each built-in role allowed exactly what it grants.
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Metadata, status, type Client, type MethodDefinition, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DispatcherClients } from "../../src/client/index.js";
import { createLocalDriver } from "../../src/clouds/local/driver.js";
import type { DriverServices } from "../../src/clouds/resources.js";
import { FileServiceService } from "../../src/gen/proto/dispatcher/v1/files.js";
import { METHOD_PERMISSIONS, isAllowed } from "../../src/iam/permissions.js";
import { fileRpcServices } from "../../src/storage/files/rpc-services.js";
import { encodeUploadId } from "../../src/storage/files/service.js";
import { insecureClient, rawCall } from "../rpc/fixtures.js";
import { seedAccount, seedBudgetCode, startServersFixture, type ServersFixture } from "../servers/support.js";

const dataDir = mkdtempSync(join(tmpdir(), "files-api-"));
let f: ServersFixture;
let account: string;
let other: string;
let bare: string;
let raw: Client;

const REGION = { id: "local", dataCenters: ["local-a"], capabilities: ["compute", "object_storage"] };
const finished = (jobId: string) => f.h.waitForState(jobId, ["SUCCEEDED", "FAILED", "CANCELLED"], 30_000);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** The account's storage directory in the local cloud (named by a fingerprint of its key). */
const storageDir = (): string => {
  const root = join(dataDir, "local-cloud");
  return join(root, readdirSync(root).find((d) => /^[0-9a-f]{16}$/.test(d)) as string, "storage");
};

function* uploadMessages(bucketId: string, key: string, body: Buffer, header: Record<string, unknown> = {}, chunk = 64 * 1024) {
  yield { part: { $case: "header" as const, value: { bucketId, key, contentType: "", metadata: {}, sha256: "", ...header } } };
  for (let at = 0; at < body.length; at += chunk) yield { part: { $case: "chunk" as const, value: body.subarray(at, at + chunk) } };
}

async function download(c: DispatcherClients, bucketId: string, key: string): Promise<{ object: unknown; body: Buffer }> {
  let object: unknown;
  const chunks: Buffer[] = [];
  for await (const m of c.files.downloadObject({ bucketId, key })) {
    if (m.part?.$case === "object") object = m.part.value;
    else if (m.part?.$case === "chunk") chunks.push(m.part.value);
  }
  return { object, body: Buffer.concat(chunks) };
}

async function bucket(c: DispatcherClients, name: string, accountId = account): Promise<string> {
  const { job, bucket: b } = await c.files.createBucket({ accountId, regionId: "local", name, tags: {}, idempotencyKey: "" });
  expect((await finished(job!.id)).state).toBe("SUCCEEDED");
  return b!.info!.id;
}

beforeAll(async () => {
  // The fake cloud's credentials carry key "fake-secret": make it this local cloud's account key.
  mkdirSync(join(dataDir, "local-cloud"), { recursive: true });
  writeFileSync(join(dataDir, "local-cloud", "account.key"), "fake-secret\n", { mode: 0o600 });
  const catalogFile = join(dataDir, "catalog.json");
  writeFileSync(catalogFile, JSON.stringify({ regions: [{ id: "local", name: "here", dataCenters: ["local-a"], capabilities: REGION.capabilities }] }));
  const local = createLocalDriver({ dataDir, catalogFile, stopGraceMs: 500, addressing: false });
  f = await startServersFixture("files_api", {
    prepare: (cloud) => {
      const s = local.services as DriverServices;
      (cloud as { services?: DriverServices }).services = { blobStore: s.blobStore, tags: s.tags };
    },
    services: ({ jobs, resources }) => fileRpcServices({ sql: resources.sql, db: resources.provisioning, jobs, drivers: resources.drivers, km: resources.km }),
  });
  await seedBudgetCode(f, "FILES", { hard: 10_000_000n }, [f.users.operator]);
  account = await seedAccount(f, { defaultBudgetCode: "FILES", regions: [REGION] });
  other = await seedAccount(f, { defaultBudgetCode: "FILES", regions: [REGION] });
  bare = await seedAccount(f, { defaultBudgetCode: "FILES", regions: [{ ...REGION, capabilities: ["compute"] }] });
  await f.scope(other);
  raw = insecureClient(f.server.address);
}, 60_000);
afterAll(async () => {
  raw?.close();
  await f?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("buckets and objects", () => {
  it("creates a bucket, streams objects in and out with their sha256, lists by prefix in pages, refuses to delete it while it holds objects, and leaves nothing behind", async () => {
    const c = f.client(f.users.operator);
    const id = await bucket(c, "photos");
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const up = await c.files.uploadObject(uploadMessages(id, "2026/12/big.bin", body, { contentType: "application/octet-stream", metadata: { camera: "x100", "taken-by": "ann" } }));
    expect(up.object).toMatchObject({ bucketId: id, key: "2026/12/big.bin", sizeBytes: String(body.length), checksum: sha(body), checksumAlgorithm: "sha256" });
    for (const k of ["2026/11/a.txt", "2026/12/a.txt", "2026/12/b.txt", "2027/01/a.txt"]) await c.files.uploadObject(uploadMessages(id, k, Buffer.from(k)));

    const got = await download(c, id, "2026/12/big.bin");
    expect(sha(got.body)).toBe(sha(body));
    expect(got.object).toMatchObject({ sizeBytes: String(body.length), contentType: "application/octet-stream", metadata: { camera: "x100", "taken-by": "ann" } });
    const meta = (await c.files.getObjectMetadata({ bucketId: id, key: "2026/12/big.bin" })).object!;
    expect(meta).toMatchObject({ checksum: sha(body), metadata: { camera: "x100" } });
    expect(Math.abs(meta.modifyTime!.getTime() - Date.now())).toBeLessThan(60_000);

    // Pages of two under "2026/12/", then the rest; a token is bound to its query.
    const first = await c.files.listObjects({ bucketId: id, prefix: "2026/12/", pageSize: 2 });
    expect(first.objects.map((o) => o.key)).toEqual(["2026/12/a.txt", "2026/12/b.txt"]);
    const second = await c.files.listObjects({ bucketId: id, prefix: "2026/12/", pageSize: 2, pageToken: first.nextPageToken });
    expect([second.objects.map((o) => o.key), second.nextPageToken]).toEqual([["2026/12/big.bin"], ""]);
    await expect(c.files.listObjects({ bucketId: id, prefix: "2027/", pageSize: 2, pageToken: first.nextPageToken })).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT", fieldViolations: [{ field: "page_token" }] });
    expect((await c.files.listObjects({ bucketId: id, pageSize: 0 })).objects).toHaveLength(5);

    await expect(c.files.deleteBucket({ id, idempotencyKey: "" })).rejects.toMatchObject({ codeName: "FAILED_PRECONDITION", errorInfo: { reason: "BUCKET_NOT_EMPTY" }, message: expect.stringContaining("it holds 5 objects") });
    await expect(c.files.getObjectMetadata({ bucketId: id, key: "nope" })).rejects.toMatchObject({ codeName: "NOT_FOUND" });
    await expect(download(c, id, "nope")).rejects.toMatchObject({ codeName: "NOT_FOUND" });
    for (const o of (await c.files.listObjects({ bucketId: id, pageSize: 1000 })).objects) await c.files.deleteObject({ bucketId: id, key: o.key });
    await c.files.deleteObject({ bucketId: id, key: "already-gone" });
    const del = await c.files.deleteBucket({ id, idempotencyKey: "del-photos" });
    expect((await finished(del.job!.id)).state).toBe("SUCCEEDED");
    expect((await c.files.deleteBucket({ id, idempotencyKey: "del-photos" })).job!.id).toBe(del.job!.id);
    expect((await c.files.getBucket({ id })).bucket!.info!.state).toBe("DELETED");
    await expect(c.files.listObjects({ bucketId: id })).rejects.toMatchObject({ codeName: "FAILED_PRECONDITION", errorInfo: { reason: "RESOURCE_DELETED" } });
    const events = (await c.files.listBucketEvents({ id, pageSize: 100 })).events.map((e) => e.type);
    expect(events).toEqual(expect.arrayContaining(["CREATE_REQUESTED", "DELETE_REQUESTED"]));
    expect(existsSync(join(storageDir(), (await c.files.getBucket({ id })).bucket!.info!.providerId))).toBe(false);
  });

  it("stores nothing when the body disagrees with the size or sha256 its header announced, and keeps the object it would have replaced", async () => {
    const c = f.client(f.users.operator);
    const id = await bucket(c, "checked");
    const good = Buffer.from("the first version");
    await c.files.uploadObject(uploadMessages(id, "doc", good, { sizeBytes: String(good.length), sha256: sha(good) }));
    const bad = randomBytes(200_000);
    await expect(c.files.uploadObject(uploadMessages(id, "doc", bad, { sha256: sha(good) }))).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT", fieldViolations: [{ field: "header.sha256" }] });
    await expect(c.files.uploadObject(uploadMessages(id, "doc", bad, { sizeBytes: "199999" }))).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT", fieldViolations: [{ field: "header.size_bytes" }] });
    await expect(c.files.uploadObject(uploadMessages(id, "new", bad, { sizeBytes: "200001" }))).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT" });
    expect(sha((await download(c, id, "doc")).body)).toBe(sha(good));
    expect((await c.files.listObjects({ bucketId: id })).objects.map((o) => o.key)).toEqual(["doc"]);
    // A stream that starts with a chunk, or sends a second header, is refused.
    await expect(c.files.uploadObject([{ part: { $case: "chunk", value: Buffer.from("x") } }])).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT", fieldViolations: [{ field: "header" }] });
    await expect(c.files.uploadObject([...uploadMessages(id, "two", Buffer.from("x")), { part: { $case: "header", value: { bucketId: id, key: "two", contentType: "", metadata: {}, sha256: "" } } }])).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT" });
    await expect(c.files.uploadObject(uploadMessages(id, "bad-meta", good, { metadata: { "Has Space": "1" } }))).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT", fieldViolations: [{ field: "header.metadata" }] });
    await expect(c.files.uploadObject(uploadMessages(id, "big-meta", good, { metadata: { a: "x".repeat(3000) } }))).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT", fieldViolations: [{ field: "header.metadata" }] });
    expect((await c.files.listObjects({ bucketId: id })).objects.map((o) => o.key)).toEqual(["doc"]);
    // No partial body is left in the bucket's directory.
    const dir = join(storageDir(), (await c.files.getBucket({ id })).bucket!.info!.providerId);
    expect(readdirSync(join(dir, "incoming"))).toEqual([]);
    expect(readdirSync(join(dir, "blobs"))).toHaveLength(1);
  });

  it("uploads in parts, one unary call each (the gRPC-Web form): parts in any order, a part sent twice replaced, a missing part refused", async () => {
    const c = f.client(f.users.operator);
    const id = await bucket(c, "parts");
    const parts = [randomBytes(1024 * 1024), randomBytes(1024 * 1024), randomBytes(12_345)];
    const { uploadId } = await c.files.startUpload({ header: { bucketId: id, key: "assembled.bin", contentType: "application/zip", metadata: { origin: "browser" }, sha256: "" } });
    await c.files.uploadPart({ uploadId, partNumber: 3, data: parts[2] });
    await c.files.uploadPart({ uploadId, partNumber: 1, data: randomBytes(10) });
    await c.files.uploadPart({ uploadId, partNumber: 1, data: parts[0] });
    await expect(c.files.completeUpload({ uploadId, partCount: 3 })).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT", message: expect.stringContaining("lacks part 2 of 3") });
    await expect(c.files.getObjectMetadata({ bucketId: id, key: "assembled.bin" })).rejects.toMatchObject({ codeName: "NOT_FOUND" });
    expect((await c.files.uploadPart({ uploadId, partNumber: 2, data: parts[1] })).sizeBytes).toBe(String(parts[1]!.length));
    const whole = Buffer.concat(parts);
    const done = await c.files.completeUpload({ uploadId, partCount: 3 });
    expect(done.object).toMatchObject({ key: "assembled.bin", sizeBytes: String(whole.length), checksum: sha(whole), contentType: "application/zip", metadata: { origin: "browser" } });
    expect(sha((await download(c, id, "assembled.bin")).body)).toBe(sha(whole));
    await expect(c.files.completeUpload({ uploadId, partCount: 3 })).rejects.toMatchObject({ codeName: "FAILED_PRECONDITION", errorInfo: { reason: "PROVIDER_NOT_FOUND" } });

    const aborted = await c.files.startUpload({ header: { bucketId: id, key: "dropped", contentType: "", metadata: {}, sha256: "" } });
    await c.files.uploadPart({ uploadId: aborted.uploadId, partNumber: 1, data: Buffer.from("x") });
    await c.files.abortUpload({ uploadId: aborted.uploadId });
    await c.files.abortUpload({ uploadId: aborted.uploadId });
    expect(readdirSync(join(storageDir(), (await c.files.getBucket({ id })).bucket!.info!.providerId, "uploads"))).toEqual([]);
    await expect(c.files.uploadPart({ uploadId: "not-an-upload", partNumber: 1, data: Buffer.from("x") })).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT", fieldViolations: [{ field: "upload_id" }] });
    await expect(c.files.startUpload({ header: { bucketId: id, key: "k", contentType: "", metadata: {}, sha256: sha(whole) } })).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT", fieldViolations: [{ field: "header.sha256" }] });
  });
});

describe("the object_storage capability", () => {
  it("answers FAILED_PRECONDITION naming it where the account lacks it, and works once discovery records it, without a restart", async () => {
    const c = f.client(f.users.operator);
    const refused = await c.files.createBucket({ accountId: bare, regionId: "local", name: "gated", tags: {}, idempotencyKey: "" }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ codeName: "FAILED_PRECONDITION", errorInfo: { reason: "CAPABILITY_MISSING", metadata: { capability: "object_storage" } }, message: expect.stringContaining("object_storage") });
    // What a re-discovery records when it sees the capability (test/e2e does it through a real discovery).
    await f.h.sql.execute`INSERT INTO subscriptions (account_id, region_id, capability) VALUES (${bare}, 'local', 'object_storage')`;
    const id = await bucket(c, "gated", bare);
    await c.files.uploadObject(uploadMessages(id, "k", Buffer.from("v")));
    // And when it no longer sees it, object calls are refused again with its name.
    await f.h.sql.execute`DELETE FROM subscriptions WHERE account_id = ${bare} AND capability = 'object_storage'`;
    await expect(c.files.listObjects({ bucketId: id })).rejects.toMatchObject({ codeName: "FAILED_PRECONDITION", errorInfo: { reason: "CAPABILITY_MISSING", metadata: { capability: "object_storage" } } });
    await expect(download(c, id, "k")).rejects.toMatchObject({ codeName: "FAILED_PRECONDITION", errorInfo: { reason: "CAPABILITY_MISSING" } });
    await expect(c.files.uploadObject(uploadMessages(id, "k2", Buffer.from("v")))).rejects.toMatchObject({ codeName: "FAILED_PRECONDITION", errorInfo: { reason: "CAPABILITY_MISSING" } });
    await f.h.sql.execute`INSERT INTO subscriptions (account_id, region_id, capability) VALUES (${bare}, 'local', 'object_storage')`;
  });
});

/** A client stream through a raw channel: the header, then nothing (enough for the permission check). */
function rawUpload(client: Client, path: string, token: string | undefined, header: Buffer = Buffer.alloc(0)): Promise<ServiceError | null> {
  const metadata = new Metadata();
  if (token) metadata.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(path, (b: Buffer) => b, (b: Buffer) => b, metadata, { deadline: Date.now() + 5_000 }, (err) => resolve(err));
    call.write(header);
    call.end();
  });
}

describe("access", () => {
  it("answers NOT_FOUND for another account's bucket from every method, and lists none of them", async () => {
    const op = f.client(f.users.operator);
    const id = await bucket(op, "private");
    await op.files.uploadObject(uploadMessages(id, "secret.txt", Buffer.from("mine")));
    const { uploadId } = await op.files.startUpload({ header: { bucketId: id, key: "u", contentType: "", metadata: {}, sha256: "" } });
    const outsider = f.client(f.users.scoped);
    const calls: Array<() => Promise<unknown>> = [
      () => outsider.files.getBucket({ id }),
      () => outsider.files.deleteBucket({ id, idempotencyKey: "" }),
      () => outsider.files.listBucketEvents({ id, pageSize: 10 }),
      () => outsider.files.listObjects({ bucketId: id }),
      () => outsider.files.getObjectMetadata({ bucketId: id, key: "secret.txt" }),
      () => outsider.files.deleteObject({ bucketId: id, key: "secret.txt" }),
      () => outsider.files.uploadObject(uploadMessages(id, "planted", Buffer.from("x"))),
      () => download(outsider, id, "secret.txt"),
      () => outsider.files.startUpload({ header: { bucketId: id, key: "planted", contentType: "", metadata: {}, sha256: "" } }),
      () => outsider.files.uploadPart({ uploadId, partNumber: 1, data: Buffer.from("x") }),
      () => outsider.files.completeUpload({ uploadId, partCount: 1 }),
      () => outsider.files.abortUpload({ uploadId }),
      // An upload id is not a capability: one that names the bucket by hand is checked like any other.
      () => outsider.files.uploadPart({ uploadId: encodeUploadId({ bucketId: id, key: "planted", providerUploadId: "0".repeat(32) }), partNumber: 1, data: Buffer.from("x") }),
      () => outsider.files.createBucket({ accountId: account, regionId: "local", name: "planted", tags: {}, idempotencyKey: "" }),
    ];
    for (const call of calls) await expect(call()).rejects.toMatchObject({ codeName: "NOT_FOUND" });
    const listed = await outsider.files.listBuckets({ includeDeleted: true, pageSize: 1000 });
    expect(listed.buckets.every((b) => b.info!.accountId === other)).toBe(true);
    expect((await op.files.listObjects({ bucketId: id })).objects.map((o) => o.key)).toEqual(["secret.txt"]);
  });

  it("lets readers list and download, and refuses them every change", async () => {
    const op = f.client(f.users.operator);
    const id = await bucket(op, "shared");
    await op.files.uploadObject(uploadMessages(id, "readme", Buffer.from("hello")));
    const reader = f.client(f.users.reader);
    expect((await download(reader, id, "readme")).body.toString()).toBe("hello");
    expect((await reader.files.listObjects({ bucketId: id })).objects).toHaveLength(1);
    await expect(reader.files.uploadObject(uploadMessages(id, "x", Buffer.from("x")))).rejects.toMatchObject({ codeName: "PERMISSION_DENIED" });
    await expect(reader.files.deleteObject({ bucketId: id, key: "readme" })).rejects.toMatchObject({ codeName: "PERMISSION_DENIED" });
    await expect(reader.files.createBucket({ accountId: account, regionId: "local", name: "nope", tags: {}, idempotencyKey: "" })).rejects.toMatchObject({ codeName: "PERMISSION_DENIED" });
  });

  it("names every method in the permission table and allows each built-in role exactly what the table grants", async () => {
    const methods = Object.values(FileServiceService) as Array<MethodDefinition<unknown, unknown>>;
    expect(methods).toHaveLength(14);
    const users = { admin: f.users.admin, operator: f.users.operator, reader: f.users.reader };
    const reads = new Set(["GetBucket", "ListBuckets", "ListBucketEvents", "ListObjects", "GetObjectMetadata", "DownloadObject"]);
    for (const m of methods) {
      const permission = METHOD_PERMISSIONS[m.path];
      expect(permission, m.path).toBe(reads.has(m.path.split("/").pop()!) ? "files.read" : "files.write");
      const call = (token: string | undefined) => (m.requestStream ? rawUpload(raw, m.path, token) : rawCall(raw, m.path, m.responseStream, token));
      for (const [role, user] of Object.entries(users)) {
        const allowed = isAllowed({ id: "x", kind: "user", roles: [role], displayName: "x" }, permission!);
        expect(allowed, `${role} ${m.path}`).toBe(role !== "reader" || permission === "files.read");
        const err = await call(user.secret);
        if (allowed) expect([status.PERMISSION_DENIED, status.UNAUTHENTICATED, status.INTERNAL, status.UNKNOWN], `${role} ${m.path}`).not.toContain(err?.code);
        else expect(err?.code, `${role} ${m.path}`).toBe(status.PERMISSION_DENIED);
      }
      expect((await call(undefined))?.code, m.path).toBe(status.UNAUTHENTICATED);
    }
  });
});
