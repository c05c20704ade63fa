// dispatcher.v1.FileService over gRPC: every request field validated here (INVALID_ARGUMENT with field violations),
// then the files service, then full messages. Uploads arrive as a header then chunks (a client stream, read one
// message at a time as the cloud takes the bytes); downloads leave as the object's metadata then chunks, each sent
// when the transport has room (backpressure), so an object of any size passes through in a few chunks of memory.
import { FileServiceService as F, type UploadHeader, type UploadObjectRequest } from "../../gen/proto/dispatcher/v1/files.js";
import { jobToProto } from "../../jobs/mapper.js";
import type { Principal } from "../../iam/principal.js";
import { InvalidArgumentError } from "../../errors.js";
import { clientStream, defineService, serverStream, unary, type CallContext, type RpcService } from "../../rpc/adapter.js";
import { encodePageToken, nextToken, validateOne, type Violations } from "../../rpc/validate.js";
import { resourceChange, resourceEventsQuery, resourceListQuery } from "../../resources/requests.js";
import {
  attributesOf,
  BUCKET_NAME_RULES,
  BUDGET_CODE_RULES,
  bucketToProto,
  expectationsOf,
  ID_RULES,
  IDEMPOTENCY_KEY_RULES,
  MAX_PARTS,
  OBJECT_PAGE,
  objectKey,
  objectPrefix,
  objectToProto,
  REGION_ID_RULES,
  resourceEventToProto,
  tagsOf,
} from "./mapper.js";
import type { FilesService } from "./service.js";

type Ctx = { principal: Readonly<Principal> };

const cloudCall = (ctx: CallContext) => ({ signal: ctx.signal, deadline: ctx.deadline });

function headerOf(v: Violations, field: string, header: UploadHeader | undefined) {
  if (!header) v.add(field, "is required");
  const h = header ?? { bucketId: "", key: "", contentType: "", metadata: {}, sha256: "" };
  return { bucketId: v.string(`${field}.bucket_id`, h.bucketId, ID_RULES), key: objectKey(v, `${field}.key`, h.key), attributes: attributesOf(v, field, h) };
}

/** The body chunks after the header; a second header is a violation. */
async function* chunksAfterHeader(requests: AsyncIterator<UploadObjectRequest>): AsyncGenerator<Uint8Array> {
  for (;;) {
    const next = await requests.next();
    if (next.done) return;
    const part = next.value.part;
    if (part?.$case === "chunk") yield part.value;
    else throw InvalidArgumentError.field("part", "after the header, every message is a chunk of the body");
  }
}

export function fileHandlers(files: FilesService): RpcService {
  return defineService(F, {
    createBucket: unary(F.createBucket, async (req, ctx: Ctx) => {
      const input = validateOne((v) => ({
        accountId: v.string("account_id", req.accountId, ID_RULES),
        regionId: v.string("region_id", req.regionId, REGION_ID_RULES),
        name: v.string("name", req.name, BUCKET_NAME_RULES),
        tags: tagsOf(req.tags),
        idempotencyKey: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES),
        budgetCode: v.optionalString("budget_code", req.budgetCode, BUDGET_CODE_RULES),
      }));
      const { job, resource } = await files.createBucket(ctx.principal, input);
      return { job: jobToProto(job), bucket: bucketToProto(resource) };
    }),

    getBucket: unary(F.getBucket, async (req, ctx) => ({ bucket: bucketToProto(await files.getBucket(ctx.principal, validateOne((v) => v.string("id", req.id, ID_RULES)))) })),

    listBuckets: unary(F.listBuckets, async (req, ctx) => {
      const q = resourceListQuery(req);
      const page = await files.listBuckets(ctx.principal, q);
      return { buckets: page.items.map(bucketToProto), nextPageToken: nextToken(page, q.filters) };
    }),

    deleteBucket: unary(F.deleteBucket, async (req, ctx) => {
      const { id, key } = resourceChange(req);
      return { job: jobToProto(await files.deleteBucket(ctx.principal, id, key, cloudCall(ctx))) };
    }),

    listBucketEvents: unary(F.listBucketEvents, async (req, ctx) => {
      const q = resourceEventsQuery(req);
      const page = await files.listBucketEvents(ctx.principal, q.id, q);
      return { events: page.items.map(resourceEventToProto), nextPageToken: nextToken(page, { id: q.id }) };
    }),

    listObjects: unary(F.listObjects, async (req, ctx) => {
      const q = validateOne((v) => {
        const bucketId = v.string("bucket_id", req.bucketId, ID_RULES);
        const prefix = objectPrefix(v, "prefix", req.prefix);
        const cursor = v.pageToken<{ t: string }>("page_token", req.pageToken, { bucketId, prefix });
        return { bucketId, prefix, pageSize: v.pageSize("page_size", req.pageSize, OBJECT_PAGE), pageToken: typeof cursor?.t === "string" ? cursor.t : "" };
      });
      const page = await files.listObjects(ctx.principal, q.bucketId, { prefix: q.prefix, pageSize: q.pageSize, pageToken: q.pageToken }, cloudCall(ctx));
      // The cloud's own token, bound to this query: a token of another bucket or prefix is refused here.
      const nextPageToken = page.nextPageToken ? encodePageToken({ t: page.nextPageToken }, { bucketId: q.bucketId, prefix: q.prefix }) : "";
      return { objects: page.objects.map(objectToProto), nextPageToken };
    }),

    getObjectMetadata: unary(F.getObjectMetadata, async (req, ctx) => {
      const { bucketId, key } = validateOne((v) => ({ bucketId: v.string("bucket_id", req.bucketId, ID_RULES), key: objectKey(v, "key", req.key) }));
      return { object: objectToProto(await files.getObject(ctx.principal, bucketId, key, cloudCall(ctx))) };
    }),

    deleteObject: unary(F.deleteObject, async (req, ctx) => {
      const { bucketId, key } = validateOne((v) => ({ bucketId: v.string("bucket_id", req.bucketId, ID_RULES), key: objectKey(v, "key", req.key) }));
      await files.deleteObject(ctx.principal, bucketId, key, cloudCall(ctx));
      return {};
    }),

    uploadObject: clientStream(F.uploadObject, async (requests, ctx) => {
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      const header = !first.done && first.value.part?.$case === "header" ? first.value.part.value : undefined;
      if (!header) throw InvalidArgumentError.field("header", "the first message of an upload is its header");
      const input = validateOne((v) => ({ ...headerOf(v, "header", header), expect: expectationsOf(v, "header", header) }));
      const object = await files.upload(ctx.principal, input.bucketId, input.key, input.attributes, input.expect, chunksAfterHeader(it), cloudCall(ctx));
      return { object: objectToProto(object) };
    }),

    downloadObject: serverStream(F.downloadObject, async (req, ctx) => {
      const { bucketId, key } = validateOne((v) => ({ bucketId: v.string("bucket_id", req.bucketId, ID_RULES), key: objectKey(v, "key", req.key) }));
      await files.download(ctx.principal, bucketId, key, cloudCall(ctx), async (object, body) => {
        await ctx.send({ part: { $case: "object", value: objectToProto(object) } });
        for await (const chunk of body) await ctx.send({ part: { $case: "chunk", value: Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) } });
      });
    }),

    startUpload: unary(F.startUpload, async (req, ctx) => {
      const input = validateOne((v) => {
        const h = headerOf(v, "header", req.header);
        if (req.header?.sizeBytes !== undefined) v.add("header.size_bytes", "is checked by UploadObject only: compare the size CompleteUpload answers");
        if (req.header?.sha256) v.add("header.sha256", "is checked by UploadObject only: compare the checksum CompleteUpload answers");
        return h;
      });
      return { uploadId: await files.startUpload(ctx.principal, input.bucketId, input.key, input.attributes, cloudCall(ctx)) };
    }),

    uploadPart: unary(F.uploadPart, async (req, ctx) => {
      const input = validateOne((v) => ({ uploadId: v.string("upload_id", req.uploadId, { max: 4096 }), partNumber: v.int("part_number", req.partNumber, 1, MAX_PARTS) }));
      await files.uploadPart(ctx.principal, input.uploadId, input.partNumber, req.data, cloudCall(ctx));
      return { partNumber: input.partNumber, sizeBytes: String(req.data.length) };
    }),

    completeUpload: unary(F.completeUpload, async (req, ctx) => {
      const input = validateOne((v) => ({ uploadId: v.string("upload_id", req.uploadId, { max: 4096 }), partCount: v.int("part_count", req.partCount, 1, MAX_PARTS) }));
      return { object: objectToProto(await files.completeUpload(ctx.principal, input.uploadId, input.partCount, cloudCall(ctx))) };
    }),

    abortUpload: unary(F.abortUpload, async (req, ctx) => {
      const uploadId = validateOne((v) => v.string("upload_id", req.uploadId, { max: 4096 }));
      await files.abortUpload(ctx.principal, uploadId, cloudCall(ctx));
      return {};
    }),
  });
}
