// Usage reports over long periods without reading every server's hours: once a day is final its accruals are summed
// per server, budget code and account into cost_days, and a report reads the whole days of its period there and only
// the hours at its edges (and those not summed yet) from cost_accruals — a month is about 31 rows per server rather
// than 744. Only the monitor writes cost_days (after each accrual pass); ReportUsage reads it.
import { sqlFragment, sqlJoin, type Sql, type SqlFragment } from "../db/sql.js";
import { COST_DAYS_TASK, firstOpenHour } from "./accrual.js";
import { requireHoursKept, type HourRange } from "./retention.js";
import { advanceProgress, DAY_MS, floorTo, readProgress } from "./rollup.js";

/**
 * Days one pass sums at most: the first pass after an upgrade starts at the oldest accrual and catches up over several
 * passes (the monitor runs them back to back), none holding a statement longer than a day's rows take.
 */
export const DAYS_PER_PASS = 7;

/** The first day an accrual run may still rewrite (the day of its first open hour): the days before it are final. */
async function firstOpenDay(analytics: Sql, now: Date): Promise<Date> {
  return floorTo(await firstOpenHour(analytics, now), DAY_MS);
}

/**
 * Sums the final days not summed yet into cost_days, a day per statement and at most `maxDays`, moving the progress
 * after each (so a restart resumes where it stopped); the first pass starts at the oldest accrual. `more`: final days
 * are left for another pass. An accrual run that rewrites summed days moves the progress back first (runAccrual).
 */
export async function rollUpCostDays(analytics: Sql, now: Date, maxDays = DAYS_PER_PASS): Promise<{ days: number; more: boolean }> {
  const open = await firstOpenDay(analytics, now);
  let mark = await readProgress(analytics, COST_DAYS_TASK);
  let from = mark ?? (await firstAccrualDay(analytics));
  let days = 0;
  while (from && from.getTime() < open.getTime() && days < maxDays) {
    const to = new Date(from.getTime() + DAY_MS);
    await sumDay(analytics, from, to);
    // Only from where this pass found the mark: a rewind meanwhile stops it (what it summed may be stale).
    if (!(await advanceProgress(analytics, COST_DAYS_TASK, mark, to))) return { days, more: false };
    from = mark = to;
    days++;
  }
  return { days, more: from !== null && from.getTime() < open.getTime() };
}

async function firstAccrualDay(analytics: Sql): Promise<Date | null> {
  const [row] = await analytics.query<{ first: Date | null }>`SELECT MIN(period_start) AS first FROM cost_accruals`;
  return row?.first ? floorTo(row.first, DAY_MS) : null;
}

async function sumDay(analytics: Sql, from: Date, to: Date): Promise<void> {
  // A day summed for the first time (every day but after a rebuild) has no rows the INSERT could leave stale.
  const again = (await analytics.query`SELECT 1 AS n FROM cost_days WHERE day = ${from} LIMIT 1`).length > 0;
  await analytics.execute`
    INSERT INTO cost_days (day, server_id, budget_code, account_id, amount_micros, accruing_ms, updated_at)
    SELECT ${from}, server_id, budget_code, account_id, SUM(amount_micros), SUM(accruing_ms), NOW(3) FROM cost_accruals
     WHERE period_start >= ${from} AND period_start < ${to} GROUP BY server_id, budget_code, account_id
    ON DUPLICATE KEY UPDATE amount_micros = VALUES(amount_micros), accruing_ms = VALUES(accruing_ms), updated_at = VALUES(updated_at)`;
  // A day summed again after a rebuild drops what its hours no longer hold (a server moved to another code). An
  // anti-join with the day's hours, read once: a NOT EXISTS per row reads each server's hours from its first one on.
  if (!again) return;
  await analytics.execute`
    DELETE d FROM cost_days d
      LEFT JOIN (SELECT DISTINCT server_id, budget_code, account_id FROM cost_accruals WHERE period_start >= ${from} AND period_start < ${to}) a
        ON a.server_id = d.server_id AND a.budget_code = d.budget_code AND a.account_id = d.account_id
     WHERE d.day = ${from} AND a.server_id IS NULL`;
}

export interface UsageSumQuery {
  /** What rows are grouped by: budget_code, account_id or server_id (columns of both tables). */
  key: SqlFragment;
  /** Conditions on account_id and budget_code (columns of both tables). */
  where: SqlFragment[];
  /** The accrual hours that start in [start, end). */
  start: Date;
  end: Date;
}

export interface UsageSum {
  key: string;
  micros: bigint;
  accruingMs: number;
  /** Distinct servers (and priced resources) that accrued. */
  servers: number;
}

/**
 * The accruals of the hours starting in [start, end) summed per key, with the distinct servers behind each: the whole
 * days summed so far from cost_days, the hours before the first and after the last of them from cost_accruals
 * (FailedPreconditionError when those hours are past their retention: ./retention.ts). It only reads (the progress
 * is read, never advanced), so an API call may use it.
 */
export async function usageSums(analytics: Sql, q: UsageSumQuery): Promise<UsageSum[]> {
  const summedTo = await readProgress(analytics, COST_DAYS_TASK);
  const daysFrom = Math.ceil(q.start.getTime() / DAY_MS) * DAY_MS;
  const daysTo = Math.min(floorTo(q.end, DAY_MS).getTime(), summedTo?.getTime() ?? 0);
  const where = (extra: SqlFragment): SqlFragment => sqlJoin([...q.where, extra], " AND ");
  // Each part is summed per key and server first: the union then holds a row per server and part, not per hour or day.
  const part = (table: SqlFragment, range: SqlFragment): SqlFragment =>
    sqlFragment`SELECT ${q.key} AS k, server_id, SUM(amount_micros) AS micros, SUM(accruing_ms) AS ms FROM ${table} WHERE ${where(range)} GROUP BY k, server_id`;
  const hourRanges: HourRange[] = [];
  const hours = (from: Date, to: Date): SqlFragment => {
    hourRanges.push({ from, to });
    return part(sqlFragment`cost_accruals`, sqlFragment`period_start >= ${from} AND period_start < ${to}`);
  };
  let parts: SqlFragment[];
  if (daysFrom < daysTo) {
    const [a, b] = [new Date(daysFrom), new Date(daysTo)];
    parts = [part(sqlFragment`cost_days`, sqlFragment`day >= ${a} AND day < ${b}`)];
    if (q.start.getTime() < daysFrom) parts.push(hours(q.start, a));
    if (daysTo < q.end.getTime()) parts.push(hours(b, q.end));
  } else {
    parts = [hours(q.start, q.end)];
  }
  // Hours past their retention are gone (./retention.ts): checked again after the sums, for a prune that began meanwhile.
  await requireHoursKept(analytics, hourRanges);
  const rows = await analytics.query<{ k: string; micros: unknown; ms: unknown; servers: unknown }>`
    SELECT k, SUM(micros) AS micros, SUM(ms) AS ms, COUNT(DISTINCT server_id) AS servers
      FROM (${unionAll(parts)}) AS u GROUP BY k ORDER BY k`;
  await requireHoursKept(analytics, hourRanges);
  // SUM over BIGINT and INT columns comes back as DECIMAL (a string without a fraction).
  return rows.map((r) => ({ key: r.k, micros: BigInt(String(r.micros ?? 0).split(".")[0] as string), accruingMs: Number(r.ms ?? 0), servers: Number(r.servers ?? 0) }));
}

const unionAll = (parts: SqlFragment[]): SqlFragment =>
  parts.slice(1).reduce((all, part) => sqlFragment`${all} UNION ALL ${part}`, parts[0] as SqlFragment);
