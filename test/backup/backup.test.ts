// The writer's rules against the real MariaDB, in-process: a new archive per run named by its time with its .sha256
// beside it, the oldest beyond backup.keep deleted; the key must be configured, well formed and none of KM's; a
// database that does not exist is an error, not an empty backup. And fidelity: awkward values (bytes, doubles at
// their limits, integers past 2^53, JSON, Unicode, NULL and empty strings, a blob larger than a chunk) and
// AUTO_INCREMENT counters come back exactly.
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { createBackup, listArchives } from "../../src/backup/backup.js";
import { checkArchive, restoreBackup } from "../../src/backup/restore.js";
import { openConnection } from "../../src/db/connect.js";
import { ConfigError, loadConfig, type Config } from "../../src/config.js";
import { DATABASES } from "../../src/db/databases.js";
import { migrate } from "../../src/db/migrate.js";
import { generateKeyText } from "../../src/km/keys.js";
import { dropDatabases, newTestDatabaseName, testDatabaseUrl } from "../support/db.js";

const dir = mkdtempSync(join(tmpdir(), "backup-writer-"));
const urls = { provisioning: "", analytics: "", credentials: "" };
const KEY = generateKeyText(1);
let config: Config;

const configWith = (env: Record<string, string>): Config =>
  loadConfig(
    {
      DISPATCHER_DATA_DIR: dir,
      DISPATCHER_PROVISIONING_URL: urls.provisioning,
      DISPATCHER_ANALYTICS_URL: urls.analytics,
      DISPATCHER_KM_DATABASE_URL: urls.credentials,
      DISPATCHER_BACKUP_KEY: KEY,
      ...env,
    },
    "",
  );

beforeAll(async () => {
  for (const d of DATABASES) {
    urls[d.name] = testDatabaseUrl(newTestDatabaseName("bkw", d.name));
    await migrate(urls[d.name], d.migrationsDir);
  }
  config = configWith({ DISPATCHER_BACKUP_KEEP: "2" });
});

afterAll(async () => {
  await dropDatabases(Object.values(urls));
  rmSync(dir, { recursive: true, force: true });
});

describe("createBackup", () => {
  it("writes a new owner-only archive per run with its sha256 beside it, and keeps the newest backup.keep", async () => {
    const made: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await createBackup(config, { now: new Date(Date.UTC(2026, 11, 4, 10, 0, i)) });
      made.push(r.path);
      expect(r.path).toBe(join(dir, "backups", `dispatcher-backup-20261204T10000${i}000Z.dbk`));
      expect(readFileSync(`${r.path}.sha256`, "utf8")).toBe(`${createHash("sha256").update(readFileSync(r.path)).digest("hex")}  dispatcher-backup-20261204T10000${i}000Z.dbk\n`);
      expect(r.deleted).toEqual(i < 2 ? [] : [made[0]]);
      expect(r.manifest.databases.map((d) => d.name)).toEqual(["provisioning", "credentials"]);
    }
    expect(listArchives(join(dir, "backups"))).toEqual([made[2], made[1]]);
    expect(readdirSync(join(dir, "backups")).sort()).toEqual([made[1], `${made[1]}.sha256`, made[2], `${made[2]}.sha256`].map((p) => (p as string).split("/").pop()).sort());
    const { statSync } = await import("node:fs");
    expect(statSync(made[2] as string).mode & 0o777).toBe(0o600);
    // What it wrote reads back, manifest included.
    const { manifest } = await checkArchive(config, made[2] as string);
    expect(manifest.databases[0]?.migrations.map((m) => m.name)).toEqual(readdirSync(DATABASES[0]?.migrationsDir as string).filter((n) => /^\d/.test(n)).sort());
  });

  it("with --output writes that file and deletes nothing; --analytics adds the analytics database", async () => {
    const before = listArchives(join(dir, "backups"));
    const output = join(dir, "elsewhere", "one.dbk");
    const r = await createBackup(configWith({ DISPATCHER_BACKUP_KEEP: "1" }), { output, analytics: true });
    expect(r.path).toBe(output);
    expect(r.deleted).toEqual([]);
    expect(listArchives(join(dir, "backups"))).toEqual(before);
    expect(r.manifest.databases.map((d) => d.name)).toEqual(["provisioning", "credentials", "analytics"]);
  });

  it("refuses to run without a key, with a malformed one, or with one of KM's keys", async () => {
    await expect(createBackup(configWith({ DISPATCHER_BACKUP_KEY: "" }))).rejects.toThrow(/backup\.key is not set: .*dispatcher backup generate-key/);
    await expect(createBackup(configWith({ DISPATCHER_BACKUP_KEY: "1:c2hvcnQ=" }))).rejects.toThrow(ConfigError);
    const kmKey = generateKeyText(3);
    const err = await createBackup(configWith({ DISPATCHER_BACKUP_KEY: `1:${kmKey.slice(2)}`, DISPATCHER_ENCRYPTION_MASTER_KEYS: `2:${generateKeyText(1).slice(2)},${kmKey}` })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(String(err)).toMatch(/backup\.key version 1 equals encryption\.masterKeys version 3: a backup key must be a key of its own/);
    expect(String(err)).not.toContain(kmKey.slice(2));
    // The development master key file counts too.
    const devKey = generateKeyText(1);
    const { mkdirSync } = await import("node:fs");
    mkdirSync(join(dir, "km"), { recursive: true });
    writeFileSync(join(dir, "km", "master-keys"), `${devKey}\n`);
    await expect(createBackup(configWith({ DISPATCHER_BACKUP_KEY: devKey }))).rejects.toThrow(/equals encryption\.masterKeys version 1/);
    rmSync(join(dir, "km"), { recursive: true, force: true });
  });

  it("refuses a database that does not exist instead of writing an archive without it, and leaves no file behind", async () => {
    const missing = testDatabaseUrl(newTestDatabaseName("bkw", "missing"));
    const output = join(dir, "missing.dbk");
    await expect(createBackup(configWith({ DISPATCHER_KM_DATABASE_URL: missing }), { output })).rejects.toThrow(/the credentials database "dt_\w+" does not exist at mysql:\/\/root@127\.0\.0\.1:3306\/dt_\w+: nothing to back up/);
    expect(existsSync(output)).toBe(false);
    expect(existsSync(`${output}.partial`)).toBe(false);
  });
});

describe("a restore", () => {
  it("brings back every value exactly, and each table's AUTO_INCREMENT counter", async () => {
    const blob = randomBytes(300_000);
    const conn = await openConnection(urls.provisioning, false);
    const [prov, anl, cred] = [urls.provisioning, urls.analytics, urls.credentials].map((u) => new URL(u).pathname.slice(1));
    try {
      await conn.query("SET SESSION foreign_key_checks = 0, time_zone = '+00:00'");
      await conn.query(`INSERT INTO ${cred}.credentials (id, account_id, type, labels, key_version, wrapped_key, ciphertext, created_by) VALUES (?, 'acc', 't', ?, 1, ?, ?, 'me'), (?, 'acc', 't', '{}', 1, NULL, ?, 'me')`, [
        "01JDQ3Z5K8W8G4QF2Q6N2D7M9A",
        JSON.stringify({ team: "Zürich ☃ \"q\" \\ \n", n: 1.5 }),
        Buffer.from([0, 1, 2, 0xff, 0x0a, 0x5c, 0x27]),
        blob,
        "01JDQ3Z5K8W8G4QF2Q6N2D7M9B",
        Buffer.alloc(0),
      ]);
      await conn.query(`INSERT INTO ${anl}.server_metric_samples (server_id, time, cpu_percent, memory_used_bytes, memory_total_bytes) VALUES ('s', '2026-01-01 00:00:00.001', 0.30000000000000004, 9007199254740993, NULL), ('s', '2026-01-01 00:00:00.002', 1.7976931348623157e308, -9223372036854775808, 9223372036854775807), ('s', '2026-01-01 00:00:00.003', 5e-324, 0, 0)`);
      for (let i = 1; i <= 5; i++) {
        await conn.query(`INSERT INTO ${prov}.server_events (server_id, type, message, details) VALUES ('01JDQ3Z5K8W8G4QF2Q6N2D7M9C', 'x', ?, ?)`, [i === 2 ? "" : "ünïcode 𝄞", i === 3 ? null : JSON.stringify({ i })]);
      }
      // The newest events deleted: the counter stays past them, and so must the restored one.
      await conn.query(`DELETE FROM ${prov}.server_events WHERE id >= 4`);
    } finally {
      await conn.end();
    }
    const r = await createBackup(config, { analytics: true, output: join(dir, "fidelity.dbk") });
    const targets = Object.fromEntries(DATABASES.map((d) => [d.name, testDatabaseUrl(newTestDatabaseName("bkr", d.name))])) as typeof urls;
    try {
      const restored = await restoreBackup(configWith({ DISPATCHER_PROVISIONING_URL: targets.provisioning, DISPATCHER_ANALYTICS_URL: targets.analytics, DISPATCHER_KM_DATABASE_URL: targets.credentials }), r.path);
      expect(restored.databases.map((d) => d.name)).toEqual(["provisioning", "credentials", "analytics"]);
      const read = async (url: string, sql: string): Promise<unknown[]> => {
        const c = await openConnection(url);
        try {
          return (await c.query({ sql, bigIntAsNumber: false, decimalAsNumber: false, dateStrings: true })) as unknown[];
        } finally {
          await c.end();
        }
      };
      const same = async (key: keyof typeof urls, sql: string): Promise<void> => {
        const [a, b] = [await read(urls[key], sql), await read(targets[key], sql)];
        expect(a.length, sql).toBeGreaterThan(0);
        expect(b, sql).toEqual(a);
      };
      await same("credentials", "SELECT id, labels, wrapped_key, ciphertext, deleted_at FROM credentials ORDER BY id");
      await same("analytics", "SELECT time, cpu_percent, memory_used_bytes, memory_total_bytes FROM server_metric_samples ORDER BY time");
      await same("provisioning", "SELECT id, message, details FROM server_events ORDER BY id");
      const counter = "SELECT AUTO_INCREMENT AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'server_events'";
      expect(await read(targets.provisioning, counter)).toEqual(await read(urls.provisioning, counter));
      expect(await read(targets.provisioning, counter)).toEqual([{ n: 6n }]);
    } finally {
      await dropDatabases(Object.values(targets));
    }
  });
});
