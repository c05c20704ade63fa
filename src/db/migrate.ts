// Applies Prisma-layout migrations (<dir>/<timestamp>_<name>/migration.sql) with the mariadb driver, keeping Prisma's
// bookkeeping table `_prisma_migrations` exactly as `prisma migrate deploy` does, so either tool can take over.
// Prisma's schema engine cannot be installed everywhere this runs, which is why this exists.
import { createHash, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Connection } from "mariadb";
import type { Config } from "../config.js";
import { openConnection } from "./connect.js";
import { UnavailableError } from "../errors.js";
import { DATABASES, type KnownDatabase } from "./databases.js";
import { splitSqlStatements, stripSqlComments } from "./sql-split.js";
import { databaseNameFromUrl, parseDatabaseUrl } from "./url.js";

/** Prisma's own DDL for its bookkeeping table (schema-engine, MySQL flavour). */
const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             DATETIME(3),
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          DATETIME(3),
    started_at              DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    applied_steps_count     INTEGER UNSIGNED NOT NULL DEFAULT 0
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`;

export interface MigrateLog {
  info(message: string): void;
  warn(message: string): void;
}

export interface MigrateProgress {
  database: string;
  migration: string;
  /** 1-based position among the migrations this run applies. */
  index: number;
  total: number;
  phase: "applying" | "applied";
}

export interface MigrateOptions {
  log?: MigrateLog;
  onProgress?: (progress: MigrateProgress) => void;
  /** How long to wait for another process that is migrating the same database (default 60 s). */
  lockTimeoutSeconds?: number;
  /** Apply only these migrations (a restore rebuilds the schema its archive was taken at); each must be on disk. */
  only?: readonly string[];
}

export interface MigrationFile {
  name: string;
  sql: string;
  /** sha256 hex of migration.sql, as Prisma records it. */
  checksum: string;
}

/** A migration cannot be applied or the recorded history disagrees with the files; the message names the migration. */
export class MigrationError extends Error {
  constructor(message: string, readonly migration?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MigrationError";
  }
}

interface MigrationRow {
  id: string;
  checksum: string;
  migration_name: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
  logs: string | null;
}

/** The migrations in a Prisma migrations directory, in the order they apply (by directory name). */
export function readMigrations(migrationsDir: string): MigrationFile[] {
  if (!existsSync(migrationsDir)) throw new MigrationError(`migrations directory ${migrationsDir} does not exist`);
  return readdirSync(migrationsDir)
    .filter((name) => statSync(join(migrationsDir, name)).isDirectory())
    .sort()
    .map((name) => {
      const file = join(migrationsDir, name, "migration.sql");
      if (!existsSync(file)) throw new MigrationError(`migration ${name} has no migration.sql (${file})`, name);
      const sql = readFileSync(file, "utf8");
      return { name, sql, checksum: sha256(sql).toString("hex") };
    });
}

/**
 * Brings the database of `url` up to date with `migrationsDir`, creating the database when missing.
 * Safe to run twice and from several processes at once (a named lock per database serialises them).
 * Refuses, naming the migration, when an applied migration's file changed or a failed migration is recorded.
 */
export async function migrate(url: string, migrationsDir: string, options: MigrateOptions = {}): Promise<{ applied: string[] }> {
  const database = databaseNameFromUrl(url);
  const files = readMigrations(migrationsDir);
  const conn = await openConnection(url, false);
  try {
    const lock = lockName(database);
    await acquireLock(conn, lock, database, url, options.lockTimeoutSeconds ?? 60);
    try {
      await ensureDatabase(conn, database);
      await conn.query(MIGRATIONS_TABLE);
      const rows = (await conn.query("SELECT id, checksum, migration_name, finished_at, rolled_back_at, logs FROM _prisma_migrations ORDER BY started_at, migration_name")) as MigrationRow[];
      const pending = plan(files, rows, database, options.log, options.only);
      const applied: string[] = [];
      for (const [i, file] of pending.entries()) {
        const progress = { database, migration: file.name, index: i + 1, total: pending.length };
        options.onProgress?.({ ...progress, phase: "applying" });
        options.log?.info(`${database}: applying migration ${file.name}`);
        await applyMigration(conn, database, file);
        applied.push(file.name);
        options.onProgress?.({ ...progress, phase: "applied" });
      }
      options.log?.info(applied.length ? `${database}: applied ${applied.length} migration(s)` : `${database}: up to date (${files.length} migration(s))`);
      return { applied };
    } finally {
      await conn.query("SELECT RELEASE_LOCK(?)", [lock]).catch(() => undefined);
    }
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** Checks the recorded history against the files and returns the migrations still to apply, in order. */
function plan(files: MigrationFile[], rows: MigrationRow[], database: string, log?: MigrateLog, only?: readonly string[]): MigrationFile[] {
  const live = rows.filter((r) => r.rolled_back_at === null);
  const failed = live.find((r) => r.finished_at === null);
  if (failed) {
    throw new MigrationError(
      `${database}: migration ${failed.migration_name} failed earlier and is recorded as unfinished` +
        (failed.logs ? ` (${failed.logs.split("\n")[0]})` : "") +
        `. Repair the database by hand, then mark it rolled back with ` +
        `UPDATE _prisma_migrations SET rolled_back_at = NOW(3) WHERE migration_name = '${failed.migration_name}' AND finished_at IS NULL` +
        ` (or \`prisma migrate resolve --rolled-back ${failed.migration_name}\`) and migrate again`,
      failed.migration_name,
    );
  }
  const done = new Map(live.map((r) => [r.migration_name, r]));
  for (const file of files) {
    const row = done.get(file.name);
    if (row && !checksumMatches(file.sql, row.checksum)) {
      throw new MigrationError(
        `${database}: migration ${file.name} was changed after it was applied (recorded checksum ${row.checksum}, file ${file.checksum}). ` +
          `Restore its migration.sql and put the change in a new migration`,
        file.name,
      );
    }
  }
  const onDisk = new Set(files.map((f) => f.name));
  for (const name of done.keys()) {
    if (!onDisk.has(name)) log?.warn(`${database}: migration ${name} is applied but not in the migrations directory (a newer release ran here?)`);
  }
  const wanted = only ? new Set(only) : undefined;
  for (const name of wanted ?? []) {
    if (!onDisk.has(name)) throw new MigrationError(`${database}: migration ${name} is not in the migrations directory`, name);
  }
  return files.filter((f) => !done.has(f.name) && (!wanted || wanted.has(f.name)));
}

async function applyMigration(conn: Connection, database: string, file: MigrationFile): Promise<void> {
  let statements: string[];
  try {
    statements = splitSqlStatements(file.sql);
  } catch (err) {
    throw new MigrationError(`${database}: migration ${file.name} cannot be read: ${(err as Error).message}`, file.name, { cause: err });
  }
  const id = randomUUID();
  await conn.query("INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, applied_steps_count) VALUES (?, ?, ?, NOW(3), 0)", [id, file.checksum, file.name]);
  for (const [i, statement] of statements.entries()) {
    try {
      await conn.query(statement);
    } catch (err) {
      const reason = (err as Error).message.replace(/^\(conn:[^)]*\)\s*/, "");
      const logs = `statement ${i + 1} of ${statements.length} failed: ${reason}\n${statement}`;
      await conn.query("UPDATE _prisma_migrations SET logs = ? WHERE id = ?", [logs, id]).catch(() => undefined);
      throw new MigrationError(
        `${database}: migration ${file.name} failed at statement ${i + 1} of ${statements.length} ` +
          `(${stripSqlComments(statement).slice(0, 120)}): ${reason}. MariaDB cannot roll back DDL, so statements before it stay applied`,
        file.name,
        { cause: err },
      );
    }
  }
  await conn.query("UPDATE _prisma_migrations SET finished_at = NOW(3), applied_steps_count = 1 WHERE id = ?", [id]);
}

async function ensureDatabase(conn: Connection, database: string): Promise<void> {
  const found = (await conn.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", [database])) as unknown[];
  if (found.length === 0) await conn.query(`CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  await conn.query(`USE ${quoteIdentifier(database)}`);
}

async function acquireLock(conn: Connection, lock: string, database: string, url: string, timeoutSeconds: number): Promise<void> {
  const rows = (await conn.query("SELECT GET_LOCK(?, ?) AS got", [lock, timeoutSeconds])) as { got: number | bigint | null }[];
  const got = rows[0]?.got;
  if (got === null || got === undefined) throw new MigrationError(`${database}: could not take the migration lock ${JSON.stringify(lock)}`);
  if (Number(got) !== 1) {
    const { host, port } = parseDatabaseUrl(url);
    throw new MigrationError(
      `${database}: another process has been migrating this database at ${host}:${port} for more than ${timeoutSeconds} s ` +
        `(lock ${JSON.stringify(lock)} is held; see SELECT * FROM information_schema.METADATA_LOCK_INFO); try again when it is done`,
    );
  }
}

/**
 * Prisma's comparison: the script as is or with its line endings converted either way (git may convert them), and
 * the unpadded hex that early schema engines recorded.
 */
export function checksumMatches(sql: string, recorded: string): boolean {
  const variants = [sql, sql.replace(/\r\n/g, "\n"), sql.replace(/\n/g, "\r\n")];
  return variants.some((v) => {
    const digest = sha256(v);
    const hex = recorded.length === 64 ? digest.toString("hex") : [...digest].map((b) => b.toString(16)).join("");
    return hex === recorded;
  });
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/** One lock per database (GET_LOCK names are server-wide and at most 64 characters). */
function lockName(database: string): string {
  const name = `dispatcher_migrate:${database}`;
  return name.length <= 64 ? name : `dispatcher_migrate:${createHash("sha256").update(database).digest("hex").slice(0, 40)}`;
}

export function quoteIdentifier(name: string): string {
  return "`" + name.replace(/`/g, "``") + "`";
}

/**
 * Migrates every database in DATABASES that the dispatcher owns, in order; returns what each run applied.
 * `onProgress` receives one human-readable line per migration applied.
 */
export async function migrateAll(
  config: Config,
  log?: MigrateLog,
  onProgress?: (line: string) => void,
  options: { optional?: readonly KnownDatabase["name"][] } = {},
): Promise<{ database: string; applied: string[] }[]> {
  const results: { database: string; applied: string[] }[] = [];
  for (const db of DATABASES.filter((d) => d.owner === "dispatcher")) {
    let applied: string[];
    try {
      ({ applied } = await migrate(db.url(config), db.migrationsDir, {
        log,
        onProgress: (p) => {
          if (p.phase === "applied") onProgress?.(`${db.name}: applied ${p.migration} (${p.index}/${p.total})`);
        },
      }));
    } catch (err) {
      // A database the caller can run without (analytics) that cannot be reached: say so and go on.
      if (!options.optional?.includes(db.name) || !(err instanceof UnavailableError)) throw err;
      const line = `${db.name}: not migrated, the database is unavailable (${err.message}); starting without it — run \`dispatcher migrate\` once it is back`;
      log?.warn(line);
      onProgress?.(line);
      continue;
    }
    if (applied.length === 0) onProgress?.(`${db.name}: up to date`);
    results.push({ database: db.name, applied });
  }
  return results;
}
