// The blob store on S3, through the AWS SDK: a bucket is named by its (global) name, which is also its provider id;
// objects stream in as a multipart upload of bounded parts (at most PART_BYTES × QUEUE in memory, whatever the size)
// and stream out as the response body. The checksum S3 gives is the ETag (an MD5 for a single-part upload, a digest of
// the parts' digests for a multipart one). Like EC2 calls, each call has its own client, one attempt, and the caller's
// signal and deadline; a failure leaves as a classified DriverError.
import type * as S3Module from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import type * as StorageModule from "@aws-sdk/lib-storage";
import { Readable } from "node:stream";
import { callSignal, DriverError, type DriverCallOptions, type DriverTarget } from "../driver.js";
import { checkTags, type BlobObject, type BlobStoreService, type BucketObservation, type ObjectAttributes } from "../resources.js";
import { classifyAwsError } from "./errors.js";

export const DEFAULT_S3_ENDPOINT = "https://s3.{region}.amazonaws.com";
const PART_BYTES = 8 * 1024 * 1024;
const QUEUE = 2;
const MAX_PAGE = 1000;
const BUCKET_NAME = /^(?!xn--)(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;

type S3Sdk = typeof S3Module;
type StorageSdk = typeof StorageModule;
let sdk: Promise<[S3Sdk, StorageSdk]> | undefined;
/** Loaded on the first S3 call: processes that never reach S3 never pay for it. */
function loadSdk(): Promise<[S3Sdk, StorageSdk]> {
  sdk ??= Promise.all([import("@aws-sdk/client-s3"), import("@aws-sdk/lib-storage")]).catch((err: unknown) => {
    sdk = undefined;
    throw err;
  });
  return sdk;
}

/** S3 answers that mean something to the blob store, before the EC2 classification (which knows none of them). */
const S3_CODES: Readonly<Record<string, "NOT_FOUND" | "CONFLICT" | "INVALID">> = {
  NoSuchBucket: "NOT_FOUND",
  NoSuchKey: "NOT_FOUND",
  NoSuchUpload: "NOT_FOUND",
  InvalidPart: "INVALID",
  InvalidPartOrder: "INVALID",
  EntityTooSmall: "INVALID",
  NotFound: "NOT_FOUND",
  BucketAlreadyExists: "CONFLICT",
  BucketNotEmpty: "CONFLICT",
  OperationAborted: "CONFLICT",
  InvalidBucketName: "INVALID",
  KeyTooLongError: "INVALID",
  EntityTooLarge: "INVALID",
};

interface S3Session {
  region: string;
  send<T>(operation: string, fn: (client: S3Client, x: S3Sdk, options: { abortSignal: AbortSignal }) => Promise<T>): Promise<T>;
  client: S3Client;
  storage: StorageSdk;
}

export interface S3Options {
  /** A URL, optionally with {region}; a fixed URL (an S3-compatible store) is addressed path-style. */
  endpoint: string;
}

/** A session on `region`: its own client, to be released with close(). */
async function openS3(target: DriverTarget, region: string, options: DriverCallOptions, s3: S3Options): Promise<S3Session & { close(): void }> {
  if (!REGION.test(region)) throw new DriverError("INVALID", `"${region.slice(0, 64)}" is not an AWS region name`);
  const { accessKeyId, secretAccessKey, sessionToken } = target.credentials;
  if (!accessKeyId || !secretAccessKey) throw new DriverError("AUTH", "the account's AWS credentials lack accessKeyId or secretAccessKey");
  const secrets = [accessKeyId, secretAccessKey, sessionToken ?? ""];
  const [x, storage] = await loadSdk();
  const template = s3.endpoint || DEFAULT_S3_ENDPOINT;
  const remainingMs = () => Math.max(1, options.deadline.getTime() - Date.now());
  const client = new x.S3Client({
    region,
    endpoint: template.replaceAll("{region}", region),
    forcePathStyle: !template.includes("{region}"),
    credentials: sessionToken ? { accessKeyId, secretAccessKey, sessionToken } : { accessKeyId, secretAccessKey },
    maxAttempts: 1,
    // Checksums only where S3 requires them: S3-compatible stores do not all take the newer headers.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: { connectionTimeout: Math.min(10_000, remainingMs()), requestTimeout: remainingMs() },
  });
  return {
    region,
    client,
    storage,
    close: () => client.destroy(),
    async send(operation, request) {
      try {
        return await request(client, x, { abortSignal: callSignal(options) });
      } catch (err) {
        const name = (err as { name?: unknown }).name;
        const mapped = typeof name === "string" ? S3_CODES[name] : undefined;
        if (mapped) throw new DriverError(mapped, `AWS S3 ${operation} failed (${name})`, { providerCode: name as string });
        throw classifyAwsError(err, `S3 ${operation}`, secrets, options.signal.aborted);
      }
    },
  };
}

async function withS3<T>(target: DriverTarget, region: string, options: DriverCallOptions, s3: S3Options, fn: (s: S3Session) => Promise<T>): Promise<T> {
  const session = await openS3(target, region, options, s3);
  try {
    return await fn(session);
  } finally {
    session.close();
  }
}

const etag = (v: string | undefined): string => (v ?? "").replaceAll('"', "");

/**
 * One page of keys after `after`, in key order. The page token is the last key shown (ListObjects' marker): every S3
 * implementation takes it, where V2's opaque continuation tokens are not portable between them.
 */
async function listPage(s: S3Session, bucket: string, query: { prefix: string; pageSize: number; after: string | undefined }): Promise<{ objects: BlobObject[]; truncated: boolean }> {
  const page = await s.send("ListObjects", (c, x, o) => c.send(new x.ListObjectsCommand({ Bucket: bucket, MaxKeys: query.pageSize, ...(query.prefix ? { Prefix: query.prefix } : {}), ...(query.after ? { Marker: query.after } : {}) }), o));
  const objects = (page.Contents ?? []).map((o): BlobObject => ({ key: o.Key ?? "", sizeBytes: o.Size ?? 0, checksum: etag(o.ETag), checksumAlgorithm: "etag", modifiedAt: o.LastModified ?? new Date(0) }));
  return { objects, truncated: page.IsTruncated === true };
}

/** Content type and user metadata as S3 takes them (metadata keys are lowercase in S3's answers). */
function attributesParams(attributes: ObjectAttributes | undefined): { ContentType?: string; Metadata?: Record<string, string> } {
  if (!attributes) return {};
  return { ...(attributes.contentType ? { ContentType: attributes.contentType } : {}), ...(Object.keys(attributes.metadata).length > 0 ? { Metadata: { ...attributes.metadata } } : {}) };
}

async function head(s: S3Session, bucket: string, key: string, given?: ObjectAttributes): Promise<BlobObject> {
  const out = await s.send("HeadObject", (c, x, o) => c.send(new x.HeadObjectCommand({ Bucket: bucket, Key: key }), o));
  return {
    key,
    sizeBytes: out.ContentLength ?? 0,
    checksum: etag(out.ETag),
    checksumAlgorithm: "etag",
    modifiedAt: out.LastModified ?? new Date(),
    contentType: out.ContentType ?? given?.contentType ?? "",
    metadata: { ...(out.Metadata ?? given?.metadata ?? {}) },
  };
}

function checkPart(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new DriverError("INVALID", "a part number is 1 to 10000");
}

export function awsBlobStore(s3: S3Options): BlobStoreService {
  const inRegion = <T>(target: DriverTarget, regionId: string, call: DriverCallOptions, fn: (s: S3Session) => Promise<T>) => withS3(target, regionId, call, s3, fn);

  /** The bucket as S3 shows it, its objects counted (every page: discovery's cost, not a hot path), or null. */
  async function observe(s: S3Session, name: string, createdAt: Date | null): Promise<BucketObservation | null> {
    let objects = 0;
    let bytes = 0;
    let marker: string | undefined;
    try {
      do {
        const page = await listPage(s, name, { prefix: "", pageSize: MAX_PAGE, after: marker });
        for (const item of page.objects) {
          objects++;
          bytes += item.sizeBytes;
        }
        marker = page.truncated ? page.objects.at(-1)?.key : undefined;
      } while (marker);
    } catch (err) {
      if (err instanceof DriverError && err.code === "NOT_FOUND") return null;
      throw err;
    }
    return { providerId: name, regionId: s.region, name, state: "AVAILABLE", tags: {}, createdAt, clientToken: null, details: { objects: String(objects), bytes: String(bytes) } };
  }

  /** Whether the bucket is in the session's region (S3 answers "" for us-east-1). */
  async function inThisRegion(s: S3Session, name: string): Promise<boolean> {
    const out = await s.send("GetBucketLocation", (c, x, o) => c.send(new x.GetBucketLocationCommand({ Bucket: name }), o));
    return (out.LocationConstraint || "us-east-1") === s.region;
  }

  function checkKey(key: string): void {
    if (key.length === 0 || Buffer.byteLength(key) > 1024 || /\p{Cc}/u.test(key)) throw new DriverError("INVALID", "an object key has 1 to 1024 bytes of UTF-8, no control characters");
  }

  return {
    create: (target, request, call) =>
      inRegion(target, request.regionId, call, async (s) => {
        if (!BUCKET_NAME.test(request.name)) throw new DriverError("INVALID", "a bucket name has 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit");
        checkTags(request.tags);
        if (Object.keys(request.tags).length > 0) throw new DriverError("UNSUPPORTED", "the aws driver does not tag buckets");
        try {
          await s.send("CreateBucket", (c, x, o) => c.send(new x.CreateBucketCommand({ Bucket: request.name, ...(s.region === "us-east-1" ? {} : { CreateBucketConfiguration: { LocationConstraint: s.region as S3Module.BucketLocationConstraint } }) }), o));
        } catch (err) {
          if (!(err instanceof DriverError && (err.providerCode === "BucketAlreadyOwnedByYou" || err.providerCode === "BucketAlreadyExists"))) throw err;
          // S3 keeps no client token; the name is the key. Taken by this account (a retried create; some S3
          // implementations say BucketAlreadyExists even then) is success; taken by another, whose objects these
          // credentials cannot list, is CONFLICT.
          const ours = await observe(s, request.name, null).catch((e: unknown) => {
            if (e instanceof DriverError && (e.code === "AUTH" || e.code === "NOT_FOUND")) return null;
            throw e;
          });
          if (!ours) throw new DriverError("CONFLICT", `the bucket name "${request.name}" is taken (bucket names are global to S3)`, { cause: err, providerCode: err.providerCode });
          return ours;
        }
        const seen = await observe(s, request.name, new Date());
        if (!seen) throw new DriverError("INTERNAL", "AWS S3 CreateBucket answered, but the bucket cannot be read back", { retryable: true });
        return seen;
      }),

    get: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        if (!BUCKET_NAME.test(ref.providerId)) return null;
        try {
          if (!(await inThisRegion(s, ref.providerId))) return null;
        } catch (err) {
          if (err instanceof DriverError && err.code === "NOT_FOUND") return null;
          throw err;
        }
        return observe(s, ref.providerId, null);
      }),

    list: (target, regionId, call) =>
      inRegion(target, regionId, call, async (s) => {
        const out = await s.send("ListBuckets", (c, x, o) => c.send(new x.ListBucketsCommand({}), o));
        const found: BucketObservation[] = [];
        for (const b of out.Buckets ?? []) {
          if (!b.Name || !(await inThisRegion(s, b.Name).catch(() => false))) continue;
          const seen = await observe(s, b.Name, b.CreationDate ?? null);
          if (seen) found.push(seen);
        }
        return found;
      }),

    delete: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        if (!BUCKET_NAME.test(ref.providerId)) return;
        try {
          const page = await listPage(s, ref.providerId, { prefix: "", pageSize: 1, after: undefined });
          if (page.objects.length > 0) throw new DriverError("CONFLICT", `bucket ${ref.providerId} is not empty: delete its objects first`);
          await s.send("DeleteBucket", (c, x, o) => c.send(new x.DeleteBucketCommand({ Bucket: ref.providerId }), o));
        } catch (err) {
          if (err instanceof DriverError && err.code === "NOT_FOUND") return;
          if (err instanceof DriverError && err.providerCode === "BucketNotEmpty") throw new DriverError("CONFLICT", `bucket ${ref.providerId} is not empty: delete its objects first`, { cause: err });
          throw err;
        }
      }),

    listObjects: (target, ref, query, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        if (!Number.isInteger(query.pageSize) || query.pageSize < 1 || query.pageSize > MAX_PAGE) throw new DriverError("INVALID", `a page has 1 to ${MAX_PAGE} objects`);
        let after: string | undefined;
        if (query.pageToken !== "") {
          after = Buffer.from(query.pageToken, "base64url").toString("utf8");
          if (after === "" || Buffer.from(after, "utf8").toString("base64url") !== query.pageToken) throw new DriverError("INVALID", "the page token is not one this bucket gave");
        }
        const page = await listPage(s, ref.providerId, { prefix: query.prefix, pageSize: query.pageSize, after });
        const last = page.objects.at(-1);
        return { objects: page.objects, nextPageToken: page.truncated && last ? Buffer.from(last.key, "utf8").toString("base64url") : "" };
      }),

    putObject: (target, ref, key, body, call, attributes) =>
      inRegion(target, ref.regionId, call, async (s) => {
        checkKey(key);
        const signal = callSignal(call);
        // Parts of PART_BYTES, QUEUE at a time: memory stays bounded whatever the object's size.
        const params = { Bucket: ref.providerId, Key: key, Body: Readable.from(body), ...attributesParams(attributes) };
        const upload = new s.storage.Upload({ client: s.client, params, partSize: PART_BYTES, queueSize: QUEUE, leavePartsOnError: false });
        const abort = (): void => void upload.abort();
        signal.addEventListener("abort", abort, { once: true });
        try {
          await s.send("PutObject", () => upload.done());
        } finally {
          signal.removeEventListener("abort", abort);
        }
        return head(s, ref.providerId, key, attributes);
      }),

    headObject: (target, ref, key, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        checkKey(key);
        try {
          return await head(s, ref.providerId, key);
        } catch (err) {
          if (err instanceof DriverError && err.code === "NOT_FOUND" && err.providerCode !== "NoSuchBucket") return null;
          throw err;
        }
      }),

    startUpload: (target, ref, key, attributes, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        checkKey(key);
        const out = await s.send("CreateMultipartUpload", (c, x, o) => c.send(new x.CreateMultipartUploadCommand({ Bucket: ref.providerId, Key: key, ...attributesParams(attributes) }), o));
        if (!out.UploadId) throw new DriverError("INTERNAL", "AWS S3 CreateMultipartUpload answered without an upload id", { retryable: true });
        return out.UploadId;
      }),

    uploadPart: (target, ref, key, uploadId, partNumber, body, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        checkKey(key);
        checkPart(partNumber);
        await s.send("UploadPart", (c, x, o) => c.send(new x.UploadPartCommand({ Bucket: ref.providerId, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }), o));
      }),

    completeUpload: (target, ref, key, uploadId, partCount, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        checkKey(key);
        checkPart(partCount);
        // S3 keeps each part's ETag: read them back rather than make the caller carry them between calls.
        const etags = new Map<number, string>();
        let marker: string | undefined;
        do {
          const page = await s.send("ListParts", (c, x, o) => c.send(new x.ListPartsCommand({ Bucket: ref.providerId, Key: key, UploadId: uploadId, ...(marker ? { PartNumberMarker: marker } : {}) }), o));
          for (const p of page.Parts ?? []) if (p.PartNumber && p.ETag) etags.set(p.PartNumber, p.ETag);
          marker = page.IsTruncated ? String(page.NextPartNumberMarker ?? "") || undefined : undefined;
        } while (marker);
        const missing = Array.from({ length: partCount }, (_, i) => i + 1).filter((n) => !etags.has(n));
        if (missing.length > 0) throw new DriverError("INVALID", `the upload lacks part${missing.length === 1 ? "" : "s"} ${missing.slice(0, 10).join(", ")}${missing.length > 10 ? ", …" : ""} of ${partCount}`);
        const Parts = Array.from({ length: partCount }, (_, i) => ({ PartNumber: i + 1, ETag: etags.get(i + 1) }));
        await s.send("CompleteMultipartUpload", (c, x, o) => c.send(new x.CompleteMultipartUploadCommand({ Bucket: ref.providerId, Key: key, UploadId: uploadId, MultipartUpload: { Parts } }), o));
        return head(s, ref.providerId, key);
      }),

    abortUpload: (target, ref, key, uploadId, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        checkKey(key);
        try {
          await s.send("AbortMultipartUpload", (c, x, o) => c.send(new x.AbortMultipartUploadCommand({ Bucket: ref.providerId, Key: key, UploadId: uploadId }), o));
        } catch (err) {
          if (err instanceof DriverError && err.code === "NOT_FOUND" && err.providerCode !== "NoSuchBucket") return;
          throw err;
        }
      }),

    getObject: async (target, ref, key, call) => {
      checkKey(key);
      // The body outlives the call: its session is released when the body ends or fails.
      const s = await openS3(target, ref.regionId, call, s3);
      try {
        const out = await s.send("GetObject", (c, x, o) => c.send(new x.GetObjectCommand({ Bucket: ref.providerId, Key: key }), o));
        const stream = out.Body as Readable | undefined;
        if (!stream) throw new DriverError("INTERNAL", "AWS S3 GetObject answered without a body", { retryable: true });
        stream.once("close", () => s.close());
        const object: BlobObject = { key, sizeBytes: out.ContentLength ?? 0, checksum: etag(out.ETag), checksumAlgorithm: "etag", modifiedAt: out.LastModified ?? new Date(0), contentType: out.ContentType ?? "", metadata: { ...(out.Metadata ?? {}) } };
        return { object, body: stream as AsyncIterable<Uint8Array> };
      } catch (err) {
        s.close();
        if (err instanceof DriverError && err.code === "NOT_FOUND" && err.providerCode !== "NoSuchBucket") return null;
        throw err;
      }
    },

    deleteObject: (target, ref, key, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        checkKey(key);
        await s.send("DeleteObject", (c, x, o) => c.send(new x.DeleteObjectCommand({ Bucket: ref.providerId, Key: key }), o));
      }),
  };
}

