// Storage cost: volumes, snapshots, images and buckets accrue per GiB-hour at each row's own price (from its size; a
// bucket's from the bytes its cloud reports it holds), into the
// same hourly cost_accruals rows as servers, only in their accruing states; a snapshot's price follows the size its
// cloud reports; and the hours show in the budget code's usage, the held storage projecting the rest of the month.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { updateBudgetUsage } from "../../src/analytics/budget-usage.js";
import { newId } from "../../src/db/ids.js";
import { accrueResources, resourceRates } from "../../src/resources/accrual.js";
import { applyObservation } from "../../src/resources/inventory.js";
import { findResource, insertResource, insertResourceEvents } from "../../src/resources/repository.js";
import { BUCKET, hourlyPriceOf, IMAGE, SNAPSHOT, VOLUME, type ResourceTypeSpec } from "../../src/resources/types.js";
import { insertBudgetCode, openAnalyticsFixture, type AnalyticsFixture } from "../analytics/support.js";

const HOUR = 3_600_000;
const GIB = 2 ** 30;
let f: AnalyticsFixture;

beforeAll(async () => {
  f = await openAnalyticsFixture("storage_accrual");
  await insertBudgetCode(f.sql, "DISK", { hard: 100_000_000n });
});
afterAll(async () => {
  await f?.close();
});

/** A storage row of `spec` with `details`, created at `created`, whose history moves it through `changes`. */
async function row(spec: ResourceTypeSpec, details: Record<string, string>, created: Date, changes: Array<[string, Date]>): Promise<string> {
  const id = newId();
  const state = changes.at(-1)?.[0] ?? "PENDING";
  await insertResource(f.sql, { id, accountId: f.accountId, regionId: "r1", type: spec.type, providerId: `p-${id}`, name: "s", state, origin: "CREATED", budgetCode: "DISK", tags: {}, details, clientToken: id, hourlyPriceMicros: hourlyPriceOf(spec, details), createdBy: "t" });
  for (const [to, at] of changes) {
    await insertResourceEvents(f.sql, [{ resourceId: id, type: "STATE_CHANGED", toState: to, message: "m" }]);
    await f.sql.execute`UPDATE resource_events SET created_at = ${at} WHERE resource_id = ${id} AND to_state = ${to} AND created_at > ${at}`;
  }
  await f.sql.execute`UPDATE resources SET created_at = ${created}, state_changed_at = ${changes.at(-1)?.[1] ?? created} WHERE id = ${id}`;
  return id;
}

const amounts = async (subject: string) =>
  (await f.analytics.query<{ accruing_ms: number; amount_micros: bigint | number }>`SELECT accruing_ms, amount_micros FROM cost_accruals WHERE server_id = ${subject} ORDER BY period_start`).map((r) => [Number(r.accruing_ms), Number(r.amount_micros)]);

describe("storage accrual", () => {
  it("prices by size: $0.08 a GiB-month for a volume, $0.05 for snapshots and images, rounded up to a micro-unit an hour", () => {
    // 730 hours a month: 100 GiB of gp3 is $8 a month, 10,959 micro-units (rounded up) an hour.
    expect(hourlyPriceOf(VOLUME, { sizeGiB: "100" })).toBe(10_959n);
    expect(hourlyPriceOf(VOLUME, { sizeGiB: "1" })).toBe(110n);
    expect(hourlyPriceOf(SNAPSHOT, { sizeGiB: "100" })).toBe(6_850n);
    expect(hourlyPriceOf(IMAGE, { sizeBytes: String(8 * GIB) })).toBe(548n);
    expect(hourlyPriceOf(VOLUME, {})).toBe(0n);
    expect(hourlyPriceOf(VOLUME, { sizeGiB: "nonsense" })).toBe(0n);
  });

  it("accrues GiB-hours only in the accruing states, the same on a second run, and budget usage counts them", async () => {
    const hour = Math.floor(Date.now() / HOUR) * HOUR;
    const from = new Date(hour - 3 * HOUR);
    const to = new Date(hour);
    // A 100 GiB volume AVAILABLE for 2.5 hours, then deleted; a snapshot COMPLETED for the last 2 hours; an image
    // that FAILED costs nothing.
    const vol = await row(VOLUME, { sizeGiB: "100" }, from, [["AVAILABLE", new Date(hour - 3 * HOUR + 30 * 60_000)], ["IN_USE", new Date(hour - 2 * HOUR)], ["DELETED", new Date(hour)]]);
    const snap = await row(SNAPSHOT, { sizeGiB: "100" }, new Date(hour - 2 * HOUR - 60_000), [["PENDING", new Date(hour - 2 * HOUR - 60_000)], ["COMPLETED", new Date(hour - 2 * HOUR)]]);
    const failed = await row(IMAGE, { sizeBytes: String(8 * GIB) }, from, [["FAILED", from]]);
    await accrueResources(f.sql, f.analytics, from, to);
    expect(await amounts(vol)).toEqual([[30 * 60_000, 5_479], [HOUR, 10_959], [HOUR, 10_959]]);
    expect(await amounts(snap)).toEqual([[HOUR, 6_850], [HOUR, 6_850]]);
    expect(await amounts(failed)).toEqual([]);
    const first = await amounts(vol);
    await accrueResources(f.sql, f.analytics, from, to);
    expect(await amounts(vol)).toEqual(first);

    // The snapshot still held projects on; the deleted volume does not.
    expect((await resourceRates(f.sql)).get("DISK")).toBe(6_850n);
    await updateBudgetUsage(f.sql, f.analytics, to, await resourceRates(f.sql));
    const [code] = await f.sql.query<{ current_usage_cents: bigint | number; projected_usage_cents: bigint | number }>`SELECT current_usage_cents, projected_usage_cents FROM budget_codes WHERE code = 'DISK'`;
    // 27,397 + 13,700 micro-units = 4.1 cents, when all three hours are in this month.
    if (from.getUTCMonth() === to.getUTCMonth()) expect(Number(code?.current_usage_cents)).toBe(4);
    expect(Number(code?.projected_usage_cents)).toBeGreaterThan(Number(code?.current_usage_cents));
  });

  it("re-prices a row when its cloud reports another size, and says so in its history", async () => {
    const id = await row(SNAPSHOT, { sizeGiB: "10" }, new Date(), [["COMPLETED", new Date()]]);
    const before = await findResource(f.sql, id);
    expect(before?.hourlyPriceMicros).toBe(685n);
    const events = await applyObservation(f.sql, SNAPSHOT as ResourceTypeSpec, before!, { providerId: before!.providerId!, regionId: "r1", name: "s", state: "COMPLETED", tags: {}, createdAt: null, clientToken: id, details: {}, volumeId: "vol-1", sizeGiB: 40 } as never, { jobId: null });
    expect((await findResource(f.sql, id))?.hourlyPriceMicros).toBe(2_740n);
    expect(events.find((e) => e.type === "DETAILS_CHANGED")?.details).toMatchObject({ sizeGiB: "40", hourlyPriceMicros: "2740" });
  });

  it("prices a bucket by the bytes its cloud reports it holds ($0.023 a GiB-month), and budget usage counts them", async () => {
    await insertBudgetCode(f.sql, "FILES", { hard: 100_000_000n });
    const hour = Math.floor(Date.now() / HOUR) * HOUR;
    const from = new Date(hour - 2 * HOUR);
    const to = new Date(hour);
    const id = newId();
    // Created empty: nothing to pay for yet.
    await insertResource(f.sql, { id, accountId: f.accountId, regionId: "r1", type: "bucket", providerId: `b-${id}`, name: "b", state: "AVAILABLE", origin: "CREATED", budgetCode: "FILES", tags: {}, details: { objects: "0", bytes: "0" }, clientToken: id, hourlyPriceMicros: hourlyPriceOf(BUCKET, { bytes: "0" }), createdBy: "t" });
    expect((await findResource(f.sql, id))?.hourlyPriceMicros).toBe(0n);
    // The cloud reports 100 GiB in it: 2,300,000 micro-units a month, 3,151 an hour (rounded up).
    const before = await findResource(f.sql, id);
    await applyObservation(f.sql, BUCKET as ResourceTypeSpec, before!, { providerId: before!.providerId!, regionId: "r1", name: "b", state: "AVAILABLE", tags: {}, createdAt: null, clientToken: id, details: { objects: "3", bytes: String(100 * GIB) } } as never, { jobId: null });
    expect((await findResource(f.sql, id))?.hourlyPriceMicros).toBe(3_151n);
    await f.sql.execute`UPDATE resources SET created_at = ${from}, state_changed_at = ${from} WHERE id = ${id}`;
    await accrueResources(f.sql, f.analytics, from, to);
    expect(await amounts(id)).toEqual([[HOUR, 3_151], [HOUR, 3_151]]);
    expect((await resourceRates(f.sql)).get("FILES")).toBe(3_151n);
    await updateBudgetUsage(f.sql, f.analytics, to, await resourceRates(f.sql));
    const [code] = await f.sql.query<{ current_usage_cents: bigint | number; projected_usage_cents: bigint | number }>`SELECT current_usage_cents, projected_usage_cents FROM budget_codes WHERE code = 'FILES'`;
    // 6,302 micro-units = 0.63 cents so far (rounded up to a cent), and the held bytes project on.
    if (from.getUTCMonth() === to.getUTCMonth()) expect(Number(code?.current_usage_cents)).toBe(1);
    expect(Number(code?.projected_usage_cents)).toBeGreaterThan(Number(code?.current_usage_cents));
  });
});
