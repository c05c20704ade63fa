// Two processes migrating the same fresh database at once: the named lock lets one apply, the other waits and finds
// nothing left to do; every migration is recorded once and the schema is whole.
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { openConnection } from "../../src/db/connect.js";
import { DATABASES } from "../../src/db/databases.js";
import { readMigrations } from "../../src/db/migrate.js";
import { dropDatabases, newTestDatabaseName, testDatabaseUrl } from "../support/db.js";
import { actualShape, diffShapes, expectedShape } from "../support/schema-shape.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const provisioning = DATABASES.find((d) => d.name === "provisioning") as (typeof DATABASES)[number];
const url = testDatabaseUrl(newTestDatabaseName("concurrent", "prov"));
const dir = mkdtempSync(join(tmpdir(), "dispatcher-migrations-"));

afterAll(async () => {
  await dropDatabases([url]);
  rmSync(dir, { recursive: true, force: true });
});

function runMigrate(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "test/db/fixtures/run-migrate.ts", url, dir], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

it("two processes migrating one new database at once apply each migration exactly once", async () => {
  // The real migrations, preceded by one that holds the lock for 2 s so that the two runs surely overlap.
  cpSync(provisioning.migrationsDir, dir, { recursive: true });
  mkdirSync(join(dir, "00000000000000_slow"));
  writeFileSync(join(dir, "00000000000000_slow", "migration.sql"), "-- keeps the first migrator busy\nSELECT SLEEP(2);\n");
  const names = readMigrations(dir).map((m) => m.name);

  const [a, b] = await Promise.all([runMigrate(), runMigrate()]);
  expect(a.code, a.stderr).toBe(0);
  expect(b.code, b.stderr).toBe(0);
  const results = [a, b].map((r) => JSON.parse(r.stdout.trim()) as { applied: string[]; ms: number });
  const winner = results.find((r) => r.applied.length > 0);
  const loser = results.find((r) => r.applied.length === 0);
  expect(winner?.applied).toEqual(names);
  expect(loser, "one of the two must have found nothing to do").toBeDefined();

  const conn = await openConnection(url);
  try {
    const recorded = (await conn.query("SELECT migration_name, COUNT(*) AS n FROM _prisma_migrations GROUP BY migration_name ORDER BY migration_name")) as { migration_name: string; n: bigint }[];
    expect(recorded.map((r) => [r.migration_name, Number(r.n)])).toEqual(names.map((n) => [n, 1]));
    const schema = readFileSync(join(provisioning.migrationsDir, "..", "schema.prisma"), "utf8");
    expect(diffShapes(expectedShape(schema), await actualShape(conn, new URL(url).pathname.slice(1)))).toEqual([]);
  } finally {
    await conn.end();
  }
}, 60_000);
