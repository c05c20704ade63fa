// Retention: the monitor purges finished jobs past the configured age in batches, with their events, dead letters,
// effect rows and children, and leaves unfinished and recent jobs alone.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId } from "../../src/db/ids.js";
import { createSqlPool, type Sql, type SqlPool } from "../../src/db/sql.js";
import { createLogger } from "../../src/log.js";
import { restAfter } from "../../src/monitor/loop.js";
import { deleteChildrenStatement, PURGE_IN_CHUNK, purgeFinishedJobs, startRetention } from "../../src/monitor/retention.js";
import { createTestDatabases, type TestDatabases } from "../support/db.js";
import { until } from "../support/poll.js";

let dbs: TestDatabases;
let sql: SqlPool;

beforeAll(async () => {
  dbs = await createTestDatabases("retention");
  sql = createSqlPool(dbs.urls.provisioning, 2);
});

afterAll(async () => {
  await sql?.end();
  await dbs?.drop();
});

type State = "QUEUED" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED";

/**
 * A job in `state` that ended `endedDaysAgo` days ago (null: not ended), with two events, a diagnostic effect row and,
 * if asked, a dead letter.
 */
async function insertJob(db: Sql, state: State, endedDaysAgo: number | null, deadLetter = false, parentId: string | null = null): Promise<string> {
  const id = newId();
  const ended = endedDaysAgo === null ? null : new Date(Date.now() - endedDaysAgo * 86_400_000);
  await db.execute`
    INSERT INTO jobs (id, kind, state, attempt, max_attempts, payload, requested_by, trace_id, created_at, updated_at, ended_at, parent_id)
    VALUES (${id}, 'diagnostic', ${state}, 1, 3, '{}', 'u1', ${"0".repeat(32)}, NOW(3), NOW(3), ${ended}, ${parentId})`;
  await db.execute`INSERT INTO diagnostic_effects (job_id, attempt, created_at) VALUES (${id}, 1, NOW(3))`;
  for (const sequence of [1, 2]) {
    await db.execute`
      INSERT INTO job_events (job_id, sequence, type, to_state, attempt, actor, created_at)
      VALUES (${id}, ${sequence}, 'created', 'QUEUED', 0, 'test', NOW(3))`;
  }
  if (deadLetter) {
    await db.execute`
      INSERT INTO dead_letters (id, job_id, attempt, kind, payload, created_at) VALUES (${newId()}, ${id}, 3, 'diagnostic', '{}', NOW(3))`;
  }
  return id;
}

const COUNTS = {
  jobs: (ids: string[]) => sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM jobs WHERE id IN (${ids})`,
  job_events: (ids: string[]) => sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM job_events WHERE job_id IN (${ids})`,
  dead_letters: (ids: string[]) => sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM dead_letters WHERE job_id IN (${ids})`,
  diagnostic_effects: (ids: string[]) => sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM diagnostic_effects WHERE job_id IN (${ids})`,
};

async function count(table: keyof typeof COUNTS, ids: string[]): Promise<number> {
  return Number((await COUNTS[table](ids))[0]?.n ?? 0);
}

describe("retention of finished jobs", () => {
  it("purges finished jobs older than the age with their events and dead letters, oldest first, a batch at a time", async () => {
    const old = [await insertJob(sql, "SUCCEEDED", 40), await insertJob(sql, "FAILED", 35, true), await insertJob(sql, "CANCELLED", 31)];
    const kept = [await insertJob(sql, "SUCCEEDED", 5), await insertJob(sql, "RUNNING", null), await insertJob(sql, "QUEUED", null)];

    const first = await purgeFinishedJobs(sql, { olderThanMs: 30 * 86_400_000, limit: 2 });
    expect(first).toEqual({ jobs: 2, deadLetters: 1 });
    // Oldest first: the 40- and 35-day-old jobs went in the first batch.
    expect(await count("jobs", old.slice(0, 2))).toBe(0);
    expect(await count("jobs", old.slice(2))).toBe(1);

    const second = await purgeFinishedJobs(sql, { olderThanMs: 30 * 86_400_000, limit: 2 });
    expect(second.jobs).toBe(1);
    expect(await count("jobs", old)).toBe(0);
    expect(await count("job_events", old)).toBe(0);
    expect(await count("dead_letters", old)).toBe(0);
    expect(await count("diagnostic_effects", old)).toBe(0);
    expect(await count("jobs", kept)).toBe(3);
    expect(await count("job_events", kept)).toBe(6);
    expect(await count("diagnostic_effects", kept)).toBe(3);
    expect(await purgeFinishedJobs(sql, { olderThanMs: 30 * 86_400_000, limit: 2 })).toEqual({ jobs: 0, deadLetters: 0 });
  });

  it("the monitor's loop works through every due batch at once and keeps the recent ones", async () => {
    const old = await Promise.all(Array.from({ length: 7 }, () => insertJob(sql, "SUCCEEDED", 3)));
    const recent = await insertJob(sql, "SUCCEEDED", 0.5);
    const loop = startRetention({ sql, log: createLogger({ level: "silent" }), retentionDays: 1, batch: 2, intervalMs: 3_600_000, share: 0.5 });
    try {
      // Batches of 2 with an hour between idle iterations: only "go again after a full batch" (after a rest as long as
      // the batch, at half the time) gets through all 7.
      await until(async () => (await count("jobs", old)) === 0, 10_000, "every old job to be purged");
    } finally {
      await loop.stop(1_000);
    }
    expect(await count("jobs", [recent])).toBe(1);
  });

  it("a backlog's purge rests between full batches so that it works only its share of the time", async () => {
    expect(restAfter(10, 1)).toBe(0);
    expect(restAfter(10, 0.25)).toBe(30);
    expect(restAfter(10, 0.5)).toBe(10);
    const old = await Promise.all(Array.from({ length: 6 }, () => insertJob(sql, "SUCCEEDED", 3)));
    // A share so small that the rest after the first full batch outlasts the test: one batch of 2, then nothing.
    const loop = startRetention({ sql, log: createLogger({ level: "silent" }), retentionDays: 1, batch: 2, intervalMs: 3_600_000, share: 0.0001 });
    try {
      await until(async () => (await count("jobs", old)) === 4, 10_000, "the first batch to be purged");
      await new Promise((r) => setTimeout(r, 500));
      expect(await count("jobs", old)).toBe(4);
    } finally {
      // Stopping cuts the rest short once the grace period for work under way is over.
      const stopping = performance.now();
      await loop.stop(100);
      expect(performance.now() - stopping).toBeLessThan(900);
    }
    await purgeFinishedJobs(sql, { olderThanMs: 86_400_000, limit: 10 });
  });

  it("takes a parent's children, with their events, dead letters and effect rows, along with it", async () => {
    const parent = await insertJob(sql, "SUCCEEDED", 40);
    const children = [await insertJob(sql, "SUCCEEDED", 40, true, parent), await insertJob(sql, "FAILED", 40, false, parent)];
    expect(await purgeFinishedJobs(sql, { olderThanMs: 30 * 86_400_000, limit: 10 })).toEqual({ jobs: 3, deadLetters: 1 });
    for (const table of ["jobs", "job_events", "dead_letters", "diagnostic_effects"] as const) expect(await count(table, [parent, ...children])).toBe(0);
  });

  it("is off with 0 days", async () => {
    const old = await insertJob(sql, "SUCCEEDED", 400);
    const loop = startRetention({ sql, log: createLogger({ level: "silent" }), retentionDays: 0, batch: 10, intervalMs: 10, share: 1 });
    await new Promise((r) => setTimeout(r, 200));
    await loop.stop();
    expect(await count("jobs", [old])).toBe(1);
  });

  it("deletes a batch's children through the parent index, not by reading the table, whatever the batch size", async () => {
    await sql.execute`INSERT INTO jobs (id, kind, state, max_attempts, payload, requested_by, trace_id, created_at, ended_at)
      SELECT CONCAT('00PLAN', LPAD(seq, 20, '0')), 'diagnostic', 'SUCCEEDED', 1, '{}', 'u-plan', LPAD(HEX(seq), 32, '0'),
             NOW(3) - INTERVAL 50 DAY, NOW(3) - INTERVAL 50 DAY FROM seq_1_to_20000`;
    await sql.execute`ANALYZE TABLE jobs`;
    const ids = Array.from({ length: PURGE_IN_CHUNK }, (_, i) => `00PLAN${String(i + 1).padStart(20, "0")}`);
    const plan = await sql.query<{ type: string; key: string | null }>`EXPLAIN ${deleteChildrenStatement(ids)}`;
    expect(plan).toHaveLength(1);
    expect(plan[0]?.key).toBe("jobs_parent_id_held_state_idx");
    // The batch larger than a chunk still purges whole, in chunks, in one transaction.
    const purged = await purgeFinishedJobs(sql, { olderThanMs: 30 * 86_400_000, limit: PURGE_IN_CHUNK * 2 + 7 });
    expect(purged.jobs).toBe(PURGE_IN_CHUNK * 2 + 7);
    await sql.execute`DELETE FROM jobs WHERE id LIKE '00PLAN%'`;
  });
});
