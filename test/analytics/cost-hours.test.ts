// A month's cost by budget code and by account from final hours summed once (cost_hours) and the open hours'
// accruals: the same figures as summing every server's hours of the month (the fleet summary's among them), a read
// per account and code and hour rather than per server and hour, and a rebuild (the accrual mark moved back, hours
// rewritten) read right before the roll-up catches up and summed anew after.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACCRUAL_TASK, COST_HOURS_TASK, writeAccruals, type AccrualRow } from "../../src/analytics/accrual.js";
import { monthCost, rollUpCostHours } from "../../src/analytics/cost-hours.js";
import { createAnalyticsSql } from "../../src/analytics/db.js";
import { createAnalyticsService } from "../../src/analytics/service.js";
import { saveProgress } from "../../src/analytics/rollup.js";
import { sqlFragment } from "../../src/db/sql.js";
import { HOUR, openAnalyticsFixture, rowsReadBy, type AnalyticsFixture } from "./support.js";

const NOW = new Date(Date.UTC(2027, 5, 20, 12, 30)); // June 20, 2027, 12:30: 468 hours of June before 12:00
const JUNE = Date.UTC(2027, 5, 1);
const JULY = Date.UTC(2027, 6, 1);
const SERVERS = 40;
const MARK = new Date(Date.UTC(2027, 5, 20, 12)); // an accrual run's mark: hours before 10:00 are final
const ACCOUNTS = ["acc-1", "acc-2", "acc-3", "acc-4"];

let f: AnalyticsFixture;
beforeAll(async () => {
  f = await openAnalyticsFixture("anl_cost_hours");
  // Every hour of June so far for each server (code A for even servers, B for odd; four accounts across the codes),
  // and May's last hours, which June does not count.
  const rows: AccrualRow[] = [];
  for (let h = JUNE - 3 * HOUR; h <= NOW.getTime() - 30 * 60_000; h += HOUR) {
    for (let s = 0; s < SERVERS; s++) {
      const amount = BigInt(1_000 + s + ((h / HOUR) % 7));
      rows.push({ serverId: `srv-${s}`, periodStart: new Date(h), accountId: ACCOUNTS[s % 4] as string, budgetCode: s % 2 === 0 ? "A" : "B", hourlyPriceMicros: amount, accruingMs: HOUR, amountMicros: amount });
    }
  }
  await writeAccruals(f.analytics, rows);
});
afterAll(() => f?.close());

/** June so far, summed from every server's rows. */
async function direct(by: "budget_code" | "account_id"): Promise<Map<string, bigint>> {
  const key = by === "budget_code" ? sqlFragment`budget_code` : sqlFragment`account_id`;
  const rows = await f.analytics.query<{ k: string; micros: string }>`
    SELECT ${key} AS k, SUM(amount_micros) AS micros FROM cost_accruals WHERE period_start >= ${new Date(JUNE)} AND period_start < ${new Date(JULY)} GROUP BY k`;
  return new Map(rows.map((r) => [r.k, BigInt(r.micros)]));
}

const hourRows = async (): Promise<number> => Number((await f.analytics.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM cost_hours`)[0]?.n);
const byCode = () => monthCost(f.analytics, NOW, { by: "budget_code" });
const byAccount = () => monthCost(f.analytics, NOW, { by: "account_id" });

describe("a month's cost by budget code and by account", () => {
  it("equals the sum of every server's hours, summing each final hour once and reading per account and code afterwards", async () => {
    // No accrual run yet: no hour is final, everything is read from the servers' rows.
    await rollUpCostHours(f.analytics, NOW);
    expect(await byCode()).toEqual(await direct("budget_code"));
    expect(await hourRows()).toBe(0);

    // The mark at 12:00 but no roll-up yet (a summary answered between the two): still every hour from the servers' rows.
    await saveProgress(f.analytics, ACCRUAL_TASK, MARK);
    expect(await byAccount()).toEqual(await direct("account_id"));

    await rollUpCostHours(f.analytics, NOW);
    const finalHours = (Date.UTC(2027, 5, 20, 10) - JUNE) / HOUR;
    expect(await hourRows()).toBe(ACCOUNTS.length * finalHours); // each account has servers of one code
    expect(await byCode()).toEqual(await direct("budget_code"));
    expect(await byAccount()).toEqual(await direct("account_id"));

    const one = createAnalyticsSql(f.dbs.urls.analytics, 1);
    try {
      let codes = new Map<string, bigint>();
      const read = await rowsReadBy(one, async () => (codes = await monthCost(one, NOW, { by: "budget_code" })));
      expect(codes).toEqual(await direct("budget_code"));
      // 4 pairs × 466 final hours plus 40 servers × 3 open hours; every server's hours would be 40 × 469 = 18,760.
      expect(read).toBeLessThan(4_000);

      // One account: its own hours only (the summary's account filter), 466 final ones plus 10 servers × 3 open.
      let mine = new Map<string, bigint>();
      const accountRead = await rowsReadBy(one, async () => (mine = await monthCost(one, NOW, { by: "account_id", accounts: sqlFragment`account_id = ${"acc-2"}` })));
      expect(mine).toEqual(new Map([["acc-2", (await direct("account_id")).get("acc-2")]]));
      expect(accountRead).toBeLessThan(1_000);
    } finally {
      await one.end();
    }
  });

  it("gives the fleet summary its accounts' month to date", async () => {
    // The roll-up of the first test stands: most of June comes from cost_hours, the last hours from the servers' rows.
    const service = createAnalyticsService({ provisioning: f.sql, analytics: f.analytics, now: () => NOW });
    const accounts = await direct("account_id");
    const mine = await service.fleetSummary({ all: false, accountIds: ["acc-2", "acc-3"] });
    expect(mine.monthToDateCostMicros).toBe((accounts.get("acc-2") ?? 0n) + (accounts.get("acc-3") ?? 0n));
    const all = await service.fleetSummary({ all: true });
    expect(all.monthToDateCostMicros).toBe([...accounts.values()].reduce((a, b) => a + b, 0n));
    expect((await service.fleetSummary({ all: false, accountIds: ["acc-9"] })).monthToDateCostMicros).toBe(0n);
  });

  it("reads hours a rebuild reopened from the servers' rows until they are summed anew, dropping a pair an hour no longer has", async () => {
    // A rebuild clears the mark and rewrites June: here, every server of hour 05:00 on the 3rd moves to code A, and
    // one of its amounts changes.
    const hour = new Date(Date.UTC(2027, 5, 3, 5));
    await f.analytics.execute`DELETE FROM analytics_progress WHERE task = ${ACCRUAL_TASK}`;
    await f.analytics.execute`UPDATE cost_accruals SET budget_code = 'A' WHERE period_start = ${hour}`;
    await f.analytics.execute`UPDATE cost_accruals SET amount_micros = amount_micros + 5000000 WHERE period_start = ${hour} AND server_id = 'srv-1'`;
    const rebuilt = await direct("budget_code");
    // Before the monitor's roll-up rewinds: its sums past the accrual mark are not used.
    expect(await byCode()).toEqual(rebuilt);
    expect(await byAccount()).toEqual(await direct("account_id"));
    await rollUpCostHours(f.analytics, NOW);
    expect(await byCode()).toEqual(rebuilt);

    // The rebuild's runs move the mark forward again: the hour is summed anew, B's rows for it gone.
    await saveProgress(f.analytics, ACCRUAL_TASK, MARK);
    await rollUpCostHours(f.analytics, NOW);
    expect(await byCode()).toEqual(rebuilt);
    expect(await byAccount()).toEqual(await direct("account_id"));
    const codes = await f.analytics.query<{ budget_code: string }>`SELECT DISTINCT budget_code FROM cost_hours WHERE period_start = ${hour}`;
    expect(codes.map((c) => c.budget_code)).toEqual(["A"]);
    const [progress] = await f.analytics.query<{ done_to: Date }>`SELECT done_to FROM analytics_progress WHERE task = ${COST_HOURS_TASK}`;
    expect(progress?.done_to).toEqual(new Date(Date.UTC(2027, 5, 20, 10)));
  });

  it("starts a new month from zero", async () => {
    const july = new Date(Date.UTC(2027, 6, 1, 0, 20));
    await rollUpCostHours(f.analytics, july);
    expect(await monthCost(f.analytics, july, { by: "budget_code" })).toEqual(new Map());
    expect(await monthCost(f.analytics, july, { by: "account_id" })).toEqual(new Map());
  });
});
