// Backup and restore stream: with the V8 heap capped at 96 MB, `dispatcher backup` and `dispatcher restore` handle a
// database whose content (400,000 metric samples, about 50 MB of JSON, twice that as JavaScript strings) could not be
// held in that heap, and their peak RSS stays within the cap's reach of an empty database's.
import { readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openConnection } from "../../src/db/connect.js";
import { generateKeyText } from "../../src/km/keys.js";
import { createTestEnv, runDispatcher, type Finished, type TestEnv } from "../support/process.js";

const ROWS = 400_000;
/** The analytics database's other rows: one _prisma_migrations row per migration. */
const MIGRATIONS = readdirSync(new URL("../../prisma/analytics/migrations/", import.meta.url)).filter((name) => /^\d{14}_/.test(name)).length;
const HEAP_MB = 96;
const env = { DISPATCHER_BACKUP_KEY: generateKeyText(1), DISPATCHER_LOGGING_LEVEL: "warn", NODE_OPTIONS: `--max-old-space-size=${HEAP_MB}` };

let src: TestEnv;
let dst: TestEnv;

beforeAll(async () => {
  [src, dst] = await Promise.all([createTestEnv({ label: "bkmemsrc", migrate: true, env }), createTestEnv({ label: "bkmemdst", env })]);
});

afterAll(async () => {
  await Promise.allSettled([src?.cleanup(), dst?.cleanup()]);
});

const peak = (r: Finished): number => Number(/peak memory (\d+\.\d) MB/.exec(r.stderr)?.[1] ?? NaN);

async function backupAndRestore(replace: boolean): Promise<{ backup: Finished; restore: Finished }> {
  const backup = await runDispatcher(["backup", "--analytics"], src.env, 240_000);
  expect(backup.code, backup.stderr).toBe(0);
  const restore = await runDispatcher(["restore", ...(replace ? ["--replace"] : []), backup.stdout.trim()], dst.env, 240_000);
  expect(restore.code, restore.stderr).toBe(0);
  return { backup, restore };
}

describe("backup and restore in bounded memory", () => {
  it(`take and restore ${ROWS.toLocaleString("en-US")} rows under a ${HEAP_MB} MB heap`, async () => {
    const empty = await backupAndRestore(false);
    const conn = await openConnection(src.urls.analytics);
    try {
      await conn.query(
        `INSERT INTO server_metric_samples (server_id, time, cpu_percent, memory_used_bytes, memory_total_bytes, disk_used_bytes, disk_total_bytes, network_in_bytes, network_out_bytes)
         SELECT CONCAT('server-', seq MOD 50), TIMESTAMP('2026-01-01') + INTERVAL seq SECOND, seq / 7, seq * 1000, seq * 2000, seq * 3, seq * 4, seq * 5, seq * 6 FROM seq_1_to_${ROWS}`,
      );
    } finally {
      await conn.end();
    }
    const full = await backupAndRestore(true);
    expect(full.restore.stdout).toMatch(new RegExp(`^analytics\\t\\d+ tables\\t${ROWS + MIGRATIONS} rows$`, "m"));
    for (const step of ["backup", "restore"] as const) {
      const grew = peak(full[step]) - peak(empty[step]);
      console.info(`${step}: peak RSS ${peak(empty[step])} MB empty, ${peak(full[step])} MB with ${ROWS} rows (+${grew.toFixed(1)} MB)`);
      expect(grew, `${step} peak RSS growth`).toBeLessThan(HEAP_MB);
    }
  }, 600_000);
});
