// AES-256-GCM over node:crypto and KM's envelope encryption: a random data key per record seals the secret fields,
// a versioned master key wraps the data key, and associated data binds both ciphertexts to their row.
//
// Formats (both self-describing, so a stored value can be checked before any key is touched):
//   wrapped data key  = 0x01 | master key version (uint32 BE) | nonce (12) | AES-GCM(data key) (32) | tag (16)
//   sealed fields     = 0x01 | nonce (12) | AES-GCM(fields JSON) | tag (16)
// Associated data   = length-prefixed (purpose, record id, account id, type[, key version]); see associatedData().
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
const ALGORITHM = "aes-256-gcm";
const FORMAT_V1 = 0x01;
const WRAPPED_KEY_BYTES = 1 + 4 + NONCE_BYTES + KEY_BYTES + TAG_BYTES;

/** Purposes named in associated data: a ciphertext made for one purpose never opens as another. */
export const PURPOSE_DATA_KEY = "dispatcher.km/data-key/v1";
export const PURPOSE_FIELDS = "dispatcher.km/credential-fields/v1";

/** Why a ciphertext could not be opened. Never carries key or plaintext material. */
export type EnvelopeFailure = "FORMAT" | "KEY_VERSION_MISMATCH" | "KEY_VERSION_UNKNOWN" | "INTEGRITY";

export class EnvelopeError extends Error {
  constructor(
    readonly failure: EnvelopeFailure,
    message: string,
  ) {
    super(message);
    this.name = "EnvelopeError";
  }
}

export interface Sealed {
  nonce: Buffer;
  /** Ciphertext with the 16-byte tag appended. */
  ciphertext: Buffer;
}

/**
 * AES-256-GCM encryption under `key` with a fresh random 96-bit nonce, or the one given: test vectors, and the channel
 * seal's counter nonces (./channel.ts), which its key never repeats.
 */
export function seal(key: Buffer, plaintext: Buffer, aad: Buffer, nonce: Buffer = randomBytes(NONCE_BYTES)): Sealed {
  checkKey(key);
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`nonce must be ${NONCE_BYTES} bytes`);
  const cipher = createCipheriv(ALGORITHM, key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { nonce, ciphertext };
}

/** AES-256-GCM decryption; throws EnvelopeError INTEGRITY (and returns nothing) unless the tag verifies. */
export function open(key: Buffer, nonce: Buffer, ciphertext: Buffer, aad: Buffer): Buffer {
  checkKey(key);
  if (nonce.length !== NONCE_BYTES) throw new EnvelopeError("FORMAT", `nonce must be ${NONCE_BYTES} bytes`);
  if (ciphertext.length < TAG_BYTES) throw new EnvelopeError("FORMAT", "ciphertext shorter than its tag");
  const decipher = createDecipheriv(ALGORITHM, key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES));
  const body = decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES));
  try {
    return Buffer.concat([body, decipher.final()]);
  } catch {
    // GCM releases plaintext before the tag is checked: wipe it, so a forged message leaves nothing behind.
    body.fill(0);
    throw new EnvelopeError("INTEGRITY", "authentication failed: the ciphertext, nonce, associated data or key is not the one it was sealed with");
  }
}

/**
 * Canonical associated data: the purpose then each part, each as a 4-byte big-endian length and its UTF-8 bytes,
 * so that no two different lists encode alike (("a","bc") ≠ ("ab","c")).
 */
export function associatedData(purpose: string, parts: readonly (string | number)[]): Buffer {
  // Three of these per GetCredential: one buffer written in place rather than two small ones per part, concatenated.
  const texts = [purpose, ...parts.map(String)];
  let size = 0;
  for (const t of texts) size += 4 + Buffer.byteLength(t, "utf8");
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const t of texts) {
    const n = out.write(t, at + 4, "utf8");
    out.writeUInt32BE(n, at);
    at += 4 + n;
  }
  return out;
}

/** What a credential's ciphertexts are bound to: moving them to another row (or changing the type) breaks them. */
export interface RecordContext {
  recordId: string;
  accountId: string;
  type: string;
}

/** The stored form of one record: which master key version wraps its data key, the wrapped key, the sealed fields. */
export interface EnvelopeRecord {
  keyVersion: number;
  wrappedKey: Buffer;
  ciphertext: Buffer;
}

export interface MasterKey {
  version: number;
  key: Buffer;
}

/** Looks up a master key by version; undefined when this process does not hold that version. */
export type MasterKeyLookup = (version: number) => Buffer | undefined;

const fieldsAad = (ctx: RecordContext): Buffer => associatedData(PURPOSE_FIELDS, [ctx.recordId, ctx.accountId, ctx.type]);
const wrapAad = (ctx: RecordContext, version: number): Buffer => associatedData(PURPOSE_DATA_KEY, [ctx.recordId, ctx.accountId, ctx.type, version]);

/** Seals `plaintext` under a new random data key and wraps that key with `master`. Two encryptions under two keys. */
export function sealRecord(master: MasterKey, ctx: RecordContext, plaintext: Buffer): EnvelopeRecord {
  const dataKey = randomBytes(KEY_BYTES);
  try {
    const sealed = seal(dataKey, plaintext, fieldsAad(ctx));
    return { keyVersion: master.version, wrappedKey: wrapDataKey(master, dataKey, ctx), ciphertext: Buffer.concat([Buffer.of(FORMAT_V1), sealed.nonce, sealed.ciphertext]) };
  } finally {
    dataKey.fill(0);
  }
}

/** Opens a record: checks both formats and the key version, unwraps the data key, decrypts the fields. */
export function openRecord(keys: MasterKeyLookup, ctx: RecordContext, record: EnvelopeRecord): Buffer {
  const dataKey = unwrapDataKey(keys, ctx, record);
  try {
    const c = record.ciphertext;
    if (c.length < 1 + NONCE_BYTES + TAG_BYTES || c[0] !== FORMAT_V1) throw new EnvelopeError("FORMAT", "sealed fields are not in a known format");
    return open(dataKey, c.subarray(1, 1 + NONCE_BYTES), c.subarray(1 + NONCE_BYTES), fieldsAad(ctx));
  } finally {
    dataKey.fill(0);
  }
}

/** Re-wraps a record's data key under `to`; the sealed fields are untouched. One encryption under `to`. */
export function rewrapRecord(keys: MasterKeyLookup, to: MasterKey, ctx: RecordContext, record: EnvelopeRecord): EnvelopeRecord {
  const dataKey = unwrapDataKey(keys, ctx, record);
  try {
    return { keyVersion: to.version, wrappedKey: wrapDataKey(to, dataKey, ctx), ciphertext: record.ciphertext };
  } finally {
    dataKey.fill(0);
  }
}

/** The master key version a wrapped key names in its header (undefined when the format is unknown). */
export function wrappedKeyVersion(wrappedKey: Buffer): number | undefined {
  return wrappedKey.length === WRAPPED_KEY_BYTES && wrappedKey[0] === FORMAT_V1 ? wrappedKey.readUInt32BE(1) : undefined;
}

function wrapDataKey(master: MasterKey, dataKey: Buffer, ctx: RecordContext): Buffer {
  const header = Buffer.alloc(5);
  header[0] = FORMAT_V1;
  header.writeUInt32BE(master.version, 1);
  const sealed = seal(master.key, dataKey, wrapAad(ctx, master.version));
  return Buffer.concat([header, sealed.nonce, sealed.ciphertext]);
}

function unwrapDataKey(keys: MasterKeyLookup, ctx: RecordContext, record: EnvelopeRecord): Buffer {
  const named = wrappedKeyVersion(record.wrappedKey);
  if (named === undefined) throw new EnvelopeError("FORMAT", "wrapped data key is not in a known format");
  // The column and the ciphertext must agree; the version is also in the associated data, so changing both fails too.
  if (named !== record.keyVersion) throw new EnvelopeError("KEY_VERSION_MISMATCH", `wrapped data key names master key version ${named} but the record says ${record.keyVersion}`);
  const key = keys(named);
  if (!key) throw new EnvelopeError("KEY_VERSION_UNKNOWN", `master key version ${named} is not configured`);
  const w = record.wrappedKey;
  return open(key, w.subarray(5, 5 + NONCE_BYTES), w.subarray(5 + NONCE_BYTES), wrapAad(ctx, named));
}

function checkKey(key: Buffer): void {
  if (key.length !== KEY_BYTES) throw new RangeError(`AES-256 key must be ${KEY_BYTES} bytes`);
}
