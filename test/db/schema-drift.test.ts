// SCHEMA DRIFT: each Prisma schema must describe exactly what its migrations build. Prisma's schema engine is not
// available here, so the expected MySQL schema is derived from the Prisma schema (Prisma's WASM parser + Prisma's
// MySQL mapping and naming) and compared with information_schema of a freshly migrated database.
// When this fails: write the migration that makes the database match schema.prisma (or fix schema.prisma).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Connection } from "mariadb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openConnection } from "../../src/db/connect.js";
import { DATABASES } from "../../src/db/databases.js";
import { migrate } from "../../src/db/migrate.js";
import { databaseNameFromUrl } from "../../src/db/url.js";
import { dropDatabases, newTestDatabaseName, testDatabaseUrl } from "../support/db.js";
import { actualShape, diffShapes, expectedShape, normaliseType, prismaConstraintName, type SchemaShape } from "../support/schema-shape.js";

const schemaOf = (name: string): string => readFileSync(join(DATABASES.find((d) => d.name === name)?.migrationsDir as string, "..", "schema.prisma"), "utf8");
const urls: string[] = [];

afterAll(() => dropDatabases(urls));

async function migratedShape(migrationsDir: string, label: string): Promise<{ url: string; shape: SchemaShape }> {
  const url = testDatabaseUrl(newTestDatabaseName(label, "drift"));
  urls.push(url);
  await migrate(url, migrationsDir);
  const conn = await openConnection(url);
  try {
    return { url, shape: await actualShape(conn, databaseNameFromUrl(url)) };
  } finally {
    await conn.end();
  }
}

describe.each(DATABASES.map((d) => [d.name, d] as const))("%s schema and migrations", (name, db) => {
  it("agree on tables, columns, types, nullability, defaults, indexes and foreign keys", async () => {
    const { shape } = await migratedShape(db.migrationsDir, name);
    const expected = expectedShape(schemaOf(name));
    expect(Object.keys(expected).length).toBeGreaterThan(0);
    expect(diffShapes(expected, shape)).toEqual([]);
  });
});

describe("the drift check finds each kind of disagreement", () => {
  let actual: SchemaShape;
  let url: string;
  const schema = schemaOf("provisioning");

  beforeAll(async () => {
    const provisioning = DATABASES.find((d) => d.name === "provisioning");
    ({ shape: actual, url } = await migratedShape(provisioning?.migrationsDir as string, "drift_neg"));
  });

  /** Diff of the migrated database against the schema with one edit applied (the edit must apply). */
  function diffAfterEdit(from: string | RegExp, to: string): string[] {
    const edited = schema.replace(from, to);
    expect(edited, `edit ${String(from)} did not apply`).not.toBe(schema);
    return diffShapes(expectedShape(edited), actual);
  }

  it.each([
    ["a new column", "  kind      UserKind   @default(USER)\n", "  kind      UserKind   @default(USER)\n  nickname  String?\n", "column users.nickname: in the Prisma schema, missing from the database"],
    ["a removed column", "  checks          Int        @default(0)\n", "", "column jobs.checks: in the database, not in the Prisma schema"],
    ["a different type", "name      String     @db.VarChar(255)", "name      String     @db.VarChar(200)", "column users.name: type varchar(255), expected varchar(200)"],
    ["a different default type mapping", "subject         String    @db.VarChar(255)", "subject         String", "column outbox_entries.subject: type varchar(255), expected varchar(191)"],
    ["nullability", "progressMessage String?", "progressMessage String", "column jobs.progress_message: NULL, expected NOT NULL"],
    ["a default", "attempt         Int        @default(0)", "attempt         Int        @default(1)", "column jobs.attempt: default 0, expected 1"],
    ["an enum value", "  CANCELLED\n}", "  CANCELLED\n  PAUSED\n}", "column jobs.state: type enum('QUEUED','RUNNING','SUCCEEDED','FAILED','CANCELLED'), expected enum('QUEUED','RUNNING','SUCCEEDED','FAILED','CANCELLED','PAUSED')"],
    ["a missing index", "  @@index([kind, createdAt])\n", "", "index jobs.jobs_kind_created_at_idx: INDEX (kind, created_at) in the database, not in the Prisma schema"],
    ["an extra index", "  @@map(\"outbox_entries\")", "  @@index([jobId, attempt])\n  @@map(\"outbox_entries\")", "index outbox_entries.outbox_entries_job_id_attempt_idx: INDEX (job_id, attempt) in the Prisma schema, missing from the database"],
    ["a unique that is not", "  @@unique([requestedBy, idempotencyKey])", "  @@index([requestedBy, idempotencyKey], map: \"jobs_requested_by_idempotency_key_key\")", "index jobs.jobs_requested_by_idempotency_key_key: UNIQUE (requested_by, idempotency_key), expected INDEX (requested_by, idempotency_key)"],
    ["a referential action", "user       User      @relation(fields: [userId], references: [id], onDelete: Cascade)", "user       User      @relation(fields: [userId], references: [id])", "foreign key api_keys.api_keys_user_id_fkey: (user_id) → users(id) ON DELETE CASCADE ON UPDATE CASCADE, expected (user_id) → users(id) ON DELETE RESTRICT ON UPDATE CASCADE"],
    ["a renamed table", '@@map("dead_letters")', '@@map("dead_letter_entries")', "table dead_letter_entries: in the Prisma schema, missing from the database"],
  ])("%s", (_what, from, to, expectedLine) => {
    expect(diffAfterEdit(from, to)).toContain(expectedLine);
  });

  it("a database changed behind the schema's back", async () => {
    const conn: Connection = await openConnection(url);
    try {
      await conn.query("ALTER TABLE jobs MODIFY trace_id CHAR(32) NULL");
      await conn.query("ALTER TABLE dead_letters MODIFY payload LONGTEXT NOT NULL");
      await conn.query("CREATE INDEX stray ON outbox_entries (job_id)");
      const diff = diffShapes(expectedShape(schema), await actualShape(conn, databaseNameFromUrl(url)));
      expect([...diff].sort()).toEqual(
        [
          "column dead_letters.payload: type longtext, expected json",
          "column jobs.trace_id: NULL, expected NOT NULL",
          "index outbox_entries.stray: INDEX (job_id) in the database, not in the Prisma schema",
        ].sort(),
      );
    } finally {
      await conn.end();
    }
  });
});

describe("Prisma's naming and type spelling", () => {
  it("names constraints <table>_<columns>_<suffix>, cut to 64 characters like Prisma", () => {
    expect(prismaConstraintName("jobs", ["requested_by", "idempotency_key"], "key")).toBe("jobs_requested_by_idempotency_key_key");
    const long = prismaConstraintName("a_very_long_table_name_for_testing", ["first_long_column", "second_long_column"], "idx");
    expect(long).toHaveLength(64);
    expect(long.endsWith("_idx")).toBe(true);
  });

  it("normalises information_schema column types", () => {
    expect(normaliseType("int(11)")).toBe("int");
    expect(normaliseType("int(10) unsigned")).toBe("int unsigned");
    expect(normaliseType("tinyint(1)")).toBe("tinyint(1)");
    expect(normaliseType("datetime(0)")).toBe("datetime");
    expect(normaliseType("decimal(10, 2)")).toBe("decimal(10,2)");
    expect(normaliseType("enum('A','b')")).toBe("enum('A','b')");
  });
});
