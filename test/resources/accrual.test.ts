// Cost accrual of resources: an address accrues its type's hourly price while ALLOCATED or ASSOCIATED, from its state
// history, into the same hourly cost_accruals rows as servers (keyed by its id); re-running writes the same rows; the
// hours show in its budget code's usage, and while it is held its price projects the rest of the month. A run reads a
// resource's history from its last change before the range, however long it is.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { updateBudgetUsage } from "../../src/analytics/budget-usage.js";
import { newId } from "../../src/db/ids.js";
import { accrueResources, resourceIntervals, resourceRates } from "../../src/resources/accrual.js";
import { insertResource, insertResourceEvents } from "../../src/resources/repository.js";
import { createSqlPool, sqlFragment, sqlJoin } from "../../src/db/sql.js";
import { insertBudgetCode, openAnalyticsFixture, rowsReadBy, type AnalyticsFixture } from "../analytics/support.js";

const HOUR = 3_600_000;
let f: AnalyticsFixture;

beforeAll(async () => {
  f = await openAnalyticsFixture("res_accrual");
  await insertBudgetCode(f.sql, "NETB", { hard: 1_000_000n });
});
afterAll(async () => {
  await f?.close();
});

/** An address row created at `created` whose history moves it through `changes` (state at time). */
async function address(created: Date, changes: Array<[string, Date]>, budgetCode = "NETB"): Promise<string> {
  const id = newId();
  const state = changes.at(-1)?.[0] ?? "PENDING";
  await insertResource(f.sql, { id, accountId: f.accountId, regionId: "r1", type: "address", providerId: `eip-${id}`, name: "a", state, origin: "CREATED", budgetCode, tags: {}, details: {}, clientToken: id, hourlyPriceMicros: 5_000n, createdBy: "t" });
  for (const [to, at] of changes) {
    await insertResourceEvents(f.sql, [{ resourceId: id, type: "STATE_CHANGED", toState: to, message: "m" }]);
    await f.sql.execute`UPDATE resource_events SET created_at = ${at} WHERE resource_id = ${id} AND to_state = ${to} AND created_at > ${at}`;
  }
  await f.sql.execute`UPDATE resources SET created_at = ${created}, state_changed_at = ${changes.at(-1)?.[1] ?? created} WHERE id = ${id}`;
  return id;
}

describe("resource accrual", () => {
  it("counts only the accruing states", () => {
    const t0 = new Date(Date.UTC(2026, 0, 1));
    const at = (h: number) => t0.getTime() + h * HOUR;
    const intervals = resourceIntervals({ state: "DELETED", createdAt: t0, stateChangedAt: new Date(at(5)) }, [
      { toState: "ALLOCATED", at: at(1) },
      { toState: "ASSOCIATED", at: at(2) },
      { toState: "ALLOCATED", at: at(3) },
      { toState: "DELETED", at: at(5) },
    ], new Set(["ALLOCATED", "ASSOCIATED"]));
    expect(intervals).toEqual([{ start: at(1), end: at(5) }]);
  });

  it("writes hourly rows from the history, the same on a second run, and budget usage counts them", async () => {
    const now = new Date();
    const hour = Math.floor(now.getTime() / HOUR) * HOUR;
    // Allocated 90 minutes into the hour two hours back, released at the start of the last hour: 1.5 hours.
    const from = new Date(hour - 3 * HOUR);
    const id = await address(new Date(hour - 3 * HOUR), [["ALLOCATED", new Date(hour - 3 * HOUR + 30 * 60_000)], ["DELETED", new Date(hour - HOUR)]]);
    const held = await address(new Date(hour - 2 * HOUR), [["ALLOCATED", new Date(hour - 2 * HOUR)]]);
    const to = new Date(hour);
    await accrueResources(f.sql, f.analytics, from, to);
    const rows = async (subject: string) => f.analytics.query<{ accruing_ms: number; amount_micros: bigint | number }>`SELECT accruing_ms, amount_micros FROM cost_accruals WHERE server_id = ${subject} ORDER BY period_start`;
    const first = await rows(id);
    expect(first.map((r) => Number(r.accruing_ms))).toEqual([30 * 60_000, HOUR]);
    expect(first.map((r) => Number(r.amount_micros))).toEqual([2_500, 5_000]);
    expect((await rows(held)).map((r) => Number(r.accruing_ms))).toEqual([HOUR, HOUR]);
    await accrueResources(f.sql, f.analytics, from, to);
    expect(await rows(id)).toEqual(first);

    expect((await resourceRates(f.sql)).get("NETB")).toBe(5_000n);
    await updateBudgetUsage(f.sql, f.analytics, to, await resourceRates(f.sql));
    const [code] = await f.sql.query<{ current_usage_cents: bigint | number; projected_usage_cents: bigint | number }>`SELECT current_usage_cents, projected_usage_cents FROM budget_codes WHERE code = 'NETB'`;
    // 7,500 + 10,000 micros this month (if both hours are in it) = 1.75 cents → 2; the held address projects on.
    if (from.getUTCMonth() === to.getUTCMonth()) expect(Number(code?.current_usage_cents)).toBe(2);
    expect(Number(code?.projected_usage_cents)).toBeGreaterThan(Number(code?.current_usage_cents));
  });

  it("reads a resource's history from its last change before the range, and accrues what the whole history says", async () => {
    const hour = Math.floor(Date.now() / HOUR) * HOUR;
    const created = hour - 400 * 24 * HOUR;
    // Associated and back to allocated every 12 hours for 400 days (800 changes), all accruing; released 30 minutes
    // into the range's second hour.
    const id = await address(new Date(created), [["ALLOCATED", new Date(created)]]);
    const changes: Array<[string, number]> = [];
    for (let t = created + 12 * HOUR; t < hour - 3 * HOUR; t += 12 * HOUR) changes.push([changes.length % 2 === 0 ? "ASSOCIATED" : "ALLOCATED", t]);
    changes.push(["DELETED", hour - HOUR + 30 * 60_000]);
    const values = changes.map(([to, at]) => sqlFragment`(${id}, 'STATE_CHANGED', ${to}, 'm', ${new Date(at)})`);
    await f.sql.execute`INSERT INTO resource_events (resource_id, type, to_state, message, created_at) VALUES ${sqlJoin(values, ", ")}`;
    await f.sql.execute`UPDATE resources SET state = 'DELETED', state_changed_at = ${new Date(hour - HOUR + 30 * 60_000)} WHERE id = ${id}`;

    const one = createSqlPool(f.dbs.urls.provisioning, 1);
    try {
      const read = await rowsReadBy(one, () => accrueResources(one, f.analytics, new Date(hour - 2 * HOUR), new Date(hour)));
      // 800 changes in the history; the run read the last one before the range and those after, for every resource.
      expect(read).toBeLessThan(100);
    } finally {
      await one.end();
    }
    const rows = await f.analytics.query<{ accruing_ms: number }>`SELECT accruing_ms FROM cost_accruals WHERE server_id = ${id} ORDER BY period_start`;
    expect(rows.map((r) => Number(r.accruing_ms))).toEqual([HOUR, 30 * 60_000]);
  });
});
