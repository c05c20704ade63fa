// Opening an archive file with the configured backup keys and reading its checked content as a stream: the file,
// its chunks decrypted and authenticated, decompressed, split into lines and checked (content.ts).
import { createReadStream, statSync } from "node:fs";
import { pipeline, Transform } from "node:stream";
import { createGunzip } from "node:zlib";
import type { Keyring } from "../km/keys.js";
import { ArchiveError, openStream, readHeader, type ArchiveHeader } from "./archive.js";
import { contentEvents, splitLines, type ContentEvent, type Manifest } from "./content.js";
import { backupKeyFingerprint } from "./keys.js";

export interface OpenedArchive {
  path: string;
  header: ArchiveHeader;
  headerBytes: Buffer;
  offset: number;
  size: number;
  key: Buffer;
}

const short = (fingerprint: string): string => fingerprint.slice(0, 16);

/** Reads the header and picks the configured key the archive was sealed with; an ArchiveError when none is. */
export function openArchive(path: string, keys: Keyring): OpenedArchive {
  const { header, bytes, offset } = readHeader(path);
  for (const v of keys.versions) {
    const key = keys.key(v) as Buffer;
    if (backupKeyFingerprint(key) === header.keyFingerprint) return { path, header, headerBytes: bytes, offset, size: statSync(path).size, key };
  }
  const configured = keys.versions.map((v) => `version ${v} (fingerprint ${short(backupKeyFingerprint(keys.key(v) as Buffer))}…)`).join(", ");
  throw new ArchiveError(
    `${path} was encrypted with backup key version ${header.keyVersion} (fingerprint ${short(String(header.keyFingerprint))}…), which backup.key does not hold; it holds ${configured}. ` +
      "Add the archive's key to backup.key (older versions may stay there for reading)",
    "BACKUP_WRONG_KEY",
  );
}

/**
 * The archive's content events, every chunk authenticated before its bytes go on. `onBytes` hears how much of the
 * file has been read. Stopping the iteration early closes the file.
 */
export async function* archiveEvents(archive: OpenedArchive, onBytes: (read: number, total: number) => void = () => undefined): AsyncGenerator<ContentEvent> {
  let read = archive.offset;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      read += chunk.length;
      onBytes(read, archive.size);
      done(null, chunk);
    },
  });
  const file = createReadStream(archive.path, { start: archive.offset, highWaterMark: 256 * 1024 });
  // pipeline destroys every stream with the first error, so the iteration below throws it.
  const plain = pipeline(file, counter, openStream(archive.key, archive.header, archive.headerBytes, archive.path, archive.offset), createGunzip(), () => undefined);
  try {
    yield* contentEvents(splitLines(plain), archive.path);
  } catch (err) {
    if (err instanceof ArchiveError) throw err;
    // zlib and the line decoder see only authenticated bytes: their failing means a bug or a key holder's forgery.
    throw new ArchiveError(`${archive.path}: the archive's content cannot be read (${err instanceof Error ? err.message : String(err)})`, "BACKUP_CONTENT_INVALID");
  } finally {
    file.destroy();
    plain.destroy();
  }
}

/** Reads the whole archive, checking every chunk, count and checksum; resolves with its manifest. Writes nothing. */
export async function verifyArchive(archive: OpenedArchive, onBytes?: (read: number, total: number) => void): Promise<Manifest> {
  let manifest: Manifest | undefined;
  for await (const ev of archiveEvents(archive, onBytes)) if (ev.kind === "manifest") manifest = ev.manifest;
  return manifest as Manifest;
}
