// dispatcher.v1 AnalyticsService over gRPC: request validation, the caller's account scope, proto ⇄ domain mapping.
import { AnalyticsServiceService as A, Metric, MetricAggregate, MetricStep, UsageGrouping } from "../gen/proto/dispatcher/v1/analytics.js";
import { scopeOf } from "../iam/scope.js";
import { BUDGET_CODE_RULES } from "../provisioning/mapper.js";
import { defineService, unary, type RpcService } from "../rpc/adapter.js";
import { ID_RULES, validateOne } from "../rpc/validate.js";
import type { MetricName } from "./metrics.js";
import { DAY_MS, HOUR_MS } from "./rollup.js";
import type { Aggregate, AnalyticsService, Step, UsageGrouping as Grouping } from "./service.js";

export const METRIC_NAMES: Readonly<Record<number, MetricName>> = {
  [Metric.METRIC_CPU_PERCENT]: "cpu_percent",
  [Metric.METRIC_MEMORY_USED_BYTES]: "memory_used_bytes",
  [Metric.METRIC_MEMORY_TOTAL_BYTES]: "memory_total_bytes",
  [Metric.METRIC_DISK_USED_BYTES]: "disk_used_bytes",
  [Metric.METRIC_DISK_TOTAL_BYTES]: "disk_total_bytes",
  [Metric.METRIC_NETWORK_IN_BYTES]: "network_in_bytes",
  [Metric.METRIC_NETWORK_OUT_BYTES]: "network_out_bytes",
};
const METRIC_OF = Object.fromEntries(Object.entries(METRIC_NAMES).map(([k, v]) => [v, Number(k) as Metric])) as Record<MetricName, Metric>;
const STEPS: Readonly<Record<number, Step>> = { [MetricStep.METRIC_STEP_RAW]: "RAW", [MetricStep.METRIC_STEP_HOUR]: "HOUR", [MetricStep.METRIC_STEP_DAY]: "DAY" };
const AGGREGATES: Readonly<Record<number, Aggregate>> = {
  [MetricAggregate.METRIC_AGGREGATE_AVG]: "AVG",
  [MetricAggregate.METRIC_AGGREGATE_MIN]: "MIN",
  [MetricAggregate.METRIC_AGGREGATE_MAX]: "MAX",
  [MetricAggregate.METRIC_AGGREGATE_SUM]: "SUM",
  [MetricAggregate.METRIC_AGGREGATE_COUNT]: "COUNT",
};
const GROUPINGS: Readonly<Record<number, Grouping>> = {
  [UsageGrouping.USAGE_GROUPING_BUDGET_CODE]: "BUDGET_CODE",
  [UsageGrouping.USAGE_GROUPING_ACCOUNT]: "ACCOUNT",
  [UsageGrouping.USAGE_GROUPING_SERVER]: "SERVER",
};
/** The range a metrics query covers when it names no start: enough points to draw, few enough to send. */
const DEFAULT_RANGE_MS: Readonly<Record<Step, number>> = { RAW: HOUR_MS, HOUR: DAY_MS, DAY: 30 * DAY_MS };

export function analyticsHandlers(service: AnalyticsService, now: () => Date = () => new Date()): RpcService {
  return defineService(A, {
    queryServerMetrics: unary(A.queryServerMetrics, async (req, ctx) => {
      const q = validateOne((v) => {
        const step = v.enumValue("step", req.step, STEPS) ?? "RAW";
        const end = req.endTime ?? now();
        const metrics = req.metrics.map((m, i) => v.enumValue(`metrics[${i}]`, m, METRIC_NAMES)).filter((m): m is MetricName => m !== undefined);
        return {
          serverId: v.string("server_id", req.serverId, ID_RULES),
          step,
          aggregate: v.optionalEnum("aggregate", req.aggregate, AGGREGATES) ?? "AVG",
          end,
          start: req.startTime ?? new Date(end.getTime() - DEFAULT_RANGE_MS[step]),
          metrics: [...new Set(metrics)],
        };
      });
      const answer = await service.queryServerMetrics(scopeOf(ctx.principal), q);
      return { series: answer.series.map((s) => ({ metric: METRIC_OF[s.metric], points: s.points.map((p) => ({ ...p, count: String(p.count) })) })), truncated: answer.truncated };
    }),
    fleetSummary: unary(A.fleetSummary, async (req, ctx) => {
      const accountId = validateOne((v) => v.optionalString("account_id", req.accountId, ID_RULES));
      const s = await service.fleetSummary(scopeOf(ctx.principal), accountId || undefined);
      return {
        servers: String(s.servers),
        states: s.states.map((x) => ({ state: x.state, count: String(x.count) })),
        agents: s.agents.map((x) => ({ state: x.state, count: String(x.count) })),
        hourlyCostMicros: s.hourlyCostMicros.toString(),
        monthToDateCostMicros: s.monthToDateCostMicros.toString(),
        cpuPercentLastHour: s.cpuPercentLastHour,
        samplesLastHour: String(s.samplesLastHour),
      };
    }),
    reportUsage: unary(A.reportUsage, async (req, ctx) => {
      const q = validateOne((v) => ({
        groupBy: v.enumValue("group_by", req.groupBy, GROUPINGS) ?? "BUDGET_CODE",
        start: req.startTime,
        end: req.endTime,
        accountId: v.optionalString("account_id", req.accountId, ID_RULES) || undefined,
        budgetCode: v.optionalString("budget_code", req.budgetCode, BUDGET_CODE_RULES) || undefined,
      }));
      const r = await service.reportUsage(scopeOf(ctx.principal), q);
      return {
        rows: r.rows.map((x) => ({ key: x.key, costMicros: x.costMicros.toString(), costCents: x.costCents.toString(), accruingSeconds: String(x.accruingSeconds), servers: String(x.servers) })),
        totalCostMicros: r.totalCostMicros.toString(),
        startTime: r.start,
        endTime: r.end,
      };
    }),
  });
}
