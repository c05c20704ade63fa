// Budget usage from accruals, through the servers API: a code's current and projected usage follow what its servers
// accrued this month; going over the soft quota records one SOFT_QUOTA_EXCEEDED per month; once the real usage plus a
// launch's cost passes the hard quota, LaunchServer answers FAILED_PRECONDITION with a QuotaFailure.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runAccrual } from "../../src/analytics/accrual.js";
import { accruingRatesQuery, updateBudgetUsage } from "../../src/analytics/budget-usage.js";
import { createAnalyticsSql } from "../../src/analytics/db.js";
import { DispatcherError } from "../../src/client/index.js";
import type { SqlPool } from "../../src/db/sql.js";
import { seedAccount, seedBudgetCode, startServersFixture, type ServersFixture } from "../servers/support.js";
import { HOUR, insertServer, MINUTE } from "./support.js";

let f: ServersFixture;
let analytics: SqlPool;
let accountId = "";

beforeAll(async () => {
  f = await startServersFixture("anl_budget", { run: false });
  analytics = createAnalyticsSql(f.h.dbs.urls.analytics, 2);
  accountId = await seedAccount(f, { defaultBudgetCode: "TEAM" });
  // A 'small' server costs 7.30 a month (730 cents) at launch; 4.00/h already running makes 12.00 in 3 hours.
  await seedBudgetCode(f, "TEAM", { hard: 1_500n, soft: 800n }, [f.users.operator]);
});
afterAll(async () => {
  await analytics?.end();
  await f?.close();
});

const launch = () => f.client(f.users.operator).servers.launchServer({ accountId, regionId: "r1", productId: "small", imageId: "img-1", name: "x" });

async function usage(): Promise<{ current: bigint; projected: bigint }> {
  const rows = await f.h.sql.query<{ current_usage_cents: bigint; projected_usage_cents: bigint }>`SELECT current_usage_cents, projected_usage_cents FROM budget_codes WHERE code = 'TEAM'`;
  return { current: BigInt(rows[0]?.current_usage_cents ?? -1), projected: BigInt(rows[0]?.projected_usage_cents ?? -1) };
}

async function softEvents(): Promise<{ details: Record<string, unknown> }[]> {
  return f.h.sql.query`SELECT details FROM budget_events WHERE code = 'TEAM' AND type = 'SOFT_QUOTA_EXCEEDED' AND job_id IS NULL`;
}

describe("budget usage", () => {
  it("follows the accruals, warns once over the soft quota, and blocks launches over the hard quota with the real figures", async () => {
    // Within quota with no usage yet: the launch is accepted.
    await expect(launch()).resolves.toMatchObject({ job: expect.anything() });

    const now = new Date();
    const started = new Date(now.getTime() - 3 * HOUR);
    const srv = await insertServer(f.h.sql, { accountId, budgetCode: "TEAM", hourlyPriceMicros: 4_000_000n, createdAt: new Date(started.getTime() - MINUTE) });
    await srv.change("RUNNING", started);
    for (let more = true; more; ) more = (await runAccrual(f.h.sql, analytics, now)).more;
    await updateBudgetUsage(f.h.sql, analytics, now);

    // Three hours at 4.00/h, to the last whole minute (a minute is 6.67 cents): between 11.93 and 12.00.
    const u = await usage();
    expect(u.current).toBeGreaterThanOrEqual(1_193n);
    expect(u.current).toBeLessThanOrEqual(1_200n);
    // Projected: that plus 400 cents for every hour left in the month.
    const monthEnd = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
    const expected = Number(u.current) + (400 * (monthEnd - now.getTime())) / HOUR;
    expect(Math.abs(Number(u.projected) - expected)).toBeLessThan(2);

    // Over the soft quota: one event this month, however many runs follow.
    expect(await softEvents()).toHaveLength(1);
    const later = new Date(now.getTime() + 5 * MINUTE);
    await runAccrual(f.h.sql, analytics, later);
    await updateBudgetUsage(f.h.sql, analytics, later);
    await updateBudgetUsage(f.h.sql, analytics, later);
    expect((await usage()).current).toBeGreaterThan(u.current);
    const events = await softEvents();
    expect(events).toHaveLength(1);
    expect(events[0]?.details).toMatchObject({ period: now.toISOString().slice(0, 7), softQuotaCents: "800" });

    // Over the hard quota with the next launch's cost: FAILED_PRECONDITION with a QuotaFailure naming the figures.
    const err = (await launch().catch((e: unknown) => e)) as DispatcherError;
    expect(err).toBeInstanceOf(DispatcherError);
    expect([err.codeName, err.errorInfo?.reason]).toEqual(["FAILED_PRECONDITION", "QUOTA_EXCEEDED"]);
    expect(err.quotaViolations).toEqual([{ subject: "budget_codes/TEAM", description: expect.stringMatching(/over the hard quota of 1500 cents/) }]);
  });
});

describe("the accruing servers' hourly rates", () => {
  it("are summed by budget code from servers_accrual_rate_idx alone, the rows never read", async () => {
    // 3,000 servers of code BULK in every state, a third billed while stopped: the sum counts RUNNING and REBOOTING
    // ones, and STOPPING and STOPPED ones that accrue when stopped.
    await f.h.sql.execute`
      INSERT INTO servers (id, account_id, region_id, data_center, provider_id, name, product_id, image_id, budget_code, state, addresses, details,
                           hourly_price_micros, accrues_when_stopped, created_by)
      SELECT CONCAT('01BULK', LPAD(seq, 20, '0')), ${accountId}, 'r1', 'r1a', CONCAT('bulk-', seq), CONCAT('bulk-', seq), 'small', 'img-1', 'BULK',
             ELT(1 + seq MOD 7, 'PENDING', 'RUNNING', 'STOPPING', 'STOPPED', 'REBOOTING', 'TERMINATING', 'TERMINATED'), '[]', '{}', 1000 + seq, seq MOD 3 = 0, 'u-test'
        FROM seq_1_to_3000`;
    await f.h.sql.execute`ANALYZE TABLE servers`;
    const [plan] = await f.h.sql.query<{ key: string | null; Extra: string }>`EXPLAIN ${accruingRatesQuery()}`;
    expect(plan?.key).toBe("servers_accrual_rate_idx");
    expect(plan?.Extra).toMatch(/Using index/);

    const states = ["PENDING", "RUNNING", "STOPPING", "STOPPED", "REBOOTING", "TERMINATING", "TERMINATED"];
    let expected = 0n;
    for (let seq = 1; seq <= 3000; seq++) {
      const state = states[seq % 7];
      const accrues = state === "RUNNING" || state === "REBOOTING" || (seq % 3 === 0 && (state === "STOPPING" || state === "STOPPED"));
      if (accrues) expected += BigInt(1000 + seq);
    }
    const rates = await f.h.sql.query<{ budget_code: string; micros: string | bigint | number }>`${accruingRatesQuery()}`;
    expect(BigInt(rates.find((r) => r.budget_code === "BULK")?.micros ?? -1)).toBe(expected);
  });
});
