// src/db/migrate.ts against the real MariaDB: idempotence, Prisma-compatible bookkeeping, refusals, the lock.
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkDatabase } from "../../src/db/clients.js";
import { openConnection } from "../../src/db/connect.js";
import { DATABASES } from "../../src/db/databases.js";
import { checksumMatches, migrate, MigrationError, readMigrations } from "../../src/db/migrate.js";
import { UnavailableError } from "../../src/errors.js";
import { dropDatabases, newTestDatabaseName, testDatabaseUrl } from "../support/db.js";

const provisioningDir = DATABASES.find((d) => d.name === "provisioning")?.migrationsDir as string;
const created: string[] = [];
const temps: string[] = [];

function freshUrl(label: string): string {
  const url = testDatabaseUrl(newTestDatabaseName(label, "mig"));
  created.push(url);
  return url;
}

/** A scratch migrations directory holding copies of `from` plus extra migrations. */
function scratchDir(from?: string, extra: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "dispatcher-migrations-"));
  temps.push(dir);
  if (from) cpSync(from, dir, { recursive: true });
  for (const [name, sql] of Object.entries(extra)) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, "migration.sql"), sql);
  }
  return dir;
}

async function rows(url: string): Promise<{ migration_name: string; checksum: string; finished_at: Date | null; applied_steps_count: number; logs: string | null; rolled_back_at: Date | null }[]> {
  const conn = await openConnection(url);
  try {
    return await conn.query("SELECT * FROM _prisma_migrations ORDER BY started_at, migration_name");
  } finally {
    await conn.end();
  }
}

afterAll(async () => {
  await dropDatabases(created);
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

describe("migrate", () => {
  it("creates the database, applies every migration once, and applies nothing the second time", async () => {
    const url = freshUrl("twice");
    const names = readMigrations(provisioningDir).map((m) => m.name);
    const progress: string[] = [];
    const first = await migrate(url, provisioningDir, { onProgress: (p) => progress.push(`${p.phase} ${p.migration} ${p.index}/${p.total}`) });
    expect(first.applied).toEqual(names);
    expect(progress).toContain(`applied ${names[0]} 1/${names.length}`);
    const second = await migrate(url, provisioningDir);
    expect(second.applied).toEqual([]);

    const recorded = await rows(url);
    expect(recorded.map((r) => r.migration_name)).toEqual(names);
    for (const r of recorded) {
      const file = readFileSync(join(provisioningDir, r.migration_name, "migration.sql"));
      expect(r.checksum).toBe(createHash("sha256").update(file).digest("hex"));
      expect(r.finished_at).toBeInstanceOf(Date);
      expect(Number(r.applied_steps_count)).toBe(1);
    }
  });

  it("keeps _prisma_migrations with Prisma's exact columns", async () => {
    const url = freshUrl("bookkeeping");
    await migrate(url, scratchDir(undefined, { "20250101000000_a": "CREATE TABLE a (id INT NOT NULL, PRIMARY KEY (id));" }));
    const conn = await openConnection(url);
    try {
      const cols = (await conn.query(
        "SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS nullable FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '_prisma_migrations' ORDER BY ORDINAL_POSITION",
      )) as { name: string; type: string; nullable: string }[];
      expect(cols.map((c) => `${c.name} ${c.type} ${c.nullable}`)).toEqual([
        "id varchar(36) NO",
        "checksum varchar(64) NO",
        "finished_at datetime(3) YES",
        "migration_name varchar(255) NO",
        "logs text YES",
        "rolled_back_at datetime(3) YES",
        "started_at datetime(3) NO",
        "applied_steps_count int(10) unsigned NO",
      ]);
    } finally {
      await conn.end();
    }
  });

  it("refuses, naming the migration, when an applied migration's file changed", async () => {
    const url = freshUrl("checksum");
    const dir = scratchDir(provisioningDir);
    await migrate(url, dir);
    const name = readMigrations(dir)[0]?.name as string;
    const file = join(dir, name, "migration.sql");
    writeFileSync(file, readFileSync(file, "utf8") + "\n-- an innocent-looking edit\n");
    const err = await migrate(url, dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as MigrationError).migration).toBe(name);
    expect((err as Error).message).toMatch(new RegExp(`migration ${name} was changed after it was applied`));
  });

  it("accepts a file whose line endings git converted, as Prisma does", async () => {
    const sql = "-- CreateTable\nCREATE TABLE t (id INT NOT NULL);\n";
    const lf = createHash("sha256").update(sql).digest("hex");
    expect(checksumMatches(sql.replace(/\n/g, "\r\n"), lf)).toBe(true);
    expect(checksumMatches(sql + " ", lf)).toBe(false);
  });

  it("records a failed migration, then refuses to run until it is marked rolled back", async () => {
    const url = freshUrl("failed");
    const dir = scratchDir(undefined, {
      "20250101000000_ok": "CREATE TABLE ok (id INT NOT NULL, PRIMARY KEY (id));",
      "20250102000000_broken": "CREATE TABLE half (id INT NOT NULL);\nINSERT INTO no_such_table VALUES (1);\n",
    });
    const first = await migrate(url, dir).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(MigrationError);
    expect((first as Error).message).toMatch(/migration 20250102000000_broken failed at statement 2 of 2/);
    const after = await rows(url);
    const broken = after.find((r) => r.migration_name === "20250102000000_broken");
    expect(broken?.finished_at).toBeNull();
    expect(broken?.logs).toMatch(/no_such_table/);

    const again = await migrate(url, dir).catch((e: unknown) => e);
    expect((again as MigrationError).migration).toBe("20250102000000_broken");
    expect((again as Error).message).toMatch(/failed earlier and is recorded as unfinished.*rolled_back_at/);

    // The operator repairs by hand and marks it rolled back; the fixed migration then applies.
    const conn = await openConnection(url);
    await conn.query("DROP TABLE half");
    await conn.query("UPDATE _prisma_migrations SET rolled_back_at = NOW(3) WHERE migration_name = '20250102000000_broken' AND finished_at IS NULL");
    await conn.end();
    writeFileSync(join(dir, "20250102000000_broken", "migration.sql"), "CREATE TABLE half (id INT NOT NULL);\n");
    expect((await migrate(url, dir)).applied).toEqual(["20250102000000_broken"]);
  });

  it("waits for another migrator and gives up with a clear error after the lock timeout", async () => {
    const url = freshUrl("locked");
    const database = new URL(url).pathname.slice(1);
    const holder = await openConnection(url, false);
    try {
      await holder.query("SELECT GET_LOCK(?, 0)", [`dispatcher_migrate:${database}`]);
      const started = Date.now();
      const err = await migrate(url, provisioningDir, { lockTimeoutSeconds: 1 }).catch((e: unknown) => e);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      expect(err).toBeInstanceOf(MigrationError);
      expect((err as Error).message).toMatch(/another process has been migrating this database .* for more than 1 s/);
    } finally {
      await holder.end();
    }
    expect((await migrate(url, provisioningDir)).applied.length).toBeGreaterThan(0);
  });

  it("rejects a migrations directory entry without migration.sql", () => {
    const dir = scratchDir();
    mkdirSync(join(dir, "20250101000000_empty"));
    expect(() => readMigrations(dir)).toThrow(/migration 20250101000000_empty has no migration.sql/);
  });
});

describe("checkDatabase", () => {
  it("resolves for a reachable database", async () => {
    const url = freshUrl("check");
    await migrate(url, scratchDir());
    await expect(checkDatabase(url)).resolves.toBeUndefined();
  });

  it("says MariaDB is not reachable and how to start it, without the password", async () => {
    const err = await checkDatabase("mysql://root:s3cret@127.0.0.1:1/dispatcher_provisioning").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    const message = (err as Error).message;
    expect(message).toMatch(/^MariaDB is not reachable at 127\.0\.0\.1:1 .*start-stop-daemon --start --oknodo --background --exec \/usr\/sbin\/mariadbd/);
    expect(message).not.toContain("s3cret");
  });

  it("says a missing database needs `dispatcher migrate`", async () => {
    const err = await checkDatabase(testDatabaseUrl(newTestDatabaseName("absent", "none"))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(/database "dt_.*" does not exist at .*dispatcher migrate/);
  });

  it("checks only the server and credentials when the database may not exist yet", async () => {
    await expect(checkDatabase(testDatabaseUrl(newTestDatabaseName("absent", "none")), { requireDatabase: false })).resolves.toBeUndefined();
  });
});
