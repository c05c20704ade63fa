// Roll-ups. Hours are aggregated from the raw samples and days from the hours, each bucket by one
// INSERT … SELECT … ON DUPLICATE KEY UPDATE that rewrites the whole row: recomputing a bucket gives the same row, so
// a restart, a second monitor or an overlap between runs never counts twice. Progress (analytics_progress) says where
// the next run resumes; each run re-rolls the hour before it too, for samples that arrived late.
import type { Sql } from "../db/sql.js";
import { METRICS } from "./metrics.js";

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

export const floorTo = (t: Date | number, stepMs: number): Date => new Date(Math.floor(new Date(t).getTime() / stepMs) * stepMs);

/** How far back each run re-rolls before its progress mark, for late samples. */
export const LATE_MS = HOUR_MS;
/** Hours one run rolls at most (a monitor that was down catches up over several runs). */
const MAX_HOURS_PER_RUN = 48;

export const HOURLY_TASK = "rollup.hour";

// Per metric: how many non-null samples, their sum, min and max — one scan of the raw rows for all metrics at once.
const AGGREGATES = METRICS.map((m) => `COUNT(${m}) AS ${m}_n, SUM(${m}) AS ${m}_s, MIN(${m}) AS ${m}_lo, MAX(${m}) AS ${m}_hi`).join(", ");
const PICK = (suffix: string): string => `CASE k.metric ${METRICS.map((m) => `WHEN '${m}' THEN g.${m}_${suffix}`).join(" ")} END`;
const METRIC_ROWS = METRICS.map((m) => `SELECT '${m}' AS metric`).join(" UNION ALL ");

/**
 * Rewrites the hourly roll-ups of every server for the hours that start in [from, to) from the raw samples.
 * Returns the rows written (MariaDB counts an updated row twice, an unchanged one zero times).
 */
export async function rollUpHours(sql: Sql, from: Date, to: Date): Promise<number> {
  const start = floorTo(from, HOUR_MS);
  const end = new Date(Math.ceil(to.getTime() / HOUR_MS) * HOUR_MS);
  // The SQL text is built from the fixed metric list only; every value is a bound parameter.
  const strings = Object.assign(
    [
      `INSERT INTO server_metric_rollups (server_id, resolution, metric, bucket_start, count, sum, min, max, avg, updated_at)
       SELECT server_id, 'HOUR', metric, bucket_start, n, s, lo, hi, s / n, NOW(3) FROM (
         SELECT g.server_id, k.metric, g.bucket_start, ${PICK("n")} AS n, ${PICK("s")} AS s, ${PICK("lo")} AS lo, ${PICK("hi")} AS hi
           FROM (SELECT server_id, CAST(DATE_FORMAT(time, '%Y-%m-%d %H:00:00') AS DATETIME(3)) AS bucket_start, ${AGGREGATES}
                   FROM server_metric_samples WHERE time >= `,
      ` AND time < `,
      ` GROUP BY server_id, bucket_start) g
          CROSS JOIN (${METRIC_ROWS}) k) r
       WHERE n > 0
       ON DUPLICATE KEY UPDATE count = VALUES(count), sum = VALUES(sum), min = VALUES(min), max = VALUES(max), avg = VALUES(avg), updated_at = VALUES(updated_at)`,
    ],
    { raw: [] as string[] },
  ) as unknown as TemplateStringsArray;
  return sql.execute(strings, start, end);
}

/** Rewrites the daily roll-ups (UTC days) that start in [from, to) from the hourly ones. */
export async function rollUpDays(sql: Sql, from: Date, to: Date): Promise<number> {
  const start = floorTo(from, DAY_MS);
  const end = new Date(Math.ceil(to.getTime() / DAY_MS) * DAY_MS);
  return sql.execute`
    INSERT INTO server_metric_rollups (server_id, resolution, metric, bucket_start, count, sum, min, max, avg, updated_at)
    SELECT server_id, 'DAY', metric, CAST(DATE(bucket_start) AS DATETIME(3)), SUM(count), SUM(sum), MIN(min), MAX(max), SUM(sum) / SUM(count), NOW(3)
      FROM server_metric_rollups
     WHERE resolution = 'HOUR' AND bucket_start >= ${start} AND bucket_start < ${end}
     GROUP BY server_id, metric, DATE(bucket_start)
    ON DUPLICATE KEY UPDATE count = VALUES(count), sum = VALUES(sum), min = VALUES(min), max = VALUES(max), avg = VALUES(avg), updated_at = VALUES(updated_at)`;
}

export async function readProgress(sql: Sql, task: string): Promise<Date | null> {
  const rows = await sql.query<{ done_to: Date }>`SELECT done_to FROM analytics_progress WHERE task = ${task}`;
  return rows[0]?.done_to ?? null;
}

/** Moves a task's mark forward (never back: two monitors may race). */
export async function saveProgress(sql: Sql, task: string, doneTo: Date): Promise<void> {
  await sql.execute`
    INSERT INTO analytics_progress (task, done_to, updated_at) VALUES (${task}, ${doneTo}, NOW(3))
    ON DUPLICATE KEY UPDATE done_to = GREATEST(done_to, VALUES(done_to)), updated_at = VALUES(updated_at)`;
}

/**
 * Moves a task's mark from `from` (null: no mark yet) to `to`, only if it still stands at `from`: false when another
 * pass moved it first or a rewind reopened part of what was just done (then what was done may be stale: stop, and let
 * the next pass start again from the mark).
 */
export async function advanceProgress(sql: Sql, task: string, from: Date | null, to: Date): Promise<boolean> {
  if (from === null) {
    return (await sql.execute`INSERT IGNORE INTO analytics_progress (task, done_to, updated_at) VALUES (${task}, ${to}, NOW(3))`) === 1;
  }
  return (await sql.execute`UPDATE analytics_progress SET done_to = ${to}, updated_at = NOW(3) WHERE task = ${task} AND done_to = ${from}`) === 1;
}

/** Moves a task's mark back to `to` when it is past it: what the task had done from there on was reopened. */
export async function rewindProgress(sql: Sql, task: string, to: Date): Promise<void> {
  await sql.execute`UPDATE analytics_progress SET done_to = ${to}, updated_at = NOW(3) WHERE task = ${task} AND done_to > ${to}`;
}

export interface RollupRun {
  from: Date;
  to: Date;
  /** True when the run stopped short of now (catching up): run again at once. */
  more: boolean;
}

/**
 * One roll-up run: the hours from (mark − LATE_MS) up to and including the current, unfinished hour (rewritten again
 * next run), then the days those hours touch. The first run starts at the oldest raw sample. Null: nothing to roll.
 */
export async function runRollups(sql: Sql, now: Date): Promise<RollupRun | null> {
  const mark = await readProgress(sql, HOURLY_TASK);
  let from: Date;
  if (mark) from = new Date(mark.getTime() - LATE_MS);
  else {
    const oldest = await sql.query<{ t: Date | null }>`SELECT MIN(time) AS t FROM server_metric_samples`;
    if (!oldest[0]?.t) return null;
    from = floorTo(oldest[0].t, HOUR_MS);
  }
  const current = floorTo(now, HOUR_MS);
  const end = new Date(Math.min(from.getTime() + MAX_HOURS_PER_RUN * HOUR_MS, current.getTime() + HOUR_MS));
  await rollUpHours(sql, from, end);
  await rollUpDays(sql, from, end);
  // The current hour is not done: the mark stays at its start, so the next run rewrites it.
  const doneTo = new Date(Math.min(end.getTime(), current.getTime()));
  await saveProgress(sql, HOURLY_TASK, doneTo);
  return { from, to: end, more: end.getTime() <= current.getTime() };
}
