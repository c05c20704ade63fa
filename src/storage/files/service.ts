// Files: buckets on the generic resource mechanism (create and delete are jobs with idempotency keys, done when the
// cloud is seen so) and the objects in them, read and written straight through the bucket's driver. Every object call
// keeps the bucket's rules first: the caller's scope covers its account (NOT_FOUND otherwise), the bucket reached its
// cloud and is not deleted, and the region has object_storage (read on every call from what discovery last recorded,
// so a capability a re-discovery sees works at once). Bodies stream through in chunks; nothing holds an object whole.
import { createHash } from "node:crypto";
import type { BlobObject, ObjectAttributes } from "../../clouds/resources.js";
import type { Page } from "../../db/page.js";
import type { Sql } from "../../db/sql.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../../errors.js";
import type { Principal } from "../../iam/principal.js";
import type { Job } from "../../jobs/model.js";
import type { JobService } from "../../jobs/service.js";
import { requireTypeCapability } from "../../resources/capabilities.js";
import { DELETED, type Resource, type ResourceEvent } from "../../resources/model.js";
import type { ListResourcesQuery, ResourceService } from "../../resources/service.js";
import { BUCKET, type ResourceTypeSpec } from "../../resources/types.js";
import { BUCKET_CREATE_KIND, BUCKET_DELETE_KIND } from "../kinds.js";
import type { CloudCall, OnBlobStore } from "./cloud.js";

const SPEC = BUCKET as ResourceTypeSpec;

export interface NewBucket {
  accountId: string;
  regionId: string;
  name: string;
  tags: Record<string, string>;
  idempotencyKey: string;
  /** "" for the account's default; needed once buckets are priced (their bytes, per GiB-month). */
  budgetCode: string;
}

export interface UploadExpectations {
  /** The body's exact size, when the caller knows it. */
  sizeBytes?: number | undefined;
  /** The body's hex SHA-256, when the caller knows it. */
  sha256?: string | undefined;
}

/** An object as callers see it: the dispatcher's bucket id beside what the cloud reports. */
export type StoredObject = BlobObject & { bucketId: string };

export interface FilesService {
  createBucket(principal: Readonly<Principal>, input: NewBucket): Promise<{ job: Job; resource: Resource }>;
  getBucket(principal: Readonly<Principal>, id: string): Promise<Resource>;
  listBuckets(principal: Readonly<Principal>, query: ListResourcesQuery): Promise<Page<Resource>>;
  listBucketEvents(principal: Readonly<Principal>, id: string, query: { pageSize: number; afterId?: string | undefined }): Promise<Page<ResourceEvent>>;
  /** FAILED_PRECONDITION (BUCKET_NOT_EMPTY) while the cloud shows objects in it; the job checks again when it runs. */
  deleteBucket(principal: Readonly<Principal>, id: string, idempotencyKey: string, call: CloudCall): Promise<Job>;

  listObjects(principal: Readonly<Principal>, bucketId: string, query: { prefix: string; pageSize: number; pageToken: string }, call: CloudCall): Promise<{ objects: StoredObject[]; nextPageToken: string }>;
  getObject(principal: Readonly<Principal>, bucketId: string, key: string, call: CloudCall): Promise<StoredObject>;
  deleteObject(principal: Readonly<Principal>, bucketId: string, key: string, call: CloudCall): Promise<void>;
  /** Streams `body` to the cloud; with expectations, a body that does not match them is refused and nothing is stored. */
  upload(principal: Readonly<Principal>, bucketId: string, key: string, attributes: ObjectAttributes, expect: UploadExpectations, body: AsyncIterable<Uint8Array>, call: CloudCall): Promise<StoredObject>;
  /** Hands the object's metadata, then its body, to `sink` while the cloud's credentials are held for this call. */
  download(principal: Readonly<Principal>, bucketId: string, key: string, call: CloudCall, sink: (object: StoredObject, body: AsyncIterable<Uint8Array>) => Promise<void>): Promise<void>;

  startUpload(principal: Readonly<Principal>, bucketId: string, key: string, attributes: ObjectAttributes, call: CloudCall): Promise<string>;
  uploadPart(principal: Readonly<Principal>, uploadId: string, partNumber: number, data: Uint8Array, call: CloudCall): Promise<void>;
  completeUpload(principal: Readonly<Principal>, uploadId: string, partCount: number, call: CloudCall): Promise<StoredObject>;
  abortUpload(principal: Readonly<Principal>, uploadId: string, call: CloudCall): Promise<void>;
}

/** What an upload id carries: the bucket, the key and the provider's own upload id. Not a secret: scope is checked on each call. */
interface UploadRef {
  bucketId: string;
  key: string;
  providerUploadId: string;
}

export function encodeUploadId(ref: UploadRef): string {
  return Buffer.from(JSON.stringify([ref.bucketId, ref.key, ref.providerUploadId]), "utf8").toString("base64url");
}

export function decodeUploadId(id: string): UploadRef {
  const bad = InvalidArgumentError.field("upload_id", "is not an upload id StartUpload gave");
  if (id.length === 0 || id.length > 4096 || !/^[A-Za-z0-9_-]+$/.test(id)) throw bad;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(id, "base64url").toString("utf8"));
  } catch {
    throw bad;
  }
  if (!Array.isArray(parsed) || parsed.length !== 3 || !parsed.every((x) => typeof x === "string" && x.length > 0 && x.length <= 2048)) throw bad;
  const [bucketId, key, providerUploadId] = parsed as [string, string, string];
  return { bucketId, key, providerUploadId };
}

export function createFilesService(deps: { sql: Sql; resources: ResourceService; jobs: Pick<JobService, "findByIdempotencyKey">; cloud: OnBlobStore }): FilesService {
  const { sql, resources, jobs, cloud } = deps;

  /** The bucket as object calls need it: in scope, on its cloud, not deleted, in a region with object_storage. */
  async function usable(principal: Readonly<Principal>, id: string): Promise<Resource & { providerId: string }> {
    const bucket = await resources.get(principal, SPEC, id);
    if (bucket.state === DELETED) throw new FailedPreconditionError(`bucket ${id} is deleted`, "RESOURCE_DELETED", [], { bucket: id });
    await requireTypeCapability(sql, SPEC, bucket.accountId, bucket.regionId);
    if (!bucket.providerId) throw new FailedPreconditionError(`bucket ${id} has not reached its cloud yet: wait for its create job`, "RESOURCE_PENDING", [], { bucket: id });
    return bucket as Resource & { providerId: string };
  }

  const ref = (b: Resource & { providerId: string }) => ({ regionId: b.regionId, providerId: b.providerId });
  const stored = (bucketId: string, o: BlobObject): StoredObject => ({ ...o, bucketId });

  async function objectCount(principal: Readonly<Principal>, id: string, call: CloudCall): Promise<{ count: number; more: boolean }> {
    const bucket = await usable(principal, id);
    const page = await cloud(bucket.accountId, "files.delete_bucket", call, (blobs, target, options) => blobs.listObjects(target, ref(bucket), { prefix: "", pageSize: 1000, pageToken: "" }, options));
    return { count: page.objects.length, more: page.nextPageToken !== "" };
  }

  return {
    createBucket: (p, input) => resources.create(p, SPEC, { ...input, kind: BUCKET_CREATE_KIND }),
    getBucket: (p, id) => resources.get(p, SPEC, id),
    listBuckets: (p, q) => resources.list(p, SPEC, q),
    listBucketEvents: (p, id, q) => resources.listEvents(p, SPEC, id, q),

    async deleteBucket(p, id, key, call) {
      const bucket = await resources.get(p, SPEC, id);
      // A replayed key answers its first job, whatever the bucket holds now.
      const earlier = key ? await jobs.findByIdempotencyKey(p, key) : null;
      // A bucket that never reached its cloud, or is gone, has nothing to count: the job settles it.
      if (!earlier && bucket.providerId && bucket.state !== DELETED) {
        const { count, more } = await objectCount(p, id, call);
        if (count > 0) {
          const what = more ? `${count} or more objects` : `${count} object${count === 1 ? "" : "s"}`;
          throw new FailedPreconditionError(`bucket ${id} is not empty: it holds ${what}; delete them first`, "BUCKET_NOT_EMPTY", [], { bucket: id });
        }
      }
      return resources.act(p, SPEC, id, { kind: BUCKET_DELETE_KIND, idempotencyKey: key, message: `bucket deletion requested by ${p.id}`, deletes: true });
    },

    async listObjects(p, bucketId, query, call) {
      const bucket = await usable(p, bucketId);
      const page = await cloud(bucket.accountId, "files.list", call, (blobs, target, options) => blobs.listObjects(target, ref(bucket), query, options));
      return { objects: page.objects.map((o) => stored(bucketId, o)), nextPageToken: page.nextPageToken };
    },

    async getObject(p, bucketId, key, call) {
      const bucket = await usable(p, bucketId);
      const object = await cloud(bucket.accountId, "files.head", call, (blobs, target, options) => blobs.headObject(target, ref(bucket), key, options));
      if (!object) throw objectNotFound(bucketId, key);
      return stored(bucketId, object);
    },

    async deleteObject(p, bucketId, key, call) {
      const bucket = await usable(p, bucketId);
      await cloud(bucket.accountId, "files.delete", call, (blobs, target, options) => blobs.deleteObject(target, ref(bucket), key, options));
    },

    async upload(p, bucketId, key, attributes, expect, body, call) {
      const bucket = await usable(p, bucketId);
      // The body is checked as it passes; a mismatch fails the driver's write before it commits anything. The driver
      // sees only that its input failed, so the caller is answered with this error rather than the driver's.
      let refusal: unknown;
      async function* checked(): AsyncGenerator<Uint8Array> {
        const hash = expect.sha256 ? createHash("sha256") : null;
        let size = 0;
        try {
          for await (const chunk of body) {
            size += chunk.length;
            if (expect.sizeBytes !== undefined && size > expect.sizeBytes) throw InvalidArgumentError.field("header.size_bytes", `the body is longer than the ${expect.sizeBytes} bytes announced: nothing was stored`);
            hash?.update(chunk);
            yield chunk;
          }
          if (expect.sizeBytes !== undefined && size !== expect.sizeBytes) throw InvalidArgumentError.field("header.size_bytes", `the body has ${size} bytes, not the ${expect.sizeBytes} announced: nothing was stored`);
          const digest = hash?.digest("hex");
          if (digest !== undefined && digest !== expect.sha256) throw InvalidArgumentError.field("header.sha256", `the body's SHA-256 is ${digest}, not the one announced: nothing was stored`);
        } catch (err) {
          refusal = err;
          throw err;
        }
      }
      try {
        const object = await cloud(bucket.accountId, "files.upload", call, (blobs, target, options) => blobs.putObject(target, ref(bucket), key, checked(), options, attributes));
        return stored(bucketId, object);
      } catch (err) {
        throw refusal ?? err;
      }
    },

    async download(p, bucketId, key, call, sink) {
      const bucket = await usable(p, bucketId);
      let sinkError: unknown;
      try {
        await cloud(bucket.accountId, "files.download", call, async (blobs, target, options) => {
          const got = await blobs.getObject(target, ref(bucket), key, options);
          if (!got) throw objectNotFound(bucketId, key);
          try {
            await sink(stored(bucketId, got.object), got.body);
          } catch (err) {
            sinkError = err;
            throw err;
          }
        });
      } catch (err) {
        throw sinkError ?? err;
      }
    },

    async startUpload(p, bucketId, key, attributes, call) {
      const bucket = await usable(p, bucketId);
      const providerUploadId = await cloud(bucket.accountId, "files.upload", call, (blobs, target, options) => blobs.startUpload(target, ref(bucket), key, attributes, options));
      return encodeUploadId({ bucketId, key, providerUploadId });
    },

    async uploadPart(p, uploadId, partNumber, data, call) {
      const u = decodeUploadId(uploadId);
      const bucket = await usable(p, u.bucketId);
      await cloud(bucket.accountId, "files.upload", call, (blobs, target, options) => blobs.uploadPart(target, ref(bucket), u.key, u.providerUploadId, partNumber, data, options));
    },

    async completeUpload(p, uploadId, partCount, call) {
      const u = decodeUploadId(uploadId);
      const bucket = await usable(p, u.bucketId);
      const object = await cloud(bucket.accountId, "files.upload", call, (blobs, target, options) => blobs.completeUpload(target, ref(bucket), u.key, u.providerUploadId, partCount, options));
      return stored(u.bucketId, object);
    },

    async abortUpload(p, uploadId, call) {
      const u = decodeUploadId(uploadId);
      const bucket = await usable(p, u.bucketId);
      await cloud(bucket.accountId, "files.upload", call, (blobs, target, options) => blobs.abortUpload(target, ref(bucket), u.key, u.providerUploadId, options));
    },
  };
}

/** NOT_FOUND (reason OBJECT_NOT_FOUND) naming the key, shortened, and the bucket in its metadata. */
function objectNotFound(bucketId: string, key: string): NotFoundError {
  const err = new NotFoundError("object", key.length > 200 ? `${key.slice(0, 200)}…` : key);
  err.metadata.bucket = bucketId;
  return err;
}
