// `dispatcher budgets usage` and `dispatcher servers metrics <id>` (and `dispatcher servers fleet`): cost reports and
// metric series through the AnalyticsService, as a table, CSV (--csv) or JSON (--json). The `budgets` and `servers`
// commands may already exist (their other subcommands live in their own files): these are added to them.
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import { Metric, MetricAggregate, MetricStep, UsageGrouping } from "../gen/proto/dispatcher/v1/analytics.js";
import { json, optionalAccountIdOf, parseTime, table, time, withClient, type ClientCommandOptions } from "./client-command.js";

export interface OutputOptions extends ClientCommandOptions {
  csv?: boolean | undefined;
}

/** RFC 4180: quote a cell that holds a comma, a quote or a line break. */
export function csv(header: string[], rows: string[][]): string {
  const cell = (c: string): string => (/[",\r\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c);
  return [header, ...rows].map((r) => r.map(cell).join(",")).join("\n") + "\n";
}

const GROUPINGS: Record<string, UsageGrouping> = {
  "budget-code": UsageGrouping.USAGE_GROUPING_BUDGET_CODE,
  account: UsageGrouping.USAGE_GROUPING_ACCOUNT,
  server: UsageGrouping.USAGE_GROUPING_SERVER,
};
const STEPS: Record<string, MetricStep> = { raw: MetricStep.METRIC_STEP_RAW, hour: MetricStep.METRIC_STEP_HOUR, day: MetricStep.METRIC_STEP_DAY };
const AGGREGATES: Record<string, MetricAggregate> = {
  avg: MetricAggregate.METRIC_AGGREGATE_AVG,
  min: MetricAggregate.METRIC_AGGREGATE_MIN,
  max: MetricAggregate.METRIC_AGGREGATE_MAX,
  sum: MetricAggregate.METRIC_AGGREGATE_SUM,
  count: MetricAggregate.METRIC_AGGREGATE_COUNT,
};
const METRICS: Record<string, Metric> = {
  cpu_percent: Metric.METRIC_CPU_PERCENT,
  memory_used_bytes: Metric.METRIC_MEMORY_USED_BYTES,
  memory_total_bytes: Metric.METRIC_MEMORY_TOTAL_BYTES,
  disk_used_bytes: Metric.METRIC_DISK_USED_BYTES,
  disk_total_bytes: Metric.METRIC_DISK_TOTAL_BYTES,
  network_in_bytes: Metric.METRIC_NETWORK_IN_BYTES,
  network_out_bytes: Metric.METRIC_NETWORK_OUT_BYTES,
};
const METRIC_NAME = Object.fromEntries(Object.entries(METRICS).map(([k, v]) => [v, k])) as Record<Metric, string>;

/** Parses one of `table_`'s names; the type admits the default's name too (see picked). */
const choice =
  <T>(what: string, table_: Record<string, T>) =>
  (value: string): T | string => {
    const v = table_[value.toLowerCase()];
    if (v === undefined) throw new CommanderInvalidArgument(`unknown ${what} "${value}" (one of: ${Object.keys(table_).join(", ")})`);
    return v;
  };

/** An option's value: parsed when given, the default's name (shown in --help) when not. */
const picked = <T>(value: T | string, table_: Record<string, T>): T => (typeof value === "string" ? (table_[value] as T) : value);

const money = (micros: string): string => (Number(micros) / 1e6).toFixed(4);

export interface UsageOptions extends OutputOptions {
  groupBy: UsageGrouping;
  from?: Date | undefined;
  to?: Date | undefined;
  account?: string | undefined;
  budgetCode?: string | undefined;
}

export async function runBudgetsUsage(options: UsageOptions): Promise<number> {
  return withClient("budgets usage", options, async (c, io) => {
    const r = await c.analytics.reportUsage({ groupBy: options.groupBy, startTime: options.from, endTime: options.to, accountId: await optionalAccountIdOf(c, options.account), budgetCode: options.budgetCode ?? "" });
    const header = [options.groupBy === UsageGrouping.USAGE_GROUPING_SERVER ? "SERVER" : options.groupBy === UsageGrouping.USAGE_GROUPING_ACCOUNT ? "ACCOUNT" : "BUDGET CODE", "COST", "CENTS", "ACCRUING HOURS", "SERVERS"];
    const rows = r.rows.map((x) => [x.key, money(x.costMicros), x.costCents, (Number(x.accruingSeconds) / 3600).toFixed(2), x.servers]);
    if (options.json) io.out(json({ start: r.startTime?.toISOString(), end: r.endTime?.toISOString(), totalCostMicros: r.totalCostMicros, rows: r.rows }));
    else if (options.csv) io.out(csv(header.map((h) => h.toLowerCase().replace(/ /g, "_")), rows));
    else {
      io.out(table(header, rows));
      io.out(`total ${money(r.totalCostMicros)} from ${time(r.startTime)} to ${time(r.endTime)}\n`);
    }
    return 0;
  });
}

export interface MetricsOptions extends OutputOptions {
  step: MetricStep;
  aggregate: MetricAggregate;
  from?: Date | undefined;
  to?: Date | undefined;
  metrics: Metric[];
}

export async function runServerMetrics(serverId: string, options: MetricsOptions): Promise<number> {
  return withClient("servers metrics", options, async (c, io) => {
    const r = await c.analytics.queryServerMetrics({ serverId, step: options.step, aggregate: options.aggregate, startTime: options.from, endTime: options.to, metrics: options.metrics });
    const header = ["time", "metric", "value", "count", "min", "max", "avg", "sum"];
    const rows = r.series.flatMap((s) => s.points.map((p) => [p.time?.toISOString() ?? "", METRIC_NAME[s.metric] ?? String(s.metric), String(p.value), p.count, String(p.min), String(p.max), String(p.avg), String(p.sum)]));
    if (options.json) io.out(json({ series: r.series.map((s) => ({ metric: METRIC_NAME[s.metric], points: s.points })), truncated: r.truncated }));
    else if (options.csv) io.out(csv(header, rows));
    else io.out(table(header.map((h) => h.toUpperCase()), rows.map((row) => [time(new Date(row[0] ?? "")), ...row.slice(1)])));
    if (r.truncated) io.err("more points than one answer holds: shorten the range (--from/--to) or use a coarser --step\n");
    return 0;
  });
}

export async function runFleetSummary(options: OutputOptions & { account?: string | undefined }): Promise<number> {
  return withClient("servers fleet", options, async (c, io) => {
    const s = await c.analytics.fleetSummary({ accountId: await optionalAccountIdOf(c, options.account) });
    if (options.json) {
      io.out(json(s));
      return 0;
    }
    const rows = [
      ["servers", s.servers],
      ...s.states.map((x) => [`  ${x.state.toLowerCase()}`, x.count]),
      ["agents", s.agents.map((x) => `${x.count} ${x.state.toLowerCase()}`).join(" · ") || "-"],
      ["cost per hour", money(s.hourlyCostMicros)],
      ["month to date", money(s.monthToDateCostMicros)],
      ["cpu % last hour", `${s.cpuPercentLastHour.toFixed(1)} (${s.samplesLastHour} samples)`],
    ];
    io.out(options.csv ? csv(["field", "value"], rows) : table(["", ""], rows));
    return 0;
  });
}

/** The existing subcommand group `name`, or a new one: other files may have registered it first. */
function group(program: Command, name: string, description: string): Command {
  return program.commands.find((c) => c.name() === name) ?? program.command(name).description(description).option("-a, --address <host:port>", "dispatcher to call (default: client.address)");
}

export function addAnalyticsCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const budgets = group(program, "budgets", "budget codes through the dispatcher API (client.address, client.token)");
  const servers = group(program, "servers", "servers through the dispatcher API (client.address, client.token)");
  const common = (parent: Command, cmd: Command) => ({
    configFile: configFile(),
    address: parent.opts<{ address?: string }>().address,
    json: cmd.opts<{ json?: boolean }>().json,
    csv: cmd.opts<{ csv?: boolean }>().csv,
  });

  budgets
    .command("usage")
    .description("cost accrued over a period (default: this month, UTC), per budget code, account or server")
    .option("-g, --group-by <grouping>", "budget-code, account or server", choice("grouping", GROUPINGS), "budget-code")
    .option("--from <time>", "start of the period (ISO 8601)", parseTime)
    .option("--to <time>", "end of the period, exclusive (ISO 8601)", parseTime)
    .option("--account <id|name>", "only this account")
    .option("--budget-code <code>", "only this budget code")
    .option("--csv", "CSV instead of a table", false)
    .option("--json", "one JSON object instead of a table", false)
    .action(async (opts: { groupBy: UsageGrouping | string; from?: Date; to?: Date; account?: string; budgetCode?: string }, cmd: Command) =>
      setExit(await runBudgetsUsage({ ...common(budgets, cmd), ...opts, groupBy: picked(opts.groupBy, GROUPINGS) })),
    );

  servers
    .command("metrics <id>")
    .description("a server's metrics: raw samples, or hourly/daily aggregates")
    .option("-s, --step <step>", "raw, hour or day", choice("step", STEPS), "raw")
    .option("--aggregate <aggregate>", "value of hour/day points: avg, min, max, sum or count", choice("aggregate", AGGREGATES), "avg")
    .option("-m, --metric <metric>", `a metric to show (repeatable; default all): ${Object.keys(METRICS).join(", ")}`, (v: string, prev: Metric[] = []) => [...prev, picked(choice("metric", METRICS)(v), METRICS)])
    .option("--from <time>", "start of the range (ISO 8601; default: an hour, a day or 30 days back by step)", parseTime)
    .option("--to <time>", "end of the range, exclusive (ISO 8601; default now)", parseTime)
    .option("--csv", "CSV instead of a table", false)
    .option("--json", "one JSON object instead of a table", false)
    .action(async (id: string, opts: { step: MetricStep | string; aggregate: MetricAggregate | string; metric?: Metric[]; from?: Date; to?: Date }, cmd: Command) =>
      setExit(
        await runServerMetrics(id, { ...common(servers, cmd), step: picked(opts.step, STEPS), aggregate: picked(opts.aggregate, AGGREGATES), metrics: opts.metric ?? [], from: opts.from, to: opts.to }),
      ),
    );

  servers
    .command("fleet")
    .description("servers by state, their cost per hour and this month, and recent CPU, for one account or all in scope")
    .option("--account <id|name>", "only this account")
    .option("--csv", "CSV instead of a table", false)
    .option("--json", "one JSON object instead of a table", false)
    .action(async (opts: { account?: string }, cmd: Command) => setExit(await runFleetSummary({ ...common(servers, cmd), account: opts.account })));
}
