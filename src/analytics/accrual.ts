// Cost accrual. A server's accruing intervals come from its state history in the provisioning database
// (server_events rows that carry a to_state, in id order, with their created_at times), reconciled with the servers
// row's current state; each hour of an interval becomes one cost_accruals row (server, hour) holding price × accruing
// time up to the last whole minute. Rows are recomputed from that history and written with the same value, so
// running twice, a restart mid-period or two monitors never count twice. A run reads each server's history from its
// last state change before the run's range (historyCutoff), not from its creation: a run's reads stay those of the
// last hours however long a server has lived.
import type { Sql } from "../db/sql.js";
import { DAY_MS, floorTo, HOUR_MS, readProgress, rewindProgress, saveProgress } from "./rollup.js";
import { sqlFragment, sqlJoin } from "../db/sql.js";

export type ServerState = "PENDING" | "RUNNING" | "STOPPING" | "STOPPED" | "REBOOTING" | "TERMINATING" | "TERMINATED";

export const MINUTE_MS = 60_000;
export const ACCRUAL_TASK = "accrual";
/** Progress of the sums made from final accruals: per hour, account and code (cost-hours.ts); per day and server (cost-days.ts). */
export const COST_HOURS_TASK = "cost.hours";
export const COST_DAYS_TASK = "cost.days";
/** Hours one run accrues at most (catching up after downtime takes several runs). */
const MAX_HOURS_PER_RUN = 48;
/** Each run recomputes the hour before its mark too: an event may commit a little after the time it carries. */
export const ACCRUAL_LATE_MS = HOUR_MS;

/**
 * Whether a server in `state` costs money: while it runs (a reboot keeps it running), and — for products billed while
 * stopped (e.g. dedicated hosts) — while it stops and is stopped. Pending, terminating and terminated never accrue.
 */
export function accrues(state: ServerState, accruesWhenStopped: boolean): boolean {
  if (state === "RUNNING" || state === "REBOOTING") return true;
  return accruesWhenStopped && (state === "STOPPING" || state === "STOPPED");
}

export interface StateChange {
  fromState: ServerState | null;
  toState: ServerState;
  at: Date;
}

export interface AccrualServer {
  id: string;
  accountId: string;
  budgetCode: string;
  state: ServerState;
  hourlyPriceMicros: bigint;
  accruesWhenStopped: boolean;
  createdAt: Date;
  stateChangedAt: Date;
}

export interface Interval {
  start: number;
  end: number;
}

/**
 * The intervals (ms since the epoch, end exclusive; Infinity while open) in which the server accrued. From its first
 * event's from_state at its creation, through each event's to_state at the event's time, then the row's own state
 * at state_changed_at when the events missed it. With no events, only the current state since state_changed_at counts.
 */
export function accruingIntervals(server: AccrualServer, changes: readonly StateChange[]): Interval[] {
  const segments: { state: ServerState; start: number }[] = [];
  if (changes.length === 0) {
    segments.push({ state: server.state, start: server.stateChangedAt.getTime() });
  } else {
    segments.push({ state: changes[0]?.fromState ?? "PENDING", start: server.createdAt.getTime() });
    for (const c of changes) segments.push({ state: c.toState, start: Math.max(c.at.getTime(), segments.at(-1)?.start ?? 0) });
    const last = segments.at(-1);
    if (last && last.state !== server.state) segments.push({ state: server.state, start: Math.max(server.stateChangedAt.getTime(), last.start) });
  }
  const out: Interval[] = [];
  segments.forEach((seg, i) => {
    if (!accrues(seg.state, server.accruesWhenStopped)) return;
    const end = segments[i + 1]?.start ?? Infinity;
    if (end <= seg.start) return;
    const prev = out.at(-1);
    if (prev && prev.end === seg.start) prev.end = end;
    else out.push({ start: seg.start, end });
  });
  return out;
}

export interface AccrualRow {
  serverId: string;
  periodStart: Date;
  accountId: string;
  budgetCode: string;
  hourlyPriceMicros: bigint;
  accruingMs: number;
  amountMicros: bigint;
}

/** price × time, in micros, rounded down (a row never bills a fraction of a micro-unit). */
export const costOf = (hourlyPriceMicros: bigint, ms: number): bigint => (hourlyPriceMicros * BigInt(ms)) / BigInt(HOUR_MS);

/** The accrual rows of the hours that start in [from, to), counting accruing time before `to` only. */
export function accrualRows(server: AccrualServer, intervals: readonly Interval[], from: Date, to: Date): AccrualRow[] {
  const rows: AccrualRow[] = [];
  const limit = to.getTime();
  for (let h = floorTo(from, HOUR_MS).getTime(); h < limit; h += HOUR_MS) {
    const hourEnd = Math.min(h + HOUR_MS, limit);
    let ms = 0;
    for (const iv of intervals) ms += Math.max(0, Math.min(iv.end, hourEnd) - Math.max(iv.start, h));
    if (ms <= 0) continue;
    rows.push({ serverId: server.id, periodStart: new Date(h), accountId: server.accountId, budgetCode: server.budgetCode, hourlyPriceMicros: server.hourlyPriceMicros, accruingMs: ms, amountMicros: costOf(server.hourlyPriceMicros, ms) });
  }
  return rows;
}

/**
 * The oldest time whose state change an accrual of [from, …) still reads per object: the last change before it gives
 * the state at `from` with the changes after it, and everything older only says how the object got there. A change's
 * id and time are both taken at its INSERT, so a margin of ACCRUAL_LATE_MS keeps every change whose order could differ
 * between the two.
 */
export const historyCutoff = (from: Date): Date => new Date(from.getTime() - ACCRUAL_LATE_MS);

/** Where an object's history starts for a run: the id of its last state change before historyCutoff, if any. */
export interface HistoryStart {
  id: string;
  history_from: bigint | number | string | null;
}

interface ServerRow extends HistoryStart {
  account_id: string;
  budget_code: string;
  state: ServerState;
  hourly_price_micros: bigint | number | string;
  accrues_when_stopped: number | boolean;
  created_at: Date;
  state_changed_at: Date;
}

interface EventRow {
  server_id: string;
  from_state: ServerState | null;
  to_state: ServerState;
  created_at: Date;
}

/** Servers (or resources) per read of an accrual run, and per read of their state changes. */
export const ACCRUAL_CHUNK = 500;

/**
 * Writes the accrual rows of every server for the hours in [from, to) (`to` a whole minute). Servers considered:
 * every one not terminated, and the terminated ones whose state changed since `from`. They are read ACCRUAL_CHUNK at a
 * time in id order (keyset), so that a fleet of any size costs the monitor one chunk of memory. Returns rows written.
 */
export async function accrueRange(provisioning: Sql, analytics: Sql, from: Date, to: Date): Promise<number> {
  return inChunks(
    (after) => provisioning.query<ServerRow>`
      SELECT s.id, s.account_id, s.budget_code, s.state, s.hourly_price_micros, s.accrues_when_stopped, s.created_at, s.state_changed_at,
             (SELECT e.id FROM server_events e WHERE e.server_id = s.id AND e.to_state IS NOT NULL AND e.created_at < ${historyCutoff(from)}
               ORDER BY e.id DESC LIMIT 1) AS history_from
        FROM servers s
       WHERE s.id > ${after} AND s.created_at < ${to} AND (s.state <> 'TERMINATED' OR s.state_changed_at >= ${from})
       ORDER BY s.id LIMIT ${ACCRUAL_CHUNK}`,
    (chunk) => accrueChunk(provisioning, analytics, chunk, from, to),
  );
}

/**
 * Reads rows ACCRUAL_CHUNK at a time in id order — `read(after)` returns the next chunk after id `after` — and sums
 * what `each` returns for each chunk.
 */
export async function inChunks<T extends { id: string }>(read: (after: string) => Promise<T[]>, each: (chunk: T[]) => Promise<number>): Promise<number> {
  let total = 0;
  for (let after = ""; ; ) {
    const chunk = await read(after);
    const last = chunk.at(-1);
    if (!last) return total;
    total += await each(chunk);
    if (chunk.length < ACCRUAL_CHUNK) return total;
    after = last.id;
  }
}

/** accrueRange for one chunk of servers: their state changes, then their rows. */
async function accrueChunk(provisioning: Sql, analytics: Sql, chunk: readonly ServerRow[], from: Date, to: Date): Promise<number> {
  const ranges = chunk.map((s) => (s.history_from === null ? sqlFragment`server_id = ${s.id}` : sqlFragment`(server_id = ${s.id} AND id >= ${s.history_from})`));
  const events = await provisioning.query<EventRow>`
    SELECT server_id, from_state, to_state, created_at FROM server_events
     WHERE (${sqlJoin(ranges, " OR ")}) AND to_state IS NOT NULL AND created_at < ${to}
     ORDER BY server_id, id`;
  const byServer = new Map<string, StateChange[]>();
  for (const e of events) {
    const list = byServer.get(e.server_id) ?? [];
    list.push({ fromState: e.from_state, toState: e.to_state, at: e.created_at });
    byServer.set(e.server_id, list);
  }
  const rows: AccrualRow[] = [];
  for (const s of chunk) {
    const server: AccrualServer = {
      id: s.id,
      accountId: s.account_id,
      budgetCode: s.budget_code,
      state: s.state,
      hourlyPriceMicros: BigInt(s.hourly_price_micros),
      accruesWhenStopped: Boolean(Number(s.accrues_when_stopped)),
      createdAt: s.created_at,
      // A state entered after `to` is not known at `to`.
      stateChangedAt: s.state_changed_at,
    };
    const changes = byServer.get(s.id) ?? [];
    const known = server.stateChangedAt.getTime() < to.getTime() || changes.length > 0 ? accruingIntervals(server, changes) : [];
    rows.push(...accrualRows(server, known, from, to));
  }
  return writeAccruals(analytics, rows);
}

export async function writeAccruals(analytics: Sql, rows: readonly AccrualRow[]): Promise<number> {
  let n = 0;
  for (let i = 0; i < rows.length; i += 1_000) {
    const values = rows
      .slice(i, i + 1_000)
      .map((r) => sqlFragment`(${r.serverId}, ${r.periodStart}, ${r.accountId}, ${r.budgetCode}, ${r.hourlyPriceMicros}, ${r.accruingMs}, ${r.amountMicros}, NOW(3))`);
    n += await analytics.execute`
      INSERT INTO cost_accruals (server_id, period_start, account_id, budget_code, hourly_price_micros, accruing_ms, amount_micros, updated_at)
      VALUES ${sqlJoin(values, ", ")}
      ON DUPLICATE KEY UPDATE account_id = VALUES(account_id), budget_code = VALUES(budget_code), hourly_price_micros = VALUES(hourly_price_micros),
                              accruing_ms = VALUES(accruing_ms), amount_micros = VALUES(amount_micros), updated_at = VALUES(updated_at)`;
  }
  return n;
}

export interface AccrualRun {
  from: Date;
  to: Date;
  more: boolean;
}

/**
 * One accrual run up to the last whole minute before `now`: from (mark − ACCRUAL_LATE_MS), or the start of the month
 * on the very first run, in chunks of at most MAX_HOURS_PER_RUN hours; the mark moves to the start of the hour reached.
 */
export async function runAccrual(provisioning: Sql, analytics: Sql, now: Date): Promise<AccrualRun> {
  const upTo = floorTo(now, MINUTE_MS);
  const mark = await readProgress(analytics, ACCRUAL_TASK);
  const from = mark ? new Date(mark.getTime() - ACCRUAL_LATE_MS) : monthStart(now);
  const to = new Date(Math.min(from.getTime() + MAX_HOURS_PER_RUN * HOUR_MS, upTo.getTime()));
  // The sums made from final hours and days reopen wherever this run rewrites, before it does: a rebuild (the mark
  // cleared or moved back) may run through to the present before any roll-up pass sees the mark back. A steady run
  // rewrites only hours not final yet, and this changes nothing.
  await rewindProgress(analytics, COST_HOURS_TASK, floorTo(from, HOUR_MS));
  await rewindProgress(analytics, COST_DAYS_TASK, floorTo(from, DAY_MS));
  await accrueRange(provisioning, analytics, from, to);
  await saveProgress(analytics, ACCRUAL_TASK, floorTo(to, HOUR_MS));
  return { from, to, more: to.getTime() < upTo.getTime() };
}

/**
 * The start of the first hour an accrual run may still rewrite: runs recompute from their mark less ACCRUAL_LATE_MS,
 * and a run that began before another monitor moved the mark may still be writing the hour before that, so one more
 * hour is kept open. Without a mark (no run yet, or a rebuild) the next run starts at the beginning of `now`'s month.
 * Hours before it are final: what cost-hours.ts and cost-days.ts sum once.
 */
export async function firstOpenHour(analytics: Sql, now: Date): Promise<Date> {
  const mark = await readProgress(analytics, ACCRUAL_TASK);
  return mark ? floorTo(mark.getTime() - ACCRUAL_LATE_MS - HOUR_MS, HOUR_MS) : monthStart(now);
}

/** The first instant of the UTC month of `t`, and of the next month. */
export function monthStart(t: Date): Date {
  return new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), 1));
}

export function nextMonthStart(t: Date): Date {
  return new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth() + 1, 1));
}
