// `dispatcher backup`: the databases' content, compressed and sealed into one archive file, written under a temporary
// name and renamed once complete and on disk; a `.sha256` file beside it lets a copy be checked without the key; then
// the oldest archives beyond backup.keep are deleted.
import { createHash } from "node:crypto";
import { createWriteStream, mkdirSync, readdirSync, rmSync } from "node:fs";
import { open, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import type { Config } from "../config.js";
import { DATABASES } from "../db/databases.js";
import { packageVersion } from "../system/service.js";
import { newHeader, sealStream } from "./archive.js";
import type { DatabaseName, Manifest } from "./content.js";
import { dumpContent, type DumpSource, type TableProgress } from "./dump.js";
import { backupKeyFingerprint, loadBackupKeys } from "./keys.js";

export interface BackupOptions {
  /** Include the analytics database (metrics, costs: large and not critical). */
  analytics?: boolean;
  /** Write exactly this file instead of a new one in backup.dir (no retention then). */
  output?: string;
  onTable?: (p: TableProgress) => void;
  now?: Date;
}

export interface BackupResult {
  path: string;
  bytes: number;
  /** sha256 hex of the archive file, also in <path>.sha256. */
  sha256: string;
  manifest: Manifest;
  /** Archives deleted by retention. */
  deleted: string[];
}

const ARCHIVE_NAME = /^dispatcher-backup-(\d{8}T\d{6}\d{3}Z)\.dbk$/;

/** dispatcher-backup-20261204T141500123Z.dbk: sorts by time, one per millisecond. */
export function archiveName(now: Date): string {
  return `dispatcher-backup-${now.toISOString().replace(/[-:.]/g, "")}.dbk`;
}

/** Archives in `dir` made by `dispatcher backup`, newest first (complete ones only: a `.partial` file is not one). */
export function listArchives(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => ARCHIVE_NAME.test(n)).sort().reverse().map((n) => join(dir, n));
}

/** Which databases an archive takes, in snapshot order (see dumpContent). */
export function backupSources(config: Config, analytics: boolean): DumpSource[] {
  const order: DatabaseName[] = ["provisioning", "credentials", ...(analytics ? (["analytics"] as const) : [])];
  return order.map((name) => ({ name, url: (DATABASES.find((d) => d.name === name) as (typeof DATABASES)[number]).url(config) }));
}

export async function createBackup(config: Config, options: BackupOptions = {}): Promise<BackupResult> {
  const keys = loadBackupKeys(config);
  const { version, key } = keys.newest;
  const now = options.now ?? new Date();
  const path = options.output ?? join(config.backup.dir, archiveName(now));
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const partial = `${path}.partial`;
  const hash = createHash("sha256");
  let bytes = 0;
  let manifest: Manifest | undefined;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  const content = Readable.from(
    dumpContent(backupSources(config, options.analytics ?? false), { dispatcherVersion: packageVersion(), createdAt: now }, { onTable: options.onTable, onManifest: (m) => (manifest = m) }),
  );
  try {
    // Owner-only and never overwriting: an archive holds every user, key hash and job.
    await pipeline(content, createGzip(), sealStream(key, newHeader(version, backupKeyFingerprint(key), now)), tap, createWriteStream(partial, { flags: "wx", mode: 0o600 }));
    await syncFile(partial);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  await rename(partial, path);
  const sha256 = hash.digest("hex");
  await writeFile(`${path}.sha256`, `${sha256}  ${basename(path)}\n`, { mode: 0o644 });
  await syncDir(dirname(path));
  const deleted = options.output ? [] : prune(config.backup.dir, config.backup.keep);
  return { path, bytes, sha256, manifest: manifest as Manifest, deleted };
}

/** Deletes the archives (and their .sha256 files) beyond the newest `keep`; returns what it deleted. */
export function prune(dir: string, keep: number): string[] {
  const doomed = listArchives(dir).slice(keep);
  for (const path of doomed) {
    rmSync(path, { force: true });
    rmSync(`${path}.sha256`, { force: true });
  }
  return doomed;
}

/** Flushes a written file to disk (fsync applies to the file, whichever descriptor asks). */
async function syncFile(path: string): Promise<void> {
  const handle = await open(path, "r+");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A rename is durable once its directory is synced. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
