// Usage reports from final days summed once per server (cost_days) and the hours at a period's edges: the same rows as
// summing every server's hours over the period, whatever its edges, grouping and filters; the days summed a week per
// pass from the oldest accrual; and a rebuild's accrual runs reopening what they rewrite before any roll-up sees it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACCRUAL_TASK, COST_DAYS_TASK, COST_HOURS_TASK, runAccrual, writeAccruals, type AccrualRow } from "../../src/analytics/accrual.js";
import { rollUpCostDays, usageSums, type UsageSum } from "../../src/analytics/cost-days.js";
import { monthCost, rollUpCostHours } from "../../src/analytics/cost-hours.js";
import { createAnalyticsSql } from "../../src/analytics/db.js";
import { advanceProgress, readProgress, saveProgress } from "../../src/analytics/rollup.js";
import { sqlFragment, sqlJoin, type SqlFragment } from "../../src/db/sql.js";
import { HOUR, openAnalyticsFixture, rowsReadBy, type AnalyticsFixture } from "./support.js";

const NOW = new Date(Date.UTC(2027, 5, 20, 12, 30)); // June 20, 2027, 12:30
const MARK = new Date(Date.UTC(2027, 5, 20, 12)); // hours before 10:00 are final: days before June 20
const DAY = 24 * HOUR;
const at = (month: number, day: number, hour = 0, minute = 0): Date => new Date(Date.UTC(2027, month - 1, day, hour, minute));
const SERVERS = 12;
const ACCOUNTS = ["acc-1", "acc-2", "acc-3"];
/** srv-5 moves from code B to code C at noon on June 10; srv-11 exists from May 28 15:00 to June 12 09:00. */
const MOVED = at(6, 10, 12);

let f: AnalyticsFixture;
beforeAll(async () => {
  f = await openAnalyticsFixture("anl_cost_days");
  const rows: AccrualRow[] = [];
  for (let h = at(5, 20).getTime(); h < MARK.getTime(); h += HOUR) {
    for (let s = 0; s < SERVERS; s++) {
      if (s === 11 && (h < at(5, 28, 15).getTime() || h >= at(6, 12, 9).getTime())) continue;
      const code = s === 5 && h >= MOVED.getTime() ? "C" : s % 2 === 0 ? "A" : "B";
      const amount = BigInt(1_000 + s * 10 + ((h / HOUR) % 5));
      rows.push({ serverId: `srv-${s}`, periodStart: new Date(h), accountId: ACCOUNTS[s % 3] as string, budgetCode: code, hourlyPriceMicros: amount, accruingMs: s === 3 ? HOUR / 2 : HOUR, amountMicros: amount });
    }
  }
  await writeAccruals(f.analytics, rows);
});
afterAll(() => f?.close());

type Key = "budget_code" | "account_id" | "server_id";
const KEYS: Record<Key, SqlFragment> = { budget_code: sqlFragment`budget_code`, account_id: sqlFragment`account_id`, server_id: sqlFragment`server_id` };
interface Report {
  key: Key;
  start: Date;
  end: Date;
  where?: SqlFragment[];
}

/** What ReportUsage read before cost_days: every server's hours of the period. */
async function direct(r: Report): Promise<UsageSum[]> {
  const conditions = [...(r.where ?? []), sqlFragment`period_start >= ${r.start}`, sqlFragment`period_start < ${r.end}`];
  const rows = await f.analytics.query<{ k: string; micros: string; ms: string; servers: bigint }>`
    SELECT ${KEYS[r.key]} AS k, SUM(amount_micros) AS micros, SUM(accruing_ms) AS ms, COUNT(DISTINCT server_id) AS servers
      FROM cost_accruals WHERE ${sqlJoin(conditions, " AND ")} GROUP BY k ORDER BY k`;
  return rows.map((x) => ({ key: x.k, micros: BigInt(x.micros), accruingMs: Number(x.ms), servers: Number(x.servers) }));
}

const report = (r: Report, sql = f.analytics) => usageSums(sql, { key: KEYS[r.key], where: r.where ?? [sqlFragment`1 = 1`], start: r.start, end: r.end });

/** Periods with whole days, edges inside days, one day, part of a day, and none at all. */
const PERIODS: [string, Date, Date][] = [
  ["June so far", at(6, 1), at(7, 1)],
  ["edges inside days", at(5, 28, 13, 30), at(6, 15, 5)],
  ["one whole day", at(6, 10), at(6, 11)],
  ["part of one day", at(6, 10, 6), at(6, 10, 18)],
  ["everything, past the summed days", at(5, 1), at(6, 20, 12)],
  ["nothing accrued", at(4, 1), at(4, 20)],
];
const FILTERS: [string, SqlFragment[] | undefined][] = [
  ["every account", undefined],
  ["one account", [sqlFragment`account_id = ${"acc-3"}`]],
  ["accounts in scope and a code", [sqlFragment`account_id IN (${["acc-1", "acc-3"]})`, sqlFragment`budget_code = ${"A"}`]],
];

async function expectSameAsEveryHour(): Promise<void> {
  for (const [, start, end] of PERIODS) {
    for (const key of ["budget_code", "account_id", "server_id"] as const) {
      for (const [, where] of FILTERS) {
        const r: Report = { key, start, end, where };
        expect({ key, start, end, where: where?.length, rows: await report(r) }).toEqual({ key, start, end, where: where?.length, rows: await direct(r) });
      }
    }
  }
}

const dayRows = async (): Promise<number> => Number((await f.analytics.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM cost_days`)[0]?.n);

describe("usage reports from final days", () => {
  it("read every server's hours until a day is summed", async () => {
    expect(await rollUpCostDays(f.analytics, NOW)).toEqual({ days: 7, more: true }); // no accrual mark: days before June are final
    await f.analytics.execute`DELETE FROM cost_days`;
    await f.analytics.execute`DELETE FROM analytics_progress WHERE task = ${COST_DAYS_TASK}`;
    await expectSameAsEveryHour();
  });

  it("sum the final days a week per pass from the oldest accrual, then read whole days once per server", async () => {
    await saveProgress(f.analytics, ACCRUAL_TASK, MARK);
    const passes: { days: number; more: boolean }[] = [];
    for (let more = true; more; ) {
      const pass = await rollUpCostDays(f.analytics, NOW);
      passes.push(pass);
      more = pass.more;
    }
    // May 20 to June 19: 31 final days in five passes; June 20 is still open (its hours from 10:00 may be rewritten).
    expect(passes).toEqual([7, 7, 7, 7, 3].map((days, i) => ({ days, more: i < 4 })));
    expect(await readProgress(f.analytics, COST_DAYS_TASK)).toEqual(at(6, 20));
    expect(await rollUpCostDays(f.analytics, NOW)).toEqual({ days: 0, more: false });
    // srv-5 has two rows on June 10 (codes B and C).
    const moved = await f.analytics.query<{ budget_code: string; amount_micros: bigint }>`SELECT budget_code, amount_micros FROM cost_days WHERE server_id = 'srv-5' AND day = ${at(6, 10)} ORDER BY budget_code`;
    expect(moved.map((m) => m.budget_code)).toEqual(["B", "C"]);
    await expectSameAsEveryHour();

    const one = createAnalyticsSql(f.dbs.urls.analytics, 1);
    try {
      const june: Report = { key: "account_id", start: at(6, 1), end: at(7, 1) };
      const read = await rowsReadBy(one, () => report(june, one));
      // 19 summed days × 12 servers (+1 for srv-5's second code) plus 12.5 hours × 11 servers; every hour would be ~5,400.
      expect(read).toBeLessThan(1_000);
    } finally {
      await one.end();
    }
  });

  it("moves a day's progress only from where a pass found it", async () => {
    expect(await advanceProgress(f.analytics, COST_DAYS_TASK, at(6, 1), at(6, 2))).toBe(false);
    expect(await advanceProgress(f.analytics, COST_DAYS_TASK, null, at(6, 2))).toBe(false);
    expect(await readProgress(f.analytics, COST_DAYS_TASK)).toEqual(at(6, 20));
    expect(await advanceProgress(f.analytics, "test.task", null, at(6, 2))).toBe(true);
    expect(await advanceProgress(f.analytics, "test.task", at(6, 2), at(6, 3))).toBe(true);
    expect(await readProgress(f.analytics, "test.task")).toEqual(at(6, 3));
  });

  it("reopen what a rebuild's accrual runs rewrite, before any roll-up pass sees the mark moved back", async () => {
    await rollUpCostHours(f.analytics, NOW);
    expect(await readProgress(f.analytics, COST_HOURS_TASK)).toEqual(at(6, 20, 10));
    // A rebuild clears the mark; its runs go from June 1 to the present, 48 hours each, with no roll-up in between.
    await f.analytics.execute`DELETE FROM analytics_progress WHERE task = ${ACCRUAL_TASK}`;
    let run = await runAccrual(f.sql, f.analytics, NOW);
    expect(run.from).toEqual(at(6, 1));
    expect(await readProgress(f.analytics, COST_DAYS_TASK)).toEqual(at(6, 1));
    expect(await readProgress(f.analytics, COST_HOURS_TASK)).toEqual(at(6, 1));
    // What the rebuild rewrites (here by hand: this database has no servers): June 3's hours move srv-0 to code B.
    await f.analytics.execute`UPDATE cost_accruals SET budget_code = 'B', amount_micros = amount_micros + 7 WHERE server_id = 'srv-0' AND period_start >= ${at(6, 3)} AND period_start < ${at(6, 4)}`;
    while (run.more) run = await runAccrual(f.sql, f.analytics, NOW);
    expect(await readProgress(f.analytics, ACCRUAL_TASK)).toEqual(at(6, 20, 12));

    await expectSameAsEveryHour(); // before the roll-ups catch up: June read from the hours
    for (let more = true; more; ) more = (await rollUpCostDays(f.analytics, NOW)).more;
    await rollUpCostHours(f.analytics, NOW);
    await expectSameAsEveryHour();
    const june3 = await f.analytics.query<{ budget_code: string }>`SELECT budget_code FROM cost_days WHERE server_id = 'srv-0' AND day = ${at(6, 3)}`;
    expect(june3.map((r) => r.budget_code)).toEqual(["B"]);
    // The month's cost by code (budget usage) agrees with the rewritten hours too.
    const byCode = await f.analytics.query<{ k: string; micros: string }>`
      SELECT budget_code AS k, SUM(amount_micros) AS micros FROM cost_accruals WHERE period_start >= ${at(6, 1)} AND period_start < ${at(7, 1)} GROUP BY k`;
    expect(await monthCost(f.analytics, NOW, { by: "budget_code" })).toEqual(new Map(byCode.map((r) => [r.k, BigInt(r.micros)])));
    expect(await dayRows()).toBeGreaterThan(0);
  });

  it("start from the oldest accrual again when its progress is gone, and from nothing when there are no accruals", async () => {
    await f.analytics.execute`DELETE FROM analytics_progress WHERE task = ${COST_DAYS_TASK}`;
    expect(await rollUpCostDays(f.analytics, NOW, 2)).toEqual({ days: 2, more: true });
    expect(await readProgress(f.analytics, COST_DAYS_TASK)).toEqual(new Date(at(5, 20).getTime() + 2 * DAY));
    const empty = await openAnalyticsFixture("anl_cost_days_empty");
    try {
      await saveProgress(empty.analytics, ACCRUAL_TASK, MARK);
      expect(await rollUpCostDays(empty.analytics, NOW)).toEqual({ days: 0, more: false });
      expect(await usageSums(empty.analytics, { key: sqlFragment`budget_code`, where: [sqlFragment`1 = 1`], start: at(6, 1), end: at(7, 1) })).toEqual([]);
    } finally {
      await empty.close();
    }
  });
});
