// Fresh, migrated databases for integration tests: dt_<runId>_<label>_<n>_prov and …_anl on the configured server,
// dropped by drop() or, failing that, by test/global-setup.ts at the end of the run.
import { randomBytes } from "node:crypto";
import { inject } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createProvisioningClient, type ProvisioningClient } from "../../src/db/clients.js";
import { openConnection } from "../../src/db/connect.js";
import { DATABASES } from "../../src/db/databases.js";
import { migrate, quoteIdentifier } from "../../src/db/migrate.js";
import { withDatabase } from "../../src/db/url.js";

export interface TestDatabases {
  urls: { provisioning: string; analytics: string };
  provisioning: ProvisioningClient;
  /** Disconnects the clients and drops both databases. */
  drop(): Promise<void>;
}

let counter = 0;

/** A server URL (no password shown anywhere) pointing at `database`, on the server the configuration names. */
export function testDatabaseUrl(database: string): string {
  return withDatabase(loadConfig(process.env, "").provisioning.url, database);
}

/** A database name unique to this run, process and call; at most 64 characters. */
export function newTestDatabaseName(label: string, suffix: string): string {
  const clean = label.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "").slice(0, 30) || "t";
  const n = `${++counter}${randomBytes(2).toString("hex")}`;
  return `dt_${inject("runId")}_${clean}_${n}_${suffix.slice(0, 8)}`;
}

/** Creates and migrates a provisioning and an analytics database for one test file or test. */
export async function createTestDatabases(label: string, poolSize = 4): Promise<TestDatabases> {
  const urls = { provisioning: testDatabaseUrl(newTestDatabaseName(label, "prov")), analytics: testDatabaseUrl(newTestDatabaseName(label, "anl")) };
  const dirs = Object.fromEntries(DATABASES.map((d) => [d.name, d.migrationsDir]));
  await migrate(urls.provisioning, dirs.provisioning as string);
  await migrate(urls.analytics, dirs.analytics as string);
  const provisioning = createProvisioningClient(urls.provisioning, poolSize);
  return {
    urls,
    provisioning,
    async drop() {
      await provisioning.$disconnect();
      await dropDatabases([urls.provisioning, urls.analytics]);
    },
  };
}

/** Drops the databases these URLs name (missing ones are fine). */
export async function dropDatabases(urls: string[]): Promise<void> {
  if (urls.length === 0) return;
  const conn = await openConnection(urls[0] as string, false);
  try {
    for (const url of urls) await conn.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(new URL(url).pathname.slice(1))}`);
  } finally {
    await conn.end();
  }
}
