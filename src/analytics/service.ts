// What the analytics API answers: a server's metric series, a fleet summary, and cost reports. Servers and accounts
// follow the caller's account scope (NOT_FOUND outside it, the same answer as for one that does not exist). The
// scope check reads the provisioning database; the figures come from the analytics database, and when that is down
// every method answers UNAVAILABLE (ANALYTICS_UNAVAILABLE).
import { sqlFragment, type Sql, type SqlFragment } from "../db/sql.js";
import { InvalidArgumentError, NotFoundError } from "../errors.js";
import { inScope, type AccountScope } from "../iam/scope.js";
import { monthStart, nextMonthStart } from "./accrual.js";
import { centsOf } from "./budget-usage.js";
import { usageSums } from "./cost-days.js";
import { monthCost } from "./cost-hours.js";
import { METRICS, type MetricName } from "./metrics.js";
import { HOUR_MS } from "./rollup.js";

export type Step = "RAW" | "HOUR" | "DAY";
export type Aggregate = "AVG" | "MIN" | "MAX" | "SUM" | "COUNT";
export type UsageGrouping = "BUDGET_CODE" | "ACCOUNT" | "SERVER";

export interface MetricPoint {
  time: Date;
  value: number;
  count: number;
  min: number;
  max: number;
  avg: number;
  sum: number;
}

export interface MetricsQuery {
  serverId: string;
  start: Date;
  end: Date;
  step: Step;
  aggregate: Aggregate;
  /** Empty: all. */
  metrics: MetricName[];
}

export interface MetricsAnswer {
  series: { metric: MetricName; points: MetricPoint[] }[];
  truncated: boolean;
}

export interface FleetSummary {
  servers: number;
  states: { state: string; count: number }[];
  /** Servers not terminated, by agent state. */
  agents: { state: string; count: number }[];
  hourlyCostMicros: bigint;
  monthToDateCostMicros: bigint;
  cpuPercentLastHour: number;
  samplesLastHour: number;
}

export interface UsageQuery {
  groupBy: UsageGrouping;
  start?: Date | undefined;
  end?: Date | undefined;
  accountId?: string | undefined;
  budgetCode?: string | undefined;
}

export interface UsageRow {
  key: string;
  costMicros: bigint;
  costCents: bigint;
  accruingSeconds: number;
  servers: number;
}

export interface UsageReport {
  rows: UsageRow[];
  totalCostMicros: bigint;
  start: Date;
  end: Date;
}

export interface AnalyticsService {
  queryServerMetrics(scope: AccountScope, query: MetricsQuery): Promise<MetricsAnswer>;
  fleetSummary(scope: AccountScope, accountId?: string): Promise<FleetSummary>;
  reportUsage(scope: AccountScope, query: UsageQuery): Promise<UsageReport>;
}

/** Points one answer carries at most (all series together). */
export const MAX_POINTS = 10_000;

const n = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
const big = (v: unknown): bigint => (v === null || v === undefined ? 0n : BigInt(typeof v === "string" ? v.split(".")[0] ?? "0" : (v as number | bigint)));

/** Agent states in the order the summary lists them (the column's). */
const AGENT_ORDER = ["NONE", "PENDING", "CONNECTED", "UNREACHABLE"];

/** The counts of rows grouped finer, summed by `keyOf`, in the order the keys first appear. */
function sumBy<T extends { n: unknown }>(rows: readonly T[], keyOf: (row: T) => string): { key: string; count: number }[] {
  const sums = new Map<string, number>();
  for (const row of rows) sums.set(keyOf(row), (sums.get(keyOf(row)) ?? 0) + n(row.n));
  return [...sums].map(([key, count]) => ({ key, count }));
}

/** The condition that limits rows to the accounts of `scope` (and `accountId` when given); null: nothing can match. */
function accountCondition(scope: AccountScope, accountId: string | undefined): SqlFragment | null {
  if (accountId) return sqlFragment`account_id = ${accountId}`;
  if (scope.all) return sqlFragment`1 = 1`;
  return scope.accountIds.length > 0 ? sqlFragment`account_id IN (${scope.accountIds})` : null;
}

export function createAnalyticsService(deps: { provisioning: Sql; analytics: Sql; now?: () => Date }): AnalyticsService {
  const { provisioning, analytics } = deps;
  const now = deps.now ?? (() => new Date());

  async function requireAccount(scope: AccountScope, accountId: string): Promise<void> {
    const rows = inScope(scope, accountId) ? await provisioning.query`SELECT 1 AS n FROM accounts WHERE id = ${accountId}` : [];
    if (rows.length === 0) throw new NotFoundError("account", accountId);
  }

  return {
    async queryServerMetrics(scope, q) {
      if (q.end.getTime() <= q.start.getTime()) throw InvalidArgumentError.field("end_time", "must be after start_time");
      const found = await provisioning.query<{ account_id: string }>`SELECT account_id FROM servers WHERE id = ${q.serverId}`;
      if (!found[0] || !inScope(scope, found[0].account_id)) throw new NotFoundError("server", q.serverId);
      const metrics: MetricName[] = q.metrics.length > 0 ? q.metrics : [...METRICS];
      if (q.step === "RAW") return rawSeries(analytics, q, metrics);
      const rows = await analytics.query<{ metric: MetricName; bucket_start: Date; count: unknown; sum: unknown; min: unknown; max: unknown; avg: unknown }>`
        SELECT metric, bucket_start, count, sum, min, max, avg FROM server_metric_rollups
         WHERE server_id = ${q.serverId} AND resolution = ${q.step} AND metric IN (${metrics}) AND bucket_start >= ${q.start} AND bucket_start < ${q.end}
         ORDER BY metric, bucket_start LIMIT ${MAX_POINTS + 1}`;
      const series = new Map<MetricName, MetricPoint[]>(metrics.map((m) => [m, []]));
      for (const r of rows.slice(0, MAX_POINTS)) {
        const p = { time: r.bucket_start, count: n(r.count), min: n(r.min), max: n(r.max), avg: n(r.avg), sum: n(r.sum) };
        const value = { AVG: p.avg, MIN: p.min, MAX: p.max, SUM: p.sum, COUNT: p.count }[q.aggregate];
        series.get(r.metric)?.push({ ...p, value });
      }
      return { series: [...series].map(([metric, points]) => ({ metric, points })), truncated: rows.length > MAX_POINTS };
    },

    async fleetSummary(scope, accountId) {
      if (accountId) await requireAccount(scope, accountId);
      const where = accountCondition(scope, accountId);
      const empty: FleetSummary = { servers: 0, states: [], agents: [], hourlyCostMicros: 0n, monthToDateCostMicros: 0n, cpuPercentLastHour: 0, samplesLastHour: 0 };
      if (!where) return empty;
      const t = now();
      // One pass over the servers: by state and agent state, summed both ways below.
      const groups = await provisioning.query<{ state: string; agent: string; n: unknown; rate: unknown }>`
        SELECT state, agent_state AS agent, COUNT(*) AS n,
               SUM(CASE WHEN state IN ('RUNNING', 'REBOOTING') OR (accrues_when_stopped AND state IN ('STOPPING', 'STOPPED')) THEN hourly_price_micros ELSE 0 END) AS rate
          FROM servers WHERE ${where} GROUP BY state, agent_state ORDER BY state, agent_state`;
      const states = sumBy(groups, (g) => g.state);
      const agents = sumBy(groups.filter((g) => g.state !== "TERMINATED"), (g) => g.agent).sort((a, b) => AGENT_ORDER.indexOf(a.key) - AGENT_ORDER.indexOf(b.key));
      const cost = await monthCost(analytics, t, { by: "account_id", accounts: where });
      const since = new Date(t.getTime() - HOUR_MS);
      let cpu: { n: unknown; a: unknown }[];
      if (scope.all && !accountId) {
        cpu = await analytics.query`SELECT COUNT(cpu_percent) AS n, AVG(cpu_percent) AS a FROM server_metric_samples WHERE time >= ${since}`;
      } else {
        const ids = (await provisioning.query<{ id: string }>`SELECT id FROM servers WHERE ${where}`).map((r) => r.id);
        cpu = ids.length === 0 ? [] : await analytics.query`SELECT COUNT(cpu_percent) AS n, AVG(cpu_percent) AS a FROM server_metric_samples WHERE time >= ${since} AND server_id IN (${ids})`;
      }
      return {
        servers: states.reduce((sum, s) => sum + s.count, 0),
        states: states.map(({ key, count }) => ({ state: key, count })),
        agents: agents.map(({ key, count }) => ({ state: key, count })),
        hourlyCostMicros: groups.reduce((sum, g) => sum + big(g.rate), 0n),
        monthToDateCostMicros: [...cost.values()].reduce((sum, micros) => sum + micros, 0n),
        cpuPercentLastHour: n(cpu[0]?.a),
        samplesLastHour: n(cpu[0]?.n),
      };
    },

    async reportUsage(scope, q) {
      const t = now();
      const start = q.start ?? monthStart(t);
      const end = q.end ?? nextMonthStart(t);
      if (end.getTime() <= start.getTime()) throw InvalidArgumentError.field("end_time", "must be after start_time");
      if (q.accountId) await requireAccount(scope, q.accountId);
      const where = accountCondition(scope, q.accountId);
      if (!where) return { rows: [], totalCostMicros: 0n, start, end };
      const conditions = [where];
      if (q.budgetCode) conditions.push(sqlFragment`budget_code = ${q.budgetCode}`);
      const key = { BUDGET_CODE: sqlFragment`budget_code`, ACCOUNT: sqlFragment`account_id`, SERVER: sqlFragment`server_id` }[q.groupBy];
      const sums = await usageSums(analytics, { key, where: conditions, start, end });
      const out = sums.map((r) => ({ key: r.key, costMicros: r.micros, costCents: centsOf(r.micros), accruingSeconds: Math.round(r.accruingMs / 1000), servers: r.servers }));
      return { rows: out, totalCostMicros: out.reduce((sum, r) => sum + r.costMicros, 0n), start, end };
    },
  };
}

async function rawSeries(analytics: Sql, q: MetricsQuery, metrics: MetricName[]): Promise<MetricsAnswer> {
  // One row per sample carries every metric: the row limit keeps the answer under MAX_POINTS points.
  const limit = Math.max(1, Math.floor(MAX_POINTS / metrics.length));
  const rows = await analytics.query<Record<MetricName, unknown> & { time: Date }>`
    SELECT time, cpu_percent, memory_used_bytes, memory_total_bytes, disk_used_bytes, disk_total_bytes, network_in_bytes, network_out_bytes
      FROM server_metric_samples WHERE server_id = ${q.serverId} AND time >= ${q.start} AND time < ${q.end}
     ORDER BY time LIMIT ${limit + 1}`;
  const series = metrics.map((metric) => ({
    metric,
    points: rows
      .slice(0, limit)
      .filter((r) => r[metric] !== null && r[metric] !== undefined)
      .map((r) => {
        const v = Number(r[metric]);
        return { time: r.time, value: v, count: 1, min: v, max: v, avg: v, sum: v };
      }),
  }));
  return { series, truncated: rows.length > limit };
}
