// Hourly detail past analytics.hourlyRetentionDays: hourly roll-ups and accrual hours older than the horizon go in
// batches, never a day the next roll-up re-reads, an hour not summed into cost_days or one of the current month;
// daily roll-ups and cost_days stay, reports over whole days give the same rows as before, and a report whose edges
// fall among deleted hours is refused rather than summed short. The monitor's loop does it on its own.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACCRUAL_TASK, COST_DAYS_TASK, writeAccruals, type AccrualRow } from "../../src/analytics/accrual.js";
import { rollUpCostDays, usageSums } from "../../src/analytics/cost-days.js";
import { rollUpCostHours } from "../../src/analytics/cost-hours.js";
import { ingestSamples } from "../../src/analytics/metrics.js";
import { HOURS_PRUNED_FROM_TASK, HOURS_PRUNED_TASK, pruneCostHours, pruneHourlyRollups, type PruneResult } from "../../src/analytics/retention.js";
import { HOURLY_TASK, readProgress, saveProgress } from "../../src/analytics/rollup.js";
import { startAnalyticsTasks } from "../../src/analytics/tasks.js";
import { loadConfig } from "../../src/config.js";
import { sqlFragment, sqlJoin, type SqlFragment } from "../../src/db/sql.js";
import { FailedPreconditionError } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import { until } from "../support/poll.js";
import { HOUR, openAnalyticsFixture, type AnalyticsFixture } from "./support.js";

const at = (month: number, day: number, hour = 0, minute = 0): Date => new Date(Date.UTC(2027, month - 1, day, hour, minute));
const NOW = at(6, 20, 12, 30);
const MARK = at(6, 20, 12); // the accrual mark: days before June 20 are final
const FIRST = at(2, 25);
const SERVERS = 4;

let f: AnalyticsFixture;
beforeAll(async () => {
  f = await openAnalyticsFixture("anl_retention");
  const accruals: AccrualRow[] = [];
  const rollups: SqlFragment[] = [];
  for (let h = FIRST.getTime(); h < MARK.getTime(); h += HOUR) {
    for (let s = 0; s < SERVERS; s++) {
      const amount = BigInt(500 + s * 7 + ((h / HOUR) % 3));
      accruals.push({ serverId: `srv-${s}`, periodStart: new Date(h), accountId: `acc-${s % 2}`, budgetCode: s === 3 ? "B" : "A", hourlyPriceMicros: amount, accruingMs: HOUR, amountMicros: amount });
    }
    rollups.push(sqlFragment`(${"srv-0"}, 'HOUR', 'cpu_percent', ${new Date(h)}, 1, 50, 50, 50, 50, NOW(3))`);
    if (h % (24 * HOUR) === 0) rollups.push(sqlFragment`(${"srv-0"}, 'DAY', 'cpu_percent', ${new Date(h)}, 24, 1200, 50, 50, 50, NOW(3))`);
  }
  await writeAccruals(f.analytics, accruals);
  for (let i = 0; i < rollups.length; i += 1_000) {
    await f.analytics.execute`
      INSERT INTO server_metric_rollups (server_id, resolution, metric, bucket_start, count, sum, min, max, avg, updated_at)
      VALUES ${sqlJoin(rollups.slice(i, i + 1_000), ", ")}`;
  }
  await saveProgress(f.analytics, ACCRUAL_TASK, MARK);
  while ((await rollUpCostDays(f.analytics, NOW)).more);
  await rollUpCostHours(f.analytics, at(4, 15)); // April's hours summed per account and code: a past month's rows
  await rollUpCostHours(f.analytics, NOW);
}, 60_000);
afterAll(() => f?.close());

const one = async <T>(rows: Promise<Record<string, T>[]>): Promise<T | undefined> => Object.values((await rows)[0] ?? {})[0];
const oldestHourly = async () => (await one(f.analytics.query<{ t: Date }>`SELECT MIN(bucket_start) AS t FROM server_metric_rollups WHERE resolution = 'HOUR'`)) ?? null;
const oldestDaily = async () => (await one(f.analytics.query<{ t: Date }>`SELECT MIN(bucket_start) AS t FROM server_metric_rollups WHERE resolution = 'DAY'`)) ?? null;
const oldestAccrual = async () => (await one(f.analytics.query<{ t: Date }>`SELECT MIN(period_start) AS t FROM cost_accruals`)) ?? null;
const oldestSample = async () => (await one(f.analytics.query<{ t: Date }>`SELECT MIN(time) AS t FROM server_metric_samples`)) ?? null;
const oldestCostHour = async () => (await one(f.analytics.query<{ t: Date }>`SELECT MIN(period_start) AS t FROM cost_hours`)) ?? null;
const rollupRows = async (resolution: string) => Number(await one(f.analytics.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM server_metric_rollups WHERE resolution = ${resolution}`));
const costDayRows = async () => Number(await one(f.analytics.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM cost_days`));

/** Runs `prune` until a pass comes back short, as the monitor's loop does (resting between passes). */
async function drain(prune: () => Promise<PruneResult>): Promise<{ deleted: number; passes: number }> {
  let deleted = 0;
  let passes = 0;
  for (let more = true; more; passes++) {
    const r = await prune();
    deleted += r.deleted;
    more = r.more;
  }
  return { deleted, passes };
}
type Key = "budget_code" | "account_id" | "server_id";
const KEYS: Record<Key, SqlFragment> = { budget_code: sqlFragment`budget_code`, account_id: sqlFragment`account_id`, server_id: sqlFragment`server_id` };
const report = (key: Key, start: Date, end: Date) => usageSums(f.analytics, { key: KEYS[key], where: [sqlFragment`1 = 1`], start, end });

describe("hourly metric roll-ups", () => {
  it("are all kept with a retention of 0 days", async () => {
    await saveProgress(f.analytics, HOURLY_TASK, at(6, 20, 12));
    expect(await pruneHourlyRollups(f.analytics, NOW, 0, 500)).toEqual({ deleted: 0, more: false });
    expect(await oldestHourly()).toEqual(FIRST);
  });

  it("never go for a day the next roll-up run re-reads, however short the retention", async () => {
    await f.analytics.execute`UPDATE analytics_progress SET done_to = ${at(4, 10, 0, 30)} WHERE task = ${HOURLY_TASK}`;
    await drain(() => pruneHourlyRollups(f.analytics, NOW, 1, 500));
    // The next run re-rolls from 23:30 on April 9, and April 9's day again from its hours: they stay.
    expect(await oldestHourly()).toEqual(at(4, 9));
    await saveProgress(f.analytics, HOURLY_TASK, at(6, 20, 12));
  });

  it("go in batches once older than the retention; the daily ones stay", async () => {
    const days = await rollupRows("DAY");
    const kept = Number(await one(f.analytics.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM server_metric_rollups WHERE resolution = 'HOUR' AND bucket_start >= ${at(5, 11)}`));
    const { passes } = await drain(() => pruneHourlyRollups(f.analytics, NOW, 40, 200, 2));
    expect(passes).toBeGreaterThan(1); // April 9 to May 11: 768 hours, 400 a pass
    expect(await oldestHourly()).toEqual(at(5, 11));
    expect(await rollupRows("HOUR")).toBe(kept);
    expect(await rollupRows("DAY")).toBe(days);
    expect(await oldestDaily()).toEqual(FIRST);
  });

  it("go a hundred servers a statement at most, until no server has any left", async () => {
    const rows: SqlFragment[] = [];
    for (let s = 0; s < 250; s++) {
      for (const metric of ["cpu_percent", "disk_used_bytes"]) {
        for (const t of [at(4, 1, 1), at(4, 1, 2), at(4, 2, 7), at(6, 1, 5)]) rows.push(sqlFragment`(${`fleet-${s}`}, 'HOUR', ${metric}, ${t}, 1, 5, 5, 5, 5, NOW(3))`);
      }
    }
    await f.analytics.execute`
      INSERT INTO server_metric_rollups (server_id, resolution, metric, bucket_start, count, sum, min, max, avg, updated_at) VALUES ${sqlJoin(rows, ", ")}`;
    await saveProgress(f.analytics, HOURLY_TASK, at(6, 20, 12));
    const { deleted, passes } = await drain(() => pruneHourlyRollups(f.analytics, NOW, 40, 200, 3));
    expect(deleted).toBe(250 * 2 * 3);
    expect(passes).toBeGreaterThan(1);
    const left = await f.analytics.query<{ server_id: string; bucket_start: Date }>`
      SELECT server_id, bucket_start FROM server_metric_rollups WHERE server_id LIKE 'fleet-%' ORDER BY server_id, bucket_start`;
    expect(left).toHaveLength(250 * 2);
    expect(left.every((r) => r.bucket_start.getTime() === at(6, 1, 5).getTime())).toBe(true);
    await f.analytics.execute`DELETE FROM server_metric_rollups WHERE server_id LIKE 'fleet-%'`;
  });

  it("stop a pass at expired rows their statement cannot reach, rather than finding them again and again", async () => {
    await saveProgress(f.analytics, HOURLY_TASK, at(6, 20, 12));
    await f.analytics.execute`
      INSERT INTO server_metric_rollups (server_id, resolution, metric, bucket_start, count, sum, min, max, avg, updated_at)
      VALUES ('srv-9', 'HOUR', 'retired_metric', ${at(3, 1)}, 1, 1, 1, 1, 1, NOW(3))`;
    expect(await pruneHourlyRollups(f.analytics, NOW, 40, 200, 50)).toMatchObject({ more: false });
    expect(await f.analytics.execute`DELETE FROM server_metric_rollups WHERE metric = 'retired_metric'`).toBe(1);
  });
});

describe("accrual hours", () => {
  const WHOLE_DAYS: [Key, Date, Date][] = [
    ["server_id", at(3, 1), at(6, 1)],
    ["budget_code", at(3, 3), at(4, 17)],
    ["account_id", FIRST, at(6, 20, 12)], // ends past the summed days: June 20's hours are kept
  ];

  it("are all kept with a retention of 0 days", async () => {
    expect(await pruneCostHours(f.analytics, NOW, 0, 500)).toEqual({ deleted: 0, more: false });
    expect(await readProgress(f.analytics, HOURS_PRUNED_TASK)).toBeNull();
    expect(await oldestAccrual()).toEqual(FIRST);
  });

  it("leave no mark while none has expired, so reports with edges anywhere are read", async () => {
    // 200 days: the horizon (December 2, 2026) is before the first hour.
    expect(await pruneCostHours(f.analytics, NOW, 200, 500)).toEqual({ deleted: 0, more: false });
    expect(await readProgress(f.analytics, HOURS_PRUNED_TASK)).toBeNull();
    const [row] = await report("server_id", at(1, 10, 6), at(3, 1, 18));
    expect(row).toMatchObject({ key: "srv-0", accruingMs: (4 * 24 + 18) * HOUR });
  });

  it("go in batches once older than the retention; whole days report the same rows, edges among them are refused", async () => {
    const before = await Promise.all(WHOLE_DAYS.map(([key, start, end]) => report(key, start, end)));
    expect(before.every((rows) => rows.length > 0)).toBe(true);
    const days = await costDayRows();

    const { passes } = await drain(() => pruneCostHours(f.analytics, NOW, 40, 1_000, 3));
    expect(passes).toBeGreaterThan(1); // February 25 to May 11: 7,200 rows, 3,000 a pass
    expect(await readProgress(f.analytics, HOURS_PRUNED_TASK)).toEqual(at(5, 11));
    expect(await oldestAccrual()).toEqual(at(5, 11));
    // April's sums per account and code go too; June's, which budget usage reads, stay.
    expect(await oldestCostHour()).toEqual(at(6, 1));
    expect(await costDayRows()).toBe(days);

    expect(await Promise.all(WHOLE_DAYS.map(([key, start, end]) => report(key, start, end)))).toEqual(before);
    for (const [start, end] of [
      [at(3, 1, 6), at(6, 1)], // starts inside a day whose hours are gone
      [at(3, 1), at(4, 2, 18)], // ends inside one
      [at(4, 2, 6), at(4, 2, 18)], // within one
    ] as const) {
      const refused = await report("server_id", start, end).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(FailedPreconditionError);
      expect(refused).toMatchObject({ reason: "HOURLY_COSTS_EXPIRED", message: expect.stringContaining("2027-05-11T00:00:00.000Z") });
    }
    // Edges among the hours kept are read as before: 18 + 24 + 18 hours of acc-0's two servers.
    const [edges] = await report("account_id", at(5, 25, 6), at(5, 27, 18));
    expect(edges).toMatchObject({ key: "acc-0", servers: 2, accruingMs: 60 * HOUR * 2 });
    // So are edges before the first hour there ever was (February 25): nothing is missing there.
    expect(await readProgress(f.analytics, HOURS_PRUNED_FROM_TASK)).toEqual(FIRST);
    const [early] = await report("server_id", at(1, 10, 6), at(3, 1));
    expect(early).toMatchObject({ key: "srv-0", accruingMs: 4 * 24 * HOUR });
  });

  it("take a mark with no start (an earlier release's) to cover every hour before it", async () => {
    await f.analytics.execute`DELETE FROM analytics_progress WHERE task = ${HOURS_PRUNED_FROM_TASK}`;
    await expect(report("server_id", at(1, 10, 6), at(3, 1))).rejects.toMatchObject({ reason: "HOURLY_COSTS_EXPIRED" });
    // The next deletes keep it so: a day more expires, and the start recorded is the earliest there can be.
    await drain(() => pruneCostHours(f.analytics, NOW, 39, 5_000));
    expect(await oldestAccrual()).toEqual(at(5, 12));
    expect(await readProgress(f.analytics, HOURS_PRUNED_FROM_TASK)).toEqual(new Date(0));
    expect(await readProgress(f.analytics, HOURS_PRUNED_TASK)).toEqual(at(5, 12));
    await expect(report("server_id", at(1, 10, 6), at(3, 1))).rejects.toMatchObject({ reason: "HOURLY_COSTS_EXPIRED" });
  });
});

describe("the monitor", () => {
  it("prunes raw samples and expired hourly detail in a loop of its own", async () => {
    // Raw samples are kept 7 days by default: June 1's go, June 19's stay.
    await ingestSamples(f.analytics, [at(6, 1, 3), at(6, 1, 4), at(6, 19, 3)].map((time) => ({ serverId: "srv-raw", time, cpuPercent: 1, memoryUsedBytes: 1 })));
    const config = loadConfig({ DISPATCHER_ANALYTICS_HOURLY_RETENTION_DAYS: "20", DISPATCHER_ANALYTICS_ROLLUP_INTERVAL_MS: "3600000" }, "");
    expect(config.analytics.hourlyRetentionDays).toBe(20);
    const tasks = startAnalyticsTasks({ config, log: createLogger({ level: "silent" }), sql: f.sql, analytics: f.analytics, now: () => NOW });
    try {
      await until(async () => (await oldestAccrual())?.getTime() === at(5, 31).getTime(), 20_000, "accrual hours before May 31 pruned");
      await until(async () => (await oldestHourly())?.getTime() === at(5, 31).getTime(), 20_000, "hourly roll-ups before May 31 pruned");
      await until(async () => (await oldestSample())?.getTime() === at(6, 19, 3).getTime(), 20_000, "raw samples before June 13 pruned");
    } finally {
      await tasks.stop();
    }
  });

  it("never prunes accrual hours of the current month, nor any not summed into days", async () => {
    // June 20: the retention's horizon (June 19) is in the current month, which stays whole.
    await drain(() => pruneCostHours(f.analytics, NOW, 1, 5_000));
    expect(await oldestAccrual()).toEqual(at(6, 1));
    // July 20: days are summed only up to June 20.
    await drain(() => pruneCostHours(f.analytics, at(7, 20, 12, 30), 1, 5_000));
    expect(await oldestAccrual()).toEqual(at(6, 20));
    expect(await readProgress(f.analytics, COST_DAYS_TASK)).toEqual(at(6, 20));
  });

  it("refuses a retention that is not a whole number of days", () => {
    expect(() => loadConfig({ DISPATCHER_ANALYTICS_HOURLY_RETENTION_DAYS: "1.5" }, "")).toThrow(/hourlyRetentionDays/);
  });
});
