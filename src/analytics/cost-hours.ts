// A month's cost without reading every server's hours: each final hour's accruals are summed once per account and
// budget code into cost_hours, and a month to date is those sums plus the few open hours' rows of cost_accruals.
// Budget usage (each accrual interval) and the fleet summary (each call) read it; only the monitor writes it.
import { sqlFragment, type Sql, type SqlFragment } from "../db/sql.js";
import { COST_HOURS_TASK, firstOpenHour, monthStart, nextMonthStart } from "./accrual.js";
import { advanceProgress, DAY_MS, readProgress, rewindProgress } from "./rollup.js";

const clamp = (t: number, start: Date, next: Date): Date => new Date(Math.min(Math.max(t, start.getTime()), next.getTime()));

/** The first hour of the month [start, next) an accrual run may still rewrite (firstOpenHour, within the month). */
async function openFrom(analytics: Sql, start: Date, next: Date): Promise<Date> {
  return clamp((await firstOpenHour(analytics, start)).getTime(), start, next);
}

/** Hours summed per statement at most: the first pass of a month (or after an upgrade) goes a day at a time. */
const ROLL_UP_CHUNK_MS = DAY_MS;

/**
 * Sums the final hours of `now`'s month not summed yet into cost_hours (one row per hour, account and budget code), a
 * day per statement, moving its progress after each so a restart resumes where it stopped. When the accrual mark has
 * moved back (a rebuild), the hours after it are open again: they are read from cost_accruals until final and then
 * summed anew.
 */
export async function rollUpCostHours(analytics: Sql, now: Date): Promise<void> {
  const start = monthStart(now);
  const open = await openFrom(analytics, start, nextMonthStart(now));
  const done = await readProgress(analytics, COST_HOURS_TASK);
  let from = done && done.getTime() > start.getTime() ? done : start;
  if (from.getTime() > open.getTime()) {
    await rewindProgress(analytics, COST_HOURS_TASK, open);
    return;
  }
  // The mark moves only from where this pass found it (a last month's, at the start of a month): a rewind meanwhile,
  // an accrual run reopening hours, stops the pass.
  let mark = done;
  while (from.getTime() < open.getTime()) {
    const to = new Date(Math.min(from.getTime() + ROLL_UP_CHUNK_MS, open.getTime()));
    await sumHours(analytics, from, to);
    if (!(await advanceProgress(analytics, COST_HOURS_TASK, mark, to))) return;
    from = mark = to;
  }
}

async function sumHours(analytics: Sql, from: Date, to: Date): Promise<void> {
  await analytics.execute`
    INSERT INTO cost_hours (period_start, account_id, budget_code, amount_micros, updated_at)
    SELECT period_start, account_id, budget_code, SUM(amount_micros), NOW(3) FROM cost_accruals
     WHERE period_start >= ${from} AND period_start < ${to} GROUP BY period_start, account_id, budget_code
    ON DUPLICATE KEY UPDATE amount_micros = VALUES(amount_micros), updated_at = VALUES(updated_at)`;
  // A pair with no accruals left in an hour (a rebuild moved its servers' hours to another code) loses its row.
  await analytics.execute`
    DELETE FROM cost_hours
     WHERE period_start >= ${from} AND period_start < ${to}
       AND NOT EXISTS (SELECT 1 FROM cost_accruals c
                        WHERE c.period_start = cost_hours.period_start AND c.account_id = cost_hours.account_id AND c.budget_code = cost_hours.budget_code)`;
}

export interface MonthCostQuery {
  /** What the sums are keyed by. */
  by: "budget_code" | "account_id";
  /** A condition on account_id (both tables have it); all accounts when absent. */
  accounts?: SqlFragment;
}

/**
 * The accruals of `now`'s month so far, in micro-units, by budget code or account: the hours rolled up from
 * cost_hours, the rest (the last two or three hours, or more when the roll-up is behind) from cost_accruals. It only
 * reads, so an API call may use it: where the roll-up stands is read, not advanced, and hours a rebuild reopened are
 * read from cost_accruals even before the monitor rewinds the roll-up.
 */
export async function monthCost(analytics: Sql, now: Date, query: MonthCostQuery): Promise<Map<string, bigint>> {
  const start = monthStart(now);
  const next = nextMonthStart(now);
  const done = await readProgress(analytics, COST_HOURS_TASK);
  const open = await openFrom(analytics, start, next);
  const split = clamp(Math.min(done?.getTime() ?? start.getTime(), open.getTime()), start, next);
  const key = query.by === "budget_code" ? sqlFragment`budget_code` : sqlFragment`account_id`;
  const accounts = query.accounts ?? sqlFragment`1 = 1`;
  type Sum = { k: string; micros: string | bigint | number };
  const final = split.getTime() === start.getTime() ? [] : await analytics.query<Sum>`
    SELECT ${key} AS k, SUM(amount_micros) AS micros FROM cost_hours
     WHERE ${accounts} AND period_start >= ${start} AND period_start < ${split} GROUP BY k`;
  const recent = await analytics.query<Sum>`
    SELECT ${key} AS k, SUM(amount_micros) AS micros FROM cost_accruals
     WHERE ${accounts} AND period_start >= ${split} AND period_start < ${next} GROUP BY k`;
  const sums = new Map<string, bigint>();
  for (const r of [...final, ...recent]) sums.set(r.k, (sums.get(r.k) ?? 0n) + BigInt(r.micros));
  return sums;
}
