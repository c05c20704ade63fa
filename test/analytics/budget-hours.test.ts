// A month's usage per budget code from final hours summed once (budget_code_hours) and the open hours' accruals: the
// same figures as summing every server's hours of the month, a second pass reading per code and hour rather than per
// server and hour, and a rebuild (the accrual mark moved back, hours rewritten) summed anew.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACCRUAL_TASK, writeAccruals, type AccrualRow } from "../../src/analytics/accrual.js";
import { BUDGET_HOURS_TASK, monthToDate } from "../../src/analytics/budget-usage.js";
import { createAnalyticsSql } from "../../src/analytics/db.js";
import { saveProgress } from "../../src/analytics/rollup.js";
import { HOUR, openAnalyticsFixture, rowsReadBy, type AnalyticsFixture } from "./support.js";

const NOW = new Date(Date.UTC(2027, 5, 20, 12, 30)); // June 20, 2027, 12:30: 468 hours of June before 12:00
const JUNE = Date.UTC(2027, 5, 1);
const SERVERS = 40;

let f: AnalyticsFixture;
beforeAll(async () => {
  f = await openAnalyticsFixture("anl_budget_hours");
  // Every hour of June so far for each server (code A for even servers, B for odd), and May's last hours, which June
  // does not count.
  const rows: AccrualRow[] = [];
  for (let h = JUNE - 3 * HOUR; h <= NOW.getTime() - 30 * 60_000; h += HOUR) {
    for (let s = 0; s < SERVERS; s++) {
      const amount = BigInt(1_000 + s + ((h / HOUR) % 7));
      rows.push({ serverId: `srv-${s}`, periodStart: new Date(h), accountId: "acc", budgetCode: s % 2 === 0 ? "A" : "B", hourlyPriceMicros: amount, accruingMs: HOUR, amountMicros: amount });
    }
  }
  await writeAccruals(f.analytics, rows);
});
afterAll(() => f?.close());

/** Each code's June so far, summed from every server's rows. */
async function direct(): Promise<Map<string, bigint>> {
  const rows = await f.analytics.query<{ budget_code: string; micros: string }>`
    SELECT budget_code, SUM(amount_micros) AS micros FROM cost_accruals WHERE period_start >= ${new Date(JUNE)} AND period_start < ${new Date(Date.UTC(2027, 6, 1))} GROUP BY budget_code`;
  return new Map(rows.map((r) => [r.budget_code, BigInt(r.micros)]));
}

const hourRows = async (): Promise<number> => Number((await f.analytics.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM budget_code_hours`)[0]?.n);

describe("a month's usage by budget code", () => {
  it("equals the sum of every server's hours, summing each final hour once and reading per code afterwards", async () => {
    // No accrual run yet: no hour is final, everything is read from the servers' rows.
    expect(await monthToDate(f.analytics, NOW)).toEqual(await direct());
    expect(await hourRows()).toBe(0);

    // The accrual mark at 12:00: hours before 10:00 are final (a run rewrites from 11:00, and one more hour stays open).
    await saveProgress(f.analytics, ACCRUAL_TASK, new Date(Date.UTC(2027, 5, 20, 12)));
    expect(await monthToDate(f.analytics, NOW)).toEqual(await direct());
    const finalHours = (Date.UTC(2027, 5, 20, 10) - JUNE) / HOUR;
    expect(await hourRows()).toBe(2 * finalHours);

    const one = createAnalyticsSql(f.dbs.urls.analytics, 1);
    try {
      let usage = new Map<string, bigint>();
      const read = await rowsReadBy(one, async () => (usage = await monthToDate(one, NOW)));
      expect(usage).toEqual(await direct());
      // 2 codes × 466 final hours plus 40 servers × 3 open hours; every server's hours would be 40 × 469 = 18,760.
      expect(read).toBeLessThan(4_000);
    } finally {
      await one.end();
    }
  });

  it("sums hours anew after a rebuild rewrote them, and drops a code an hour no longer has", async () => {
    // A rebuild clears the mark and rewrites June: here, every server of hour 05:00 on the 3rd moves to code A, and
    // one of its amounts changes.
    const hour = new Date(Date.UTC(2027, 5, 3, 5));
    await f.analytics.execute`DELETE FROM analytics_progress WHERE task = ${ACCRUAL_TASK}`;
    await f.analytics.execute`UPDATE cost_accruals SET budget_code = 'A' WHERE period_start = ${hour}`;
    await f.analytics.execute`UPDATE cost_accruals SET amount_micros = amount_micros + 5000000 WHERE period_start = ${hour} AND server_id = 'srv-1'`;
    const rebuilt = await direct();
    expect(await monthToDate(f.analytics, NOW)).toEqual(rebuilt);

    // The rebuild's runs move the mark forward again: the hour is summed anew, B's row for it gone.
    await saveProgress(f.analytics, ACCRUAL_TASK, new Date(Date.UTC(2027, 5, 20, 12)));
    expect(await monthToDate(f.analytics, NOW)).toEqual(rebuilt);
    const codes = await f.analytics.query<{ budget_code: string }>`SELECT budget_code FROM budget_code_hours WHERE period_start = ${hour}`;
    expect(codes.map((c) => c.budget_code)).toEqual(["A"]);
    const [progress] = await f.analytics.query<{ done_to: Date }>`SELECT done_to FROM analytics_progress WHERE task = ${BUDGET_HOURS_TASK}`;
    expect(progress?.done_to).toEqual(new Date(Date.UTC(2027, 5, 20, 10)));
  });

  it("starts a new month from zero", async () => {
    const july = new Date(Date.UTC(2027, 6, 1, 0, 20));
    expect(await monthToDate(f.analytics, july)).toEqual(new Map());
  });
});
