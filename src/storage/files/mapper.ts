// proto ⇄ domain for FileService, and the field rules its handlers validate requests with: bucket names by S3's
// rules, object keys of 1 to 1024 bytes of UTF-8, user metadata within S3's 2 KiB.
import type { Bucket, ObjectInfo, UploadHeader } from "../../gen/proto/dispatcher/v1/files.js";
import type { ObjectAttributes } from "../../clouds/resources.js";
import { infoOf } from "../../network/mapper.js";
import type { Resource } from "../../resources/model.js";
import type { Violations } from "../../rpc/validate.js";
import type { StoredObject, UploadExpectations } from "./service.js";

export { ID_RULES } from "../../rpc/validate.js";
export { BUDGET_CODE_RULES, REGION_ID_RULES } from "../../provisioning/mapper.js";
export { IDEMPOTENCY_KEY_RULES } from "../../jobs/mapper.js";
export { resourceEventToProto, tagsOf } from "../../network/mapper.js";

export const BUCKET_NAME_RULES = {
  max: 63,
  min: 3,
  pattern: /^(?!xn--)(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
  patternHint: "3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit (S3's rules)",
};
export const MAX_KEY_BYTES = 1024;
export const MAX_METADATA_BYTES = 2048;
const METADATA_KEY = /^[a-z0-9][a-z0-9_.-]{0,127}$/;
const CONTENT_TYPE = /^[\x21-\x7e][\x20-\x7e]{0,254}$/;
const SHA256 = /^[0-9a-f]{64}$/;
/** Objects per ListObjects page: the default and the most (S3's). */
export const OBJECT_PAGE = { default: 100, max: 1000 };
/** Parts of an upload in parts: S3's limit. */
export const MAX_PARTS = 10_000;

/** An object key: 1 to 1024 bytes of UTF-8 without control characters ("" after a violation). */
export function objectKey(v: Violations, field: string, key: string | undefined): string {
  const k = key ?? "";
  if (k.length === 0) v.add(field, "is required");
  else if (Buffer.byteLength(k) > MAX_KEY_BYTES) v.add(field, `must be at most ${MAX_KEY_BYTES} bytes of UTF-8`);
  else if (/\p{Cc}/u.test(k) || k.includes("\ufffd")) v.add(field, "must be valid UTF-8 without control characters");
  else return k;
  return "";
}

/** A listing prefix: like a key, but may be empty. */
export function objectPrefix(v: Violations, field: string, prefix: string | undefined): string {
  return prefix ? objectKey(v, field, prefix) : "";
}

/** Content type and user metadata; metadata values are never logged or put in spans (they are the caller's). */
export function attributesOf(v: Violations, field: string, header: Pick<UploadHeader, "contentType" | "metadata">): ObjectAttributes {
  const contentType = header.contentType ?? "";
  if (contentType && !CONTENT_TYPE.test(contentType)) v.add(`${field}.content_type`, "must be 1 to 255 printable ASCII characters, e.g. text/plain; charset=utf-8");
  const metadata: Record<string, string> = {};
  let bytes = 0;
  for (const [key, value] of Object.entries(header.metadata ?? {})) {
    // Only the key is named: a value may be anything the caller wrote.
    if (!METADATA_KEY.test(key)) v.add(`${field}.metadata`, `key ${JSON.stringify(key.slice(0, 64))} must be 1 to 128 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit`);
    else if (/[\p{Cc}]/u.test(value) || value.includes("\ufffd")) v.add(`${field}.metadata`, `the value of ${JSON.stringify(key)} must be printable UTF-8`);
    else metadata[key] = value;
    bytes += Buffer.byteLength(key) + Buffer.byteLength(value);
  }
  if (bytes > MAX_METADATA_BYTES) v.add(`${field}.metadata`, `must be at most ${MAX_METADATA_BYTES} bytes in all (keys and values), S3's limit`);
  return { contentType, metadata };
}

/** size_bytes and sha256 an upload announces. */
export function expectationsOf(v: Violations, field: string, header: Pick<UploadHeader, "sizeBytes" | "sha256">): UploadExpectations {
  let sizeBytes: number | undefined;
  if (header.sizeBytes !== undefined) {
    const n = Number(header.sizeBytes);
    if (!Number.isSafeInteger(n) || n < 0) v.add(`${field}.size_bytes`, "must be a byte count of 0 or more");
    else sizeBytes = n;
  }
  const sha256 = header.sha256 ? header.sha256.toLowerCase() : undefined;
  if (sha256 !== undefined && !SHA256.test(sha256)) v.add(`${field}.sha256`, "must be 64 hex digits");
  return { sizeBytes, sha256 };
}

export const bucketToProto = (r: Resource): Bucket => ({
  info: infoOf(r),
  objectCount: /^\d+$/.test(r.details.objects ?? "") ? (r.details.objects as string) : "0",
  sizeBytes: /^\d+$/.test(r.details.bytes ?? "") ? (r.details.bytes as string) : "0",
});

export const objectToProto = (o: StoredObject): ObjectInfo => ({
  bucketId: o.bucketId,
  key: o.key,
  sizeBytes: String(o.sizeBytes),
  checksum: o.checksum,
  checksumAlgorithm: o.checksumAlgorithm,
  modifyTime: o.modifiedAt,
  contentType: o.contentType ?? "",
  metadata: { ...(o.metadata ?? {}) },
});
