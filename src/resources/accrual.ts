// Cost accrual of resources that cost money (a static address while allocated, a volume while it exists, …) at each
// row's own hourly price (flat, or from its size for storage: hourlyPriceOf in types.ts): the same hourly rows as
// servers' (analytics cost_accruals, keyed by the resource's id), computed from the resource's state history against
// its type's accruing states, so re-running an hour writes the same value.
import { accrualRows, historyCutoff, ACCRUAL_CHUNK, inChunks, writeAccruals, type AccrualRow, type HistoryStart, type Interval } from "../analytics/accrual.js";
import { sqlFragment, sqlJoin, type Sql } from "../db/sql.js";
import { allSpecs, isPriced } from "./types.js";
import { PENDING } from "./model.js";

interface Row extends HistoryStart {
  type: string;
  account_id: string;
  budget_code: string;
  state: string;
  hourly_price_micros: bigint | number | string;
  created_at: Date;
  state_changed_at: Date;
}

interface Change {
  toState: string;
  at: number;
}

/**
 * The intervals (ms, end exclusive; Infinity while open) in which a resource was in an accruing state: from PENDING
 * at its creation through each state change in its history, then the row's own state where the history missed it.
 */
export function resourceIntervals(r: { state: string; createdAt: Date; stateChangedAt: Date }, changes: readonly Change[], accruing: ReadonlySet<string>): Interval[] {
  const segments: { state: string; start: number }[] = [{ state: PENDING, start: r.createdAt.getTime() }];
  for (const c of changes) segments.push({ state: c.toState, start: Math.max(c.at, segments.at(-1)?.start ?? 0) });
  const last = segments.at(-1);
  if (last && last.state !== r.state) segments.push({ state: r.state, start: Math.max(r.stateChangedAt.getTime(), last.start) });
  const out: Interval[] = [];
  segments.forEach((seg, i) => {
    if (!accruing.has(seg.state)) return;
    const end = segments[i + 1]?.start ?? Infinity;
    if (end <= seg.start) return;
    const prev = out.at(-1);
    if (prev && prev.end === seg.start) prev.end = end;
    else out.push({ start: seg.start, end });
  });
  return out;
}

/**
 * Writes the accrual rows of every priced resource for the hours in [from, to), ACCRUAL_CHUNK resources at a time in id
 * order (keyset), each with its history from its last state change before historyCutoff(from). Returns rows written.
 */
export async function accrueResources(provisioning: Sql, analytics: Sql, from: Date, to: Date): Promise<number> {
  const accruingByType = new Map(allSpecs().filter((s) => isPriced(s)).map((s) => [s.type as string, new Set(s.accruingStates)]));
  if (accruingByType.size === 0) return 0;
  return inChunks(
    (after) => provisioning.query<Row>`
      SELECT r.id, r.type, r.account_id, r.budget_code, r.state, r.hourly_price_micros, r.created_at, r.state_changed_at,
             (SELECT e.id FROM resource_events e WHERE e.resource_id = r.id AND e.to_state IS NOT NULL AND e.created_at < ${historyCutoff(from)}
               ORDER BY e.id DESC LIMIT 1) AS history_from
        FROM resources r
       WHERE r.id > ${after} AND r.type IN (${[...accruingByType.keys()]}) AND r.hourly_price_micros > 0 AND r.created_at < ${to}
         AND (r.state <> 'DELETED' OR r.state_changed_at >= ${from})
       ORDER BY r.id LIMIT ${ACCRUAL_CHUNK}`,
    (chunk) => accrueChunk(provisioning, analytics, chunk, accruingByType, from, to),
  );
}

/** accrueResources for one chunk: the chunk's state changes, then its rows. */
async function accrueChunk(provisioning: Sql, analytics: Sql, chunk: readonly Row[], accruingByType: ReadonlyMap<string, ReadonlySet<string>>, from: Date, to: Date): Promise<number> {
  const ranges = chunk.map((r) => (r.history_from === null ? sqlFragment`resource_id = ${r.id}` : sqlFragment`(resource_id = ${r.id} AND id >= ${r.history_from})`));
  const events = await provisioning.query<{ resource_id: string; to_state: string; created_at: Date }>`
    SELECT resource_id, to_state, created_at FROM resource_events
     WHERE (${sqlJoin(ranges, " OR ")}) AND to_state IS NOT NULL AND created_at < ${to} ORDER BY resource_id, id`;
  const byResource = new Map<string, Change[]>();
  for (const e of events) {
    const list = byResource.get(e.resource_id) ?? [];
    list.push({ toState: e.to_state, at: e.created_at.getTime() });
    byResource.set(e.resource_id, list);
  }
  const rows: AccrualRow[] = [];
  for (const r of chunk) {
    const accruing = accruingByType.get(r.type) ?? new Set<string>();
    const intervals = resourceIntervals({ state: r.state, createdAt: r.created_at, stateChangedAt: r.state_changed_at }, byResource.get(r.id) ?? [], accruing);
    const subject = { id: r.id, accountId: r.account_id, budgetCode: r.budget_code, hourlyPriceMicros: BigInt(r.hourly_price_micros) };
    rows.push(...accrualRows({ ...subject, state: "RUNNING", accruesWhenStopped: false, createdAt: r.created_at, stateChangedAt: r.state_changed_at }, intervals, from, to));
  }
  return writeAccruals(analytics, rows);
}

/** What the priced resources accruing now cost per hour, by budget code: budget usage projects the month with it. */
export async function resourceRates(provisioning: Sql): Promise<Map<string, bigint>> {
  const out = new Map<string, bigint>();
  for (const spec of allSpecs()) {
    if (!isPriced(spec) || spec.accruingStates.length === 0) continue;
    const rows = await provisioning.query<{ budget_code: string; micros: string | number | bigint }>`
      SELECT budget_code, SUM(hourly_price_micros) AS micros FROM resources WHERE type = ${spec.type} AND state IN (${spec.accruingStates}) GROUP BY budget_code`;
    for (const r of rows) out.set(r.budget_code, (out.get(r.budget_code) ?? 0n) + BigInt(r.micros));
  }
  return out;
}
