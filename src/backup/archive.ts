// The archive container: a clear header naming the key and the format, then the content encrypted in chunks with
// AES-256-GCM, each chunk authenticated on its own so that an archive of any size is written and read in constant
// memory, and a damaged, altered, reordered or truncated archive is detected (the STREAM construction, as in age).
//
//   "DSPBKUP\n" | u32 BE header length | header JSON
//   chunk*:  u8 final flag (1 on the last chunk only) | u32 BE ciphertext length | ciphertext | 16-byte tag
//
// The archive key is HKDF-SHA256(backup key, salt from the header, info bound to the whole header), so a changed
// header fails every chunk. Each chunk's nonce is its index and the final flag: a chunk moved, dropped, or marked
// final early fails its tag; an archive cut short lacks its final chunk.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { Transform, type TransformCallback } from "node:stream";
import { FailedPreconditionError } from "../errors.js";

const MAGIC = Buffer.from("DSPBKUP\n", "latin1");
const TAG_BYTES = 16;
const MAX_HEADER_BYTES = 64 * 1024;
export const CHUNK_BYTES = 64 * 1024;

export interface ArchiveHeader {
  format: 1;
  cipher: "AES-256-GCM";
  compression: "gzip";
  chunkBytes: number;
  keyVersion: number;
  /** backupKeyFingerprint of the key: which key opens the archive, without revealing it. */
  keyFingerprint: string;
  /** base64 of 32 random bytes: makes the archive key unique to this archive. */
  salt: string;
  createdAt: string;
}

/** An archive that cannot be opened or read as written: the message says which and where, never a key. */
export class ArchiveError extends FailedPreconditionError {
  constructor(message: string, reason: "BACKUP_NOT_AN_ARCHIVE" | "BACKUP_DAMAGED" | "BACKUP_TRUNCATED" | "BACKUP_WRONG_KEY" | "BACKUP_CONTENT_INVALID") {
    super(message, reason);
  }
}

/** A new header for an archive sealed with `key` (version and fingerprint as configured). */
export function newHeader(keyVersion: number, keyFingerprint: string, now = new Date()): ArchiveHeader {
  return { format: 1, cipher: "AES-256-GCM", compression: "gzip", chunkBytes: CHUNK_BYTES, keyVersion, keyFingerprint, salt: randomBytes(32).toString("base64"), createdAt: now.toISOString() };
}

/** The header's bytes as stored (magic, length, JSON). */
export function encodeHeader(header: ArchiveHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  return Buffer.concat([MAGIC, len, json]);
}

function archiveKey(key: Buffer, header: ArchiveHeader, headerBytes: Buffer): Buffer {
  const info = Buffer.concat([Buffer.from("dispatcher.backup/archive-key/v1\0", "utf8"), createHash("sha256").update(headerBytes).digest()]);
  return Buffer.from(hkdfSync("sha256", key, Buffer.from(header.salt, "base64"), info, 32));
}

function nonce(index: number, final: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(index), 3);
  n[11] = final ? 1 : 0;
  return n;
}

/** A Transform from content bytes to the archive's bytes: the header first, then sealed chunks. */
export function sealStream(key: Buffer, header: ArchiveHeader): Transform {
  const headerBytes = encodeHeader(header);
  const k = archiveKey(key, header, headerBytes);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let index = 0;
  const seal = (plain: Buffer, final: boolean): Buffer => {
    const cipher = createCipheriv("aes-256-gcm", k, nonce(index++, final));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    const prefix = Buffer.alloc(5);
    prefix[0] = final ? 1 : 0;
    prefix.writeUInt32BE(body.length, 1);
    return Buffer.concat([prefix, body, cipher.getAuthTag()]);
  };
  return new Transform({
    construct(done) {
      this.push(headerBytes);
      done();
    },
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      // Keep at least one byte back: only flush knows which chunk is the last.
      if (pendingBytes > header.chunkBytes) {
        let all = Buffer.concat(pending);
        while (all.length > header.chunkBytes) {
          this.push(seal(all.subarray(0, header.chunkBytes), false));
          all = all.subarray(header.chunkBytes);
        }
        pending = [all];
        pendingBytes = all.length;
      }
      done();
    },
    flush(done: TransformCallback) {
      this.push(seal(Buffer.concat(pending), true));
      pending = [];
      done();
    },
  });
}

/** Reads and checks an archive file's header; `offset` is where its chunks begin. */
export function readHeader(path: string): { header: ArchiveHeader; bytes: Buffer; offset: number } {
  const fd = openSync(path, "r");
  try {
    const start = Buffer.alloc(MAGIC.length + 4);
    if (readSync(fd, start, 0, start.length, 0) !== start.length || !start.subarray(0, MAGIC.length).equals(MAGIC)) {
      throw new ArchiveError(`${path} is not a dispatcher backup archive (it does not start with the archive's signature)`, "BACKUP_NOT_AN_ARCHIVE");
    }
    const len = start.readUInt32BE(MAGIC.length);
    if (len === 0 || len > MAX_HEADER_BYTES) throw new ArchiveError(`${path}: the archive's header length (${len}) is impossible; the file is damaged or was altered`, "BACKUP_DAMAGED");
    const json = Buffer.alloc(len);
    if (readSync(fd, json, 0, len, start.length) !== len) throw new ArchiveError(`${path} is truncated inside its header`, "BACKUP_TRUNCATED");
    let header: ArchiveHeader;
    try {
      header = JSON.parse(json.toString("utf8")) as ArchiveHeader;
    } catch {
      throw new ArchiveError(`${path}: the archive's header is unreadable; the file is damaged or was altered`, "BACKUP_DAMAGED");
    }
    if (header.format !== 1 || header.cipher !== "AES-256-GCM" || header.compression !== "gzip") {
      throw new ArchiveError(`${path}: archive format ${JSON.stringify(header.format)} (${String(header.cipher)}, ${String(header.compression)}) is not one this dispatcher reads`, "BACKUP_NOT_AN_ARCHIVE");
    }
    if (!Number.isSafeInteger(header.chunkBytes) || header.chunkBytes < 1 || header.chunkBytes > 16 * 1024 * 1024 || typeof header.salt !== "string") {
      throw new ArchiveError(`${path}: the archive's header is invalid; the file is damaged or was altered`, "BACKUP_DAMAGED");
    }
    return { header, bytes: Buffer.concat([start, json]), offset: start.length + len };
  } finally {
    closeSync(fd);
  }
}

/**
 * A Transform from an archive's chunk bytes (everything after the header) to its content. It emits a chunk's content
 * only once the chunk's tag has been verified, and fails with an ArchiveError on the first chunk that does not
 * authenticate, on bytes after the final chunk, and at the end when the final chunk never came.
 */
export function openStream(key: Buffer, header: ArchiveHeader, headerBytes: Buffer, path: string, offset: number): Transform {
  const k = archiveKey(key, header, headerBytes);
  let buf: Buffer = Buffer.alloc(0);
  let index = 0;
  let position = offset;
  let finished = false;
  const maxBody = header.chunkBytes + TAG_BYTES;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      try {
        for (;;) {
          if (buf.length === 0) break;
          if (finished) throw new ArchiveError(`${path} is damaged or was altered: there are bytes after its final chunk (at byte ${position})`, "BACKUP_DAMAGED");
          if (buf.length < 5) break;
          const final = buf[0];
          const len = buf.readUInt32BE(1);
          if ((final !== 0 && final !== 1) || len + TAG_BYTES > maxBody) throw new ArchiveError(`${path} is damaged or was altered: chunk ${index + 1} (at byte ${position}) has an impossible frame`, "BACKUP_DAMAGED");
          if (buf.length < 5 + len + TAG_BYTES) break;
          const decipher = createDecipheriv("aes-256-gcm", k, nonce(index, final === 1));
          decipher.setAuthTag(buf.subarray(5 + len, 5 + len + TAG_BYTES));
          let plain: Buffer;
          try {
            plain = Buffer.concat([decipher.update(buf.subarray(5, 5 + len)), decipher.final()]);
          } catch {
            throw new ArchiveError(`${path} is damaged or was altered: chunk ${index + 1} (at byte ${position}) failed authentication`, "BACKUP_DAMAGED");
          }
          this.push(plain);
          index++;
          position += 5 + len + TAG_BYTES;
          buf = buf.subarray(5 + len + TAG_BYTES);
          if (final === 1) finished = true;
        }
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback) {
      if (!finished || buf.length > 0) {
        done(new ArchiveError(`${path} is truncated: it ends at byte ${position + buf.length} after ${index} chunk(s), without its final chunk`, "BACKUP_TRUNCATED"));
        return;
      }
      done();
    },
  });
}
