// The local cloud's blob store: a bucket is a directory under the account's storage/. Each object is a body file
// (blobs/) and a small metadata file named by the sha256 of its key (objects/), which says the key, size, sha256,
// time and which body is current. A body streams in through a hash to a file of its own and becomes current by one
// rename of the metadata, so a reader sees the old object or the new one, whole, and nothing is ever held in memory.
// An upload in parts keeps its parts under uploads/<id>/ until it is completed (the parts stream through the hash into
// one body, committed like any other) or aborted; uploads left alone for a day are swept when the next one starts.
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DriverError, type DriverTarget, type ServerRef } from "../driver.js";
import { checkTags, type BlobObject, type BlobStoreService, type BucketObservation, type ObjectAttributes } from "../resources.js";
import { runCall } from "./call.js";
import { requireCapability, type LocalContext } from "./context.js";
import { newRecordId, type BucketRecord } from "./records.js";
import { contentDir, createContent, removeContent } from "./storage-content.js";

type Context = (target: DriverTarget) => Promise<LocalContext>;

/** S3's rules for a bucket name. */
const BUCKET_NAME = /^(?!xn--)(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
export const MAX_KEY_BYTES = 1024;
export const MAX_PAGE_SIZE = 1000;
/** How much of a body a read hands over at a time. */
const CHUNK_BYTES = 256 * 1024;

interface ObjectMeta {
  key: string;
  sizeBytes: number;
  sha256: string;
  modifiedAt: string;
  /** The current body's file name under blobs/. */
  blob: string;
  contentType?: string;
  metadata?: Record<string, string>;
}

/** What an upload in parts was started for, beside its parts. */
interface UploadMeta {
  key: string;
  contentType: string;
  metadata: Record<string, string>;
  startedAt: string;
}

const UPLOAD_ID = /^[0-9a-f]{32}$/;
/** Parts of an upload nobody completed or aborted are swept after this long. */
const UPLOAD_MAX_AGE_MS = 24 * 60 * 60 * 1000;
export const MAX_PARTS = 10_000;

export function checkBucketName(name: string): void {
  if (!BUCKET_NAME.test(name)) throw new DriverError("INVALID", "a bucket name has 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit");
}

export function checkObjectKey(key: string): void {
  if (key.length === 0 || Buffer.byteLength(key) > MAX_KEY_BYTES || /\p{Cc}/u.test(key)) throw new DriverError("INVALID", `an object key has 1 to ${MAX_KEY_BYTES} bytes of UTF-8, no control characters`);
}

const metaName = (key: string): string => `${createHash("sha256").update(key).digest("hex")}.json`;
const toObject = (m: ObjectMeta): BlobObject => ({
  key: m.key,
  sizeBytes: m.sizeBytes,
  checksum: m.sha256,
  checksumAlgorithm: "sha256",
  modifiedAt: new Date(m.modifiedAt),
  contentType: m.contentType ?? "",
  metadata: { ...(m.metadata ?? {}) },
});

async function readMeta(path: string): Promise<ObjectMeta | null> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as ObjectMeta;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** Every object's metadata in the bucket, in key order. */
async function allMeta(ctx: LocalContext, bucketId: string): Promise<ObjectMeta[]> {
  const dir = join(contentDir(ctx, bucketId), "objects");
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const metas = await Promise.all(names.filter((n) => n.endsWith(".json")).map((n) => readMeta(join(dir, n))));
  return metas.filter((m): m is ObjectMeta => m !== null).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

async function observe(ctx: LocalContext, b: BucketRecord): Promise<BucketObservation> {
  const metas = await allMeta(ctx, b.id);
  const bytes = metas.reduce((n, m) => n + m.sizeBytes, 0);
  return { providerId: b.id, regionId: b.regionId, name: b.name, state: "AVAILABLE", tags: { ...b.tags }, createdAt: new Date(b.createdAt), clientToken: b.clientToken, details: { objects: String(metas.length), bytes: String(bytes) } };
}

function findBucket(ctx: LocalContext, ref: ServerRef): BucketRecord {
  const b = ctx.files.read("bucket", ref.providerId);
  if (!b || b.regionId !== ref.regionId) throw new DriverError("NOT_FOUND", `the local cloud has no bucket "${ref.providerId.slice(0, 64)}" in region "${ref.regionId.slice(0, 64)}"`);
  return b;
}

/** Hashes and counts what passes through. */
function measure(): Transform & { sha256: () => string; size: () => number } {
  const hash = createHash("sha256");
  let size = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  return Object.assign(t, { sha256: () => hash.digest("hex"), size: () => size });
}

/**
 * Streams `body` through the hash into a body file of its own, then makes it current by one rename of the metadata,
 * under the bucket's lock (a delete of the bucket cannot pass between its check and the swap).
 */
async function writeObject(ctx: LocalContext, ref: ServerRef, bucket: BucketRecord, key: string, body: AsyncIterable<Uint8Array>, attributes: ObjectAttributes, signal: AbortSignal): Promise<BlobObject> {
  const dir = contentDir(ctx, bucket.id);
  await Promise.all(["incoming", "blobs", "objects"].map((d) => mkdir(join(dir, d), { recursive: true, mode: 0o700 })));
  const blob = `${metaName(key).slice(0, 16)}.${randomBytes(8).toString("hex")}`;
  const incoming = join(dir, "incoming", blob);
  const m = measure();
  try {
    await pipeline(body, m, createWriteStream(incoming, { mode: 0o600 }), { signal });
    const meta: ObjectMeta = { key, sizeBytes: m.size(), sha256: m.sha256(), modifiedAt: new Date().toISOString(), blob, contentType: attributes.contentType, metadata: { ...attributes.metadata } };
    await ctx.store.withLock(bucket.id, signal, async () => {
      findBucket(ctx, ref);
      const metaPath = join(dir, "objects", metaName(key));
      const previous = await readMeta(metaPath);
      await rename(incoming, join(dir, "blobs", blob));
      const tmp = `${metaPath}.${randomBytes(4).toString("hex")}.tmp`;
      await writeFile(tmp, JSON.stringify(meta), { mode: 0o600 });
      await rename(tmp, metaPath);
      // A reader that opened the old body keeps reading it; the name goes.
      if (previous) await rm(join(dir, "blobs", previous.blob), { force: true });
    });
    return toObject(meta);
  } finally {
    await rm(incoming, { force: true });
  }
}

function checkPartNumber(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_PARTS) throw new DriverError("INVALID", `a part number is 1 to ${MAX_PARTS}`);
}

/** The directory of an upload started for `key` in this bucket; NOT_FOUND for any other id. */
async function uploadDir(ctx: LocalContext, bucket: BucketRecord, key: string, uploadId: string): Promise<string> {
  checkObjectKey(key);
  const dir = join(contentDir(ctx, bucket.id), "uploads", UPLOAD_ID.test(uploadId) ? uploadId : "-");
  const meta = await readFile(join(dir, "upload.json"), "utf8").then((t) => JSON.parse(t) as UploadMeta, () => null);
  if (!meta || meta.key !== key) throw new DriverError("NOT_FOUND", "no such upload in progress for this object (completed, aborted, or never started)");
  return dir;
}

/** Removes uploads started more than UPLOAD_MAX_AGE_MS ago. */
async function sweepUploads(uploads: string): Promise<void> {
  const names = await readdir(uploads).catch(() => [] as string[]);
  const cutoff = Date.now() - UPLOAD_MAX_AGE_MS;
  for (const name of names) {
    const started = await stat(join(uploads, name)).then((s) => s.mtimeMs, () => Date.now());
    if (started < cutoff) await rm(join(uploads, name), { recursive: true, force: true });
  }
}

export function localBlobStore(contextOf: Context): BlobStoreService {
  /** The bucket, after the rule every call keeps first: its region has object storage. */
  async function bucketOf(target: DriverTarget, ref: ServerRef): Promise<{ ctx: LocalContext; bucket: BucketRecord }> {
    const ctx = await contextOf(target);
    requireCapability(ctx, ref.regionId, "object_storage");
    return { ctx, bucket: findBucket(ctx, ref) };
  }

  return {
    create: (target, request, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        requireCapability(ctx, request.regionId, "object_storage");
        checkBucketName(request.name);
        checkTags(request.tags);
        if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
        const { id } = ctx.store.bindToken(request.clientToken, newRecordId("bucket"), "bucket");
        // Names are the account's, across regions, under one lock.
        return ctx.store.withLock("buckets", signal, async () => {
          const existing = ctx.files.read("bucket", id);
          if (existing) return observe(ctx, existing);
          const clash = ctx.files.all("bucket").find((b) => b.name === request.name);
          if (clash) throw new DriverError("CONFLICT", `the account already has a bucket named "${request.name}"`);
          const b: BucketRecord = { id, regionId: request.regionId, name: request.name, tags: { ...request.tags }, createdAt: new Date().toISOString(), clientToken: request.clientToken };
          await createContent(ctx, id);
          ctx.files.write("bucket", b);
          return observe(ctx, b);
        });
      }),

    get: (target, ref, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        const b = ctx.files.read("bucket", ref.providerId);
        return b && b.regionId === ref.regionId ? observe(ctx, b) : null;
      }),

    list: (target, regionId, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        requireCapability(ctx, regionId, "object_storage");
        return Promise.all(ctx.files.all("bucket").filter((b) => b.regionId === regionId).map((b) => observe(ctx, b)));
      }),

    delete: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        if (!ctx.files.read("bucket", ref.providerId)) return;
        await ctx.store.withLock(ref.providerId, signal, async () => {
          const b = ctx.files.read("bucket", ref.providerId);
          if (!b || b.regionId !== ref.regionId) return;
          const objects = (await allMeta(ctx, b.id)).length;
          if (objects > 0) throw new DriverError("CONFLICT", `bucket ${b.name} is not empty: it holds ${objects} object${objects === 1 ? "" : "s"}`);
          ctx.files.remove("bucket", b.id);
          await removeContent(ctx, b.id);
        });
      }),

    listObjects: (target, ref, query, opts) =>
      runCall(opts, async () => {
        const { ctx, bucket } = await bucketOf(target, ref);
        if (!Number.isInteger(query.pageSize) || query.pageSize < 1 || query.pageSize > MAX_PAGE_SIZE) throw new DriverError("INVALID", `a page has 1 to ${MAX_PAGE_SIZE} objects`);
        let after = "";
        if (query.pageToken !== "") {
          after = Buffer.from(query.pageToken, "base64url").toString("utf8");
          if (after === "" || Buffer.from(after, "utf8").toString("base64url") !== query.pageToken) throw new DriverError("INVALID", "the page token is not one this bucket gave");
        }
        const matching = (await allMeta(ctx, bucket.id)).filter((m) => m.key.startsWith(query.prefix) && (after === "" || m.key > after));
        const page = matching.slice(0, query.pageSize);
        const last = page[page.length - 1];
        return { objects: page.map(toObject), nextPageToken: matching.length > page.length && last ? Buffer.from(last.key, "utf8").toString("base64url") : "" };
      }),

    putObject: (target, ref, key, body, opts, attributes) =>
      runCall(opts, async (signal) => {
        const { ctx, bucket } = await bucketOf(target, ref);
        checkObjectKey(key);
        return writeObject(ctx, ref, bucket, key, body, attributes ?? { contentType: "", metadata: {} }, signal);
      }),

    headObject: (target, ref, key, opts) =>
      runCall(opts, async () => {
        const { ctx, bucket } = await bucketOf(target, ref);
        checkObjectKey(key);
        const meta = await readMeta(join(contentDir(ctx, bucket.id), "objects", metaName(key)));
        return meta ? toObject(meta) : null;
      }),

    startUpload: (target, ref, key, attributes, opts) =>
      runCall(opts, async () => {
        const { ctx, bucket } = await bucketOf(target, ref);
        checkObjectKey(key);
        const uploads = join(contentDir(ctx, bucket.id), "uploads");
        await mkdir(uploads, { recursive: true, mode: 0o700 });
        await sweepUploads(uploads);
        const id = randomBytes(16).toString("hex");
        await mkdir(join(uploads, id), { mode: 0o700 });
        const meta: UploadMeta = { key, contentType: attributes.contentType, metadata: { ...attributes.metadata }, startedAt: new Date().toISOString() };
        await writeFile(join(uploads, id, "upload.json"), JSON.stringify(meta), { mode: 0o600 });
        return id;
      }),

    uploadPart: (target, ref, key, uploadId, partNumber, body, opts) =>
      runCall(opts, async () => {
        const { ctx, bucket } = await bucketOf(target, ref);
        const dir = await uploadDir(ctx, bucket, key, uploadId);
        checkPartNumber(partNumber);
        const tmp = join(dir, `part-${partNumber}.${randomBytes(4).toString("hex")}.tmp`);
        try {
          await writeFile(tmp, body, { mode: 0o600 });
          await rename(tmp, join(dir, `part-${partNumber}`));
        } finally {
          await rm(tmp, { force: true });
        }
      }),

    completeUpload: (target, ref, key, uploadId, partCount, opts) =>
      runCall(opts, async (signal) => {
        const { ctx, bucket } = await bucketOf(target, ref);
        const dir = await uploadDir(ctx, bucket, key, uploadId);
        checkPartNumber(partCount);
        const missing: number[] = [];
        for (let n = 1; n <= partCount; n++) {
          const there = await stat(join(dir, `part-${n}`)).then(() => true, () => false);
          if (!there) missing.push(n);
        }
        if (missing.length > 0) throw new DriverError("INVALID", `the upload lacks part${missing.length === 1 ? "" : "s"} ${missing.slice(0, 10).join(", ")}${missing.length > 10 ? ", …" : ""} of ${partCount}`);
        const meta = JSON.parse(await readFile(join(dir, "upload.json"), "utf8")) as UploadMeta;
        async function* parts(): AsyncGenerator<Uint8Array> {
          for (let n = 1; n <= partCount; n++) yield* createReadStream(join(dir, `part-${n}`), { highWaterMark: CHUNK_BYTES }) as AsyncIterable<Uint8Array>;
        }
        const object = await writeObject(ctx, ref, bucket, key, parts(), { contentType: meta.contentType, metadata: meta.metadata }, signal);
        await rm(dir, { recursive: true, force: true });
        return object;
      }),

    abortUpload: (target, ref, key, uploadId, opts) =>
      runCall(opts, async () => {
        const { ctx, bucket } = await bucketOf(target, ref);
        checkObjectKey(key);
        if (!UPLOAD_ID.test(uploadId)) return;
        await rm(join(contentDir(ctx, bucket.id), "uploads", uploadId), { recursive: true, force: true });
      }),

    getObject: (target, ref, key, opts) =>
      runCall(opts, async (signal) => {
        const { ctx, bucket } = await bucketOf(target, ref);
        checkObjectKey(key);
        const dir = contentDir(ctx, bucket.id);
        // A put may replace the body between reading the metadata and opening it: read again then.
        for (let attempt = 0; attempt < 5; attempt++) {
          const meta = await readMeta(join(dir, "objects", metaName(key)));
          if (!meta) return null;
          const handle = await open(join(dir, "blobs", meta.blob), "r").catch((err: NodeJS.ErrnoException) => {
            if (err.code === "ENOENT") return null;
            throw err;
          });
          if (!handle) continue;
          const stream = handle.createReadStream({ highWaterMark: CHUNK_BYTES });
          const abort = (): void => {
            stream.destroy(new DriverError("TIMEOUT", "the local cloud read was aborted or passed its deadline"));
          };
          signal.addEventListener("abort", abort, { once: true });
          stream.once("close", () => signal.removeEventListener("abort", abort));
          return { object: toObject(meta), body: stream as AsyncIterable<Uint8Array> };
        }
        throw new DriverError("UNAVAILABLE", `object "${key.slice(0, 64)}" keeps changing while it is read`);
      }),

    deleteObject: (target, ref, key, opts) =>
      runCall(opts, async (signal) => {
        const { ctx, bucket } = await bucketOf(target, ref);
        checkObjectKey(key);
        const dir = contentDir(ctx, bucket.id);
        await ctx.store.withLock(bucket.id, signal, async () => {
          const metaPath = join(dir, "objects", metaName(key));
          const meta = await readMeta(metaPath);
          if (!meta) return;
          await rm(metaPath, { force: true });
          await rm(join(dir, "blobs", meta.blob), { force: true });
        });
      }),
  };
}
