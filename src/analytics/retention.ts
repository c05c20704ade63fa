// What the analytics database stops keeping: raw samples past analytics.rawRetentionMs (their hours are rolled up),
// and hourly detail past analytics.hourlyRetentionDays — hourly metric roll-ups and each server's hourly cost rows
// (cost_accruals, and the per-account sums of past months' hours in cost_hours) — keeping the days they were summed
// into (daily roll-ups, cost_days) for good. The analytics database then grows with days, not hours: a year at 10,000
// servers is 87.6 million accrual rows and 613 million hourly roll-ups otherwise. A usage report that would need
// deleted hours is refused (see usageSums).
import { FailedPreconditionError } from "../errors.js";
import type { Sql } from "../db/sql.js";
import { COST_DAYS_TASK, monthStart } from "./accrual.js";
import { METRICS } from "./metrics.js";
import { DAY_MS, floorTo, HOUR_MS, HOURLY_TASK, LATE_MS, readProgress, saveProgress } from "./rollup.js";

/** analytics_progress: the accrual hours (cost_accruals, cost_hours) that start before done_to are deleted … */
export const HOURS_PRUNED_TASK = "cost.hours.pruned";
/** … from this one on: the oldest there was when the first were deleted. Hours before it never existed. */
export const HOURS_PRUNED_FROM_TASK = "cost.hours.pruned.from";

export interface PruneResult {
  deleted: number;
  /** A batch came back full: run again at once. */
  more: boolean;
}

/** The start of the oldest UTC day whose hours are kept at `now` for `days` days: the hours before it have expired. */
function retentionHorizon(now: Date, days: number): Date {
  return floorTo(now.getTime() - days * DAY_MS, DAY_MS);
}

/**
 * Deletes raw samples older than `retentionMs`, at most `batch` rows per statement and `maxBatches` statements per
 * call, never one the hourly roll-up has not rolled yet.
 */
export async function pruneRawSamples(analytics: Sql, now: Date, retentionMs: number, batch: number, maxBatches = 10): Promise<PruneResult> {
  const mark = await readProgress(analytics, HOURLY_TASK);
  if (!mark) return { deleted: 0, more: false };
  const cutoff = new Date(Math.min(now.getTime() - retentionMs, mark.getTime() - LATE_MS));
  return deleteInBatches(batch, maxBatches, () => analytics.execute`DELETE FROM server_metric_samples WHERE time < ${cutoff} ORDER BY time LIMIT ${batch}`);
}

/** Runs `statement` (which deletes `batch` rows at most) until it deletes fewer, at most `maxBatches` times. */
async function deleteInBatches(batch: number, maxBatches: number, statement: () => Promise<number>): Promise<PruneResult> {
  let deleted = 0;
  for (let i = 0; i < maxBatches; i++) {
    const n = await statement();
    deleted += n;
    if (n < batch) return { deleted, more: false };
  }
  return { deleted, more: true };
}

/**
 * Deletes every sample and roll-up of these servers (the inventory's retention, as it deletes the servers: a server's
 * metrics are read only through its row), in statements of SERVER_METRICS_BATCH rows. Answers the rows deleted.
 */
export async function deleteServerMetrics(analytics: Sql, serverIds: readonly string[]): Promise<number> {
  if (serverIds.length === 0) return 0;
  const b = SERVER_METRICS_BATCH;
  const rollups = await deleteInBatches(b, Infinity, () => analytics.execute`DELETE FROM server_metric_rollups WHERE server_id IN (${serverIds}) LIMIT ${b}`);
  const samples = await deleteInBatches(b, Infinity, () => analytics.execute`DELETE FROM server_metric_samples WHERE server_id IN (${serverIds}) LIMIT ${b}`);
  return rollups.deleted + samples.deleted;
}

/** Rows per statement of deleteServerMetrics: a server that lived a year has some 2,500 daily roll-ups. */
const SERVER_METRICS_BATCH = 10_000;

/** Servers whose expired roll-ups one DELETE goes through (seven ranges of the primary key each). */
const SERVERS_PER_DELETE = 100;

/**
 * Deletes the hourly metric roll-ups older than `days` days (0: none), never one of a day the next roll-up run may
 * still sum into its daily roll-up (that run re-reads the hours of the day before its mark). `batch` rows a statement,
 * `maxBatches` statements at most.
 *
 * Server by server: the roll-ups are keyed by server and metric first, so a server's expired hours of a metric sit
 * together in the primary key, while deleting in the time index's order visits a page of the key per row, all over
 * the table (6,600 rows a second against 31,700 this way, npm run bench:accrual). The time index names the servers
 * that still have expired rows (it holds only their entries there), a hundred at a time.
 */
export async function pruneHourlyRollups(analytics: Sql, now: Date, days: number, batch: number, maxBatches = 10): Promise<PruneResult> {
  if (days === 0) return { deleted: 0, more: false };
  const mark = await readProgress(analytics, HOURLY_TASK);
  if (!mark) return { deleted: 0, more: false };
  const cutoff = new Date(Math.min(retentionHorizon(now, days).getTime(), floorTo(mark.getTime() - LATE_MS, DAY_MS).getTime()));
  const metrics = [...METRICS];
  let deleted = 0;
  let statements = 0;
  while (statements < maxBatches) {
    const found = await analytics.query<{ server_id: string }>`
      SELECT DISTINCT server_id FROM server_metric_rollups WHERE resolution = 'HOUR' AND bucket_start < ${cutoff} LIMIT ${SERVERS_PER_DELETE}`;
    if (found.length === 0) return { deleted, more: false };
    const ids = found.map((r) => r.server_id);
    let n: number;
    let chunk = 0;
    do {
      // The metrics named, so that each (server, metric) is a range of expired rows alone, not all of a server's hours.
      n = await analytics.execute`
        DELETE FROM server_metric_rollups
         WHERE server_id IN (${ids}) AND resolution = 'HOUR' AND metric IN (${metrics}) AND bucket_start < ${cutoff}
         ORDER BY server_id, resolution, metric, bucket_start LIMIT ${batch}`;
      chunk += n;
      if (++statements >= maxBatches) return { deleted: deleted + chunk, more: true };
    } while (n >= batch);
    deleted += chunk;
    // Expired rows of a metric no longer named would be found again and again: leave them.
    if (chunk === 0) return { deleted, more: false };
  }
  return { deleted, more: true };
}

/**
 * Deletes the accrual hours older than `days` days (0: none) that are summed into cost_days, and never one of the
 * current month (a rebuild recomputes the month, budget usage reads it). The marks that reports check move first, so
 * a report never sums hours that are going; they span the hours that exist below the cutoff, not the cutoff itself,
 * so a report over hours that never existed (before the first accrual) loses nothing and is not refused.
 */
export async function pruneCostHours(analytics: Sql, now: Date, days: number, batch: number, maxBatches = 10): Promise<PruneResult> {
  if (days === 0) return { deleted: 0, more: false };
  const summed = await readProgress(analytics, COST_DAYS_TASK);
  if (!summed) return { deleted: 0, more: false };
  const cutoff = new Date(Math.min(retentionHorizon(now, days).getTime(), summed.getTime(), monthStart(now).getTime()));
  // Each an end of an index: the accruals' time index, cost_hours' primary key.
  const [found] = await analytics.query<{ a_first: Date | null; a_last: Date | null; h_first: Date | null; h_last: Date | null }>`
    SELECT (SELECT MIN(period_start) FROM cost_accruals) AS a_first, (SELECT MAX(period_start) FROM cost_accruals WHERE period_start < ${cutoff}) AS a_last,
           (SELECT MIN(period_start) FROM cost_hours) AS h_first, (SELECT MAX(period_start) FROM cost_hours WHERE period_start < ${cutoff}) AS h_last`;
  const last = latest(found?.a_last, found?.h_last);
  if (!last) return { deleted: 0, more: false };
  // The first deletes record where the hours began; later ones keep it (a mark with no start covers all before it).
  const from = (await prunedHours(analytics))?.from ?? earliest(found?.a_first, found?.h_first) ?? last;
  await analytics.execute`
    INSERT INTO analytics_progress (task, done_to, updated_at) VALUES (${HOURS_PRUNED_FROM_TASK}, ${from}, NOW(3))
    ON DUPLICATE KEY UPDATE done_to = LEAST(done_to, VALUES(done_to)), updated_at = VALUES(updated_at)`;
  await saveProgress(analytics, HOURS_PRUNED_TASK, new Date(last.getTime() + HOUR_MS));
  // In time order, unlike the roll-ups: besides a narrow key the accruals have three indexes led or ended by the hour,
  // and server by server each row's delete lands on another page of those (13,300 rows a second against 29,400–36,600
  // in time order, npm run bench:accrual).
  const accruals = await deleteInBatches(batch, maxBatches, () =>
    analytics.execute`DELETE FROM cost_accruals WHERE period_start < ${cutoff} ORDER BY period_start LIMIT ${batch}`,
  );
  const sums = await deleteInBatches(batch, maxBatches, () => analytics.execute`DELETE FROM cost_hours WHERE period_start < ${cutoff} ORDER BY period_start LIMIT ${batch}`);
  return { deleted: accruals.deleted + sums.deleted, more: accruals.more || sums.more };
}

const latest = (...ts: (Date | null | undefined)[]): Date | null => ts.reduce<Date | null>((a, t) => (t && (!a || t > a) ? t : a), null);
const earliest = (...ts: (Date | null | undefined)[]): Date | null => ts.reduce<Date | null>((a, t) => (t && (!a || t < a) ? t : a), null);

/** Hours [from, to) a report sums from cost_accruals. */
export interface HourRange {
  from: Date;
  to: Date;
}

/**
 * Refuses a report that sums accrual hours in `ranges` when one of them reaches into the deleted hours: its edges
 * would be summed from hours that no longer exist.
 */
export async function requireHoursKept(analytics: Sql, ranges: readonly HourRange[]): Promise<void> {
  if (ranges.length === 0) return;
  const pruned = await prunedHours(analytics);
  if (pruned && ranges.some((r) => r.from < pruned.to && r.to > pruned.from)) {
    throw new FailedPreconditionError(
      `hourly costs from ${pruned.from.toISOString()} to ${pruned.to.toISOString()} are no longer kept (analytics.hourlyRetentionDays): a period that reaches into them must start and end on whole UTC days`,
      "HOURLY_COSTS_EXPIRED",
    );
  }
}

/** The accrual hours deleted so far, [from, to); null when none. */
async function prunedHours(analytics: Sql): Promise<HourRange | null> {
  const marks = await analytics.query<{ task: string; done_to: Date }>`
    SELECT task, done_to FROM analytics_progress WHERE task IN (${[HOURS_PRUNED_FROM_TASK, HOURS_PRUNED_TASK]})`;
  const to = marks.find((m) => m.task === HOURS_PRUNED_TASK)?.done_to;
  if (!to) return null;
  return { from: marks.find((m) => m.task === HOURS_PRUNED_FROM_TASK)?.done_to ?? new Date(0), to };
}
