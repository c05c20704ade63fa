// `dispatcher restore`: an archive loaded into empty databases and checked. Nothing is written until the whole archive
// has been read and authenticated, its migrations are known to this dispatcher and the targets are empty (or the
// caller asked to replace them). The schema comes from the migrations the archive records, then the rows; last, the
// restored databases are read back, counted and hashed against the manifest.
import type { Connection } from "mariadb";
import type { Config } from "../config.js";
import { openConnection } from "../db/connect.js";
import { DATABASES } from "../db/databases.js";
import { checksumMatches, migrate, quoteIdentifier, readMigrations } from "../db/migrate.js";
import { databaseNameFromUrl, parseDatabaseUrl } from "../db/url.js";
import { FailedPreconditionError } from "../errors.js";
import { ArchiveError } from "./archive.js";
import type { DatabaseManifest, DatabaseName, Manifest, Row, TableRecord } from "./content.js";
import { listTables, summarizeDatabase } from "./dump.js";
import { loadBackupKeys } from "./keys.js";
import { archiveEvents, openArchive, verifyArchive, type OpenedArchive } from "./reader.js";

export type RestorePhase = "verify" | "load";

export interface RestoreOptions {
  /** Drop target databases that hold tables instead of refusing. */
  replace?: boolean;
  /** How much of the archive file a pass has read. */
  onBytes?: (phase: RestorePhase, read: number, total: number) => void;
  /** Rows loaded into a table so far. */
  onTable?: (database: DatabaseName, table: string, rows: number, done: boolean) => void;
  /** A step worth a line of its own (migrations applied, a database checked). */
  onStep?: (line: string) => void;
}

export interface RestoreResult {
  manifest: Manifest;
  /** Per database: where it went and what the check counted. */
  databases: { name: DatabaseName; url: string; tables: number; rows: number }[];
}

/** Opens and fully verifies an archive with the configured keys; writes nothing. */
export async function checkArchive(config: Config, path: string, onBytes?: (read: number, total: number) => void): Promise<{ archive: OpenedArchive; manifest: Manifest }> {
  const archive = openArchive(path, loadBackupKeys(config));
  return { archive, manifest: await verifyArchive(archive, onBytes) };
}

export async function restoreBackup(config: Config, path: string, options: RestoreOptions = {}): Promise<RestoreResult> {
  const { archive, manifest } = await checkArchive(config, path, (r, t) => options.onBytes?.("verify", r, t));
  const targets = manifest.databases.map((db) => ({ db, url: targetUrl(config, db.name) }));
  for (const t of targets) checkMigrationsKnown(t.db);
  await checkTargetsEmpty(targets, options.replace ?? false, options.onStep);

  for (const t of targets) {
    const known = DATABASES.find((d) => d.name === t.db.name);
    const { applied } = await migrate(t.url, (known as (typeof DATABASES)[number]).migrationsDir, { only: t.db.migrations.map((m) => m.name) });
    options.onStep?.(`${t.db.name}: schema built from ${applied.length} migration(s) into ${databaseNameFromUrl(t.url)}`);
    await checkSchemaMatches(t.db, t.url, path);
  }

  await load(archive, new Map(targets.map((t) => [t.db.name, t.url])), options);

  const databases: RestoreResult["databases"] = [];
  for (const t of targets) {
    const found = await summarizeDatabase(t.url);
    for (const want of t.db.tables) {
      const got = found.find((f) => f.name === want.name);
      if (!got || got.rows !== want.rows || got.sha256 !== want.sha256) {
        throw new FailedPreconditionError(
          `restore check failed: ${t.db.name}.${want.name} holds ${got?.rows ?? 0} rows (sha256 ${got?.sha256 ?? "-"}) after the restore, the archive ${want.rows} (sha256 ${want.sha256}); ` +
            `the restored databases are not a faithful copy: drop them and restore again (--replace)`,
          "RESTORE_CHECK_FAILED",
        );
      }
    }
    const rows = t.db.tables.reduce((n, x) => n + x.rows, 0);
    options.onStep?.(`${t.db.name}: checked ${t.db.tables.length} tables, ${rows} rows: equal to the archive`);
    databases.push({ name: t.db.name, url: t.url, tables: t.db.tables.length, rows });
  }
  return { manifest, databases };
}

function targetUrl(config: Config, name: DatabaseName): string {
  const known = DATABASES.find((d) => d.name === name);
  if (!known) throw new ArchiveError(`the archive holds a database "${name}" this dispatcher does not know`, "BACKUP_CONTENT_INVALID");
  return known.url(config);
}

/** Every migration the archive was taken at must be on disk here, unchanged: the schema is rebuilt from them. */
function checkMigrationsKnown(db: DatabaseManifest): void {
  const files = new Map(readMigrations((DATABASES.find((d) => d.name === db.name) as (typeof DATABASES)[number]).migrationsDir).map((f) => [f.name, f]));
  for (const m of db.migrations) {
    const file = files.get(m.name);
    if (!file) throw new FailedPreconditionError(`the archive's ${db.name} database was at migration ${m.name}, which this dispatcher does not have: restore with the release that made the archive, or a newer one`, "RESTORE_MIGRATION_UNKNOWN");
    if (!checksumMatches(file.sql, m.checksum)) throw new FailedPreconditionError(`migration ${m.name} of ${db.name} differs from the one the archive was taken at (checksum ${m.checksum}): restore with the release that made the archive`, "RESTORE_MIGRATION_CHANGED");
  }
}

/** Refuses targets that hold tables, or drops them when told to; a missing or empty database is fine. */
async function checkTargetsEmpty(targets: { db: DatabaseManifest; url: string }[], replace: boolean, onStep?: (line: string) => void): Promise<void> {
  const busy: string[] = [];
  for (const { db, url } of targets) {
    const schema = databaseNameFromUrl(url);
    const conn = await openConnection(url, false);
    try {
      const [row] = (await conn.query("SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", [schema])) as { n: bigint | number }[];
      if (Number(row?.n ?? 0) > 0) busy.push(`${db.name} (${schema} at ${parseDatabaseUrl(url).host}:${parseDatabaseUrl(url).port}, ${Number(row?.n)} tables)`);
    } finally {
      await conn.end().catch(() => undefined);
    }
  }
  if (busy.length === 0) return;
  if (!replace) {
    throw new FailedPreconditionError(`restore refused: the target databases are not empty: ${busy.join("; ")}. Restore into an empty server, point the configuration at new database names, or pass --replace to drop them first`, "RESTORE_TARGET_NOT_EMPTY");
  }
  for (const { db, url } of targets) {
    const conn = await openConnection(url, false);
    try {
      await conn.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(databaseNameFromUrl(url))}`);
      onStep?.(`${db.name}: dropped ${databaseNameFromUrl(url)} (--replace)`);
    } finally {
      await conn.end().catch(() => undefined);
    }
  }
}

/** The tables the migrations built must be the archive's: a table the archive has but the schema lacks would be lost. */
async function checkSchemaMatches(db: DatabaseManifest, url: string, path: string): Promise<void> {
  const conn = await openConnection(url, false);
  try {
    const have = new Set((await listTables(conn, databaseNameFromUrl(url))).map((t) => t.name));
    const missing = db.tables.filter((t) => !have.has(t.name)).map((t) => t.name);
    if (missing.length > 0) throw new ArchiveError(`${path}: ${db.name} holds tables its migrations do not create (${missing.join(", ")}); nothing of them was restored`, "BACKUP_CONTENT_INVALID");
  } finally {
    await conn.end().catch(() => undefined);
  }
}

const BATCH_ROWS = 1_000;
const BATCH_CHARS = 4 * 1024 * 1024;

/** The second pass: every row into its table, in batches of one transaction each. */
async function load(archive: OpenedArchive, urls: Map<DatabaseName, string>, options: RestoreOptions): Promise<void> {
  const conns = new Map<DatabaseName, Connection>();
  let table: TableRecord | undefined;
  let insert = "";
  let batch: unknown[][] = [];
  let batchChars = 0;
  let rows = 0;
  const flush = async (conn: Connection): Promise<void> => {
    if (batch.length === 0) return;
    await conn.beginTransaction();
    await conn.batch(insert, batch);
    await conn.commit();
    batch = [];
    batchChars = 0;
  };
  const connFor = async (name: DatabaseName): Promise<Connection> => {
    let conn = conns.get(name);
    if (!conn) {
      conn = await openConnection(urls.get(name) as string);
      // As mariadb-dump's output does: rows arrive table by table, so references are checked by the final comparison,
      // not row by row; 0 in an AUTO_INCREMENT column stays 0. The migrations have created the triggers already, so a
      // BEFORE/AFTER INSERT trigger would fire while loading (there is none; KM's audit triggers guard UPDATE/DELETE).
      await conn.query("SET SESSION time_zone = '+00:00', foreign_key_checks = 0, sql_mode = 'STRICT_TRANS_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'");
      conns.set(name, conn);
    }
    return conn;
  };
  try {
    for await (const ev of archiveEvents(archive, (r, t) => options.onBytes?.("load", r, t))) {
      if (ev.kind === "table") {
        table = ev.table;
        const conn = await connFor(table.database);
        const target = quoteIdentifier(table.name);
        // The migrator recorded its own run; the archive's history (ids, times) replaces it.
        if (table.name === "_prisma_migrations") await conn.query(`DELETE FROM ${target}`);
        insert = `INSERT INTO ${target} (${table.columns.map(quoteIdentifier).join(", ")}) VALUES (${table.columns.map(() => "?").join(", ")})`;
        rows = 0;
      } else if (ev.kind === "row" && table) {
        batch.push(decodeRow(ev.row, table.binary));
        batchChars += ev.row.reduce((n, v) => n + (v?.length ?? 0), 0);
        rows++;
        if (batch.length >= BATCH_ROWS || batchChars >= BATCH_CHARS) {
          await flush(await connFor(table.database));
          options.onTable?.(table.database, table.name, rows, false);
        }
      } else if (ev.kind === "table-end" && table) {
        const conn = await connFor(table.database);
        await flush(conn);
        if (table.autoIncrement !== undefined && Number.isSafeInteger(table.autoIncrement) && table.autoIncrement > 0) {
          await conn.query(`ALTER TABLE ${quoteIdentifier(table.name)} AUTO_INCREMENT = ${table.autoIncrement}`);
        }
        options.onTable?.(table.database, table.name, rows, true);
        table = undefined;
      }
    }
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new FailedPreconditionError(`restore failed while loading rows (${detail}); the target databases are incomplete: fix the cause, then restore again with --replace`, "RESTORE_INCOMPLETE");
  } finally {
    for (const conn of conns.values()) await conn.end().catch(() => undefined);
  }
}

function decodeRow(row: Row, binary: readonly number[]): unknown[] {
  if (binary.length === 0) return row;
  const out: unknown[] = [...row];
  for (const i of binary) {
    const v = row[i];
    if (v !== null && v !== undefined) out[i] = Buffer.from(v, "base64");
  }
  return out;
}
