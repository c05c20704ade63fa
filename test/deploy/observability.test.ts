// deploy/observability: promtool accepts the Prometheus configuration and the alert rules; every expression of the
// rules and of the Grafana dashboard names only metrics the service exports; each alert has its runbook entry in
// docs/operations.md; the scrape jobs use the roles' default metrics ports; compose runs Prometheus, Grafana and
// Jaeger beside the roles with the files mounted that exist here.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { METRIC } from "../../src/telemetry/metrics.js";
import { DEFAULT_METRICS_PORTS } from "../../src/telemetry/metrics-server.js";
import { ROOT } from "../support/process.js";

const DIR = join(ROOT, "deploy", "observability");
const PROMTOOL = "/usr/bin/promtool";

interface Rule {
  alert: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const rules = (parse(readFileSync(join(DIR, "alerts.yml"), "utf8")) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(readFileSync(join(DIR, "grafana", "dashboards", "dispatcher.json"), "utf8")) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
const operations = readFileSync(join(ROOT, "docs", "operations.md"), "utf8");

/** The Prometheus names the service exports: histograms as _bucket/_sum/_count, counters with _total. */
function exportedNames(): Set<string> {
  const histograms = new Set<string>([METRIC.rpcDuration, METRIC.jobWait, METRIC.jobRun, METRIC.kmDuration, METRIC.driverDuration, METRIC.gcDuration]);
  const counters = new Set<string>([METRIC.jobsCreated, METRIC.jobsStarted, METRIC.jobsSucceeded, METRIC.jobsFailed, METRIC.jobsCancelled, METRIC.jobsRetried, METRIC.jobsDeadLettered, METRIC.kmAuditFailures, METRIC.agentChannelsClosed]);
  const names = new Set<string>(["up"]);
  for (const otel of Object.values(METRIC)) {
    const name = otel.replace(/\./g, "_");
    if (histograms.has(otel)) for (const suffix of ["_bucket", "_sum", "_count"]) names.add(name + suffix);
    else names.add(counters.has(otel) ? `${name}_total` : name);
  }
  return names;
}

const KEYWORDS = new Set(["by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool", "offset", "inf", "nan"]);

/** The metric names a PromQL expression selects: identifiers that are not functions, keywords, labels or strings. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  return [...bare.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)].filter((m) => !m[2] && !KEYWORDS.has((m[1] as string).toLowerCase())).map((m) => m[1] as string);
}

describe("deploy/observability", () => {
  it("promtool accepts the scrape configuration and the alert rules", () => {
    expect(existsSync(PROMTOOL), `${PROMTOOL} is missing: install Debian's prometheus package (.ci/run does)`).toBe(true);
    const rulesOut = execFileSync(PROMTOOL, ["check", "rules", join(DIR, "alerts.yml")], { encoding: "utf8" });
    expect(rulesOut).toContain(`SUCCESS: ${rules.length} rules found`);
    const configOut = execFileSync(PROMTOOL, ["check", "config", join(DIR, "prometheus.yml")], { encoding: "utf8" });
    expect(configOut).toContain("is valid prometheus config file syntax");
  });

  it("alerts on stuck jobs, outbox lag, dead letters, KM audit failures, driver errors, offline agents and too few agent channels", () => {
    const byName = new Map(rules.map((r) => [r.alert, r]));
    for (const [alert, metric] of [
      ["DispatcherJobsStuckPastTimeout", "dispatcher_jobs_overdue"],
      ["DispatcherOutboxLag", "dispatcher_outbox_oldest_age"],
      ["DispatcherDeadLettersGrowing", "dispatcher_jobs_dead_lettered_total"],
      ["DispatcherKmAuditFailures", "dispatcher_km_audit_failures_total"],
      ["DispatcherDriverErrorRatio", "dispatcher_driver_duration_count"],
      ["DispatcherAgentsOffline", "dispatcher_agents"],
      ["DispatcherAgentChannelsOverBound", "dispatcher_agent_channels_closed_total"],
    ] as const) {
      expect(metricNames(byName.get(alert)?.expr ?? ""), alert).toContain(metric);
    }
  });

  it("names only exported metrics in every rule and dashboard expression", () => {
    const exported = exportedNames();
    const exprs = [...rules.map((r) => [r.alert, r.expr] as const), ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => [p.title, t.expr] as const))];
    expect(exprs.length).toBeGreaterThan(25);
    for (const [where, expr] of exprs) {
      const names = metricNames(expr);
      expect(names.length, `${where}: no metric in ${expr}`).toBeGreaterThan(0);
      for (const name of names) expect(exported.has(name), `${where}: ${name} is not a metric the service exports`).toBe(true);
    }
    // The extraction itself: functions, labels, keywords and durations are not metric names.
    expect(metricNames('histogram_quantile(0.99, sum by (le, job_kind) (rate(a_bucket{x="y"}[5m]))) / ignoring(z) b > 0')).toEqual(["a_bucket", "b"]);
  });

  it("has a runbook entry per alert in docs/operations.md, linked from the alert", () => {
    for (const rule of rules) {
      const anchor = rule.alert.toLowerCase();
      expect(operations, rule.alert).toMatch(new RegExp(`^## ${rule.alert}$`, "m"));
      expect(rule.annotations?.runbook, rule.alert).toBe(`docs/operations.md#${anchor}`);
      expect(rule.labels?.severity, rule.alert).toMatch(/^(critical|warning)$/);
      const entry = operations.slice(operations.indexOf(`## ${rule.alert}`)).split(/\n## /)[0] as string;
      for (const part of ["What it means", "What to look at", "What to do"]) expect(entry, `${rule.alert}: ${part}`).toContain(part);
    }
  });

  it("scrapes each role on its default metrics port", () => {
    const config = parse(readFileSync(join(DIR, "prometheus.yml"), "utf8")) as { rule_files: string[]; scrape_configs: Array<{ job_name: string; dns_sd_configs: Array<{ names: string[]; port: number }> }> };
    expect(config.rule_files).toEqual(["alerts.yml"]);
    const ports = Object.fromEntries(config.scrape_configs.map((s) => [s.job_name, s.dns_sd_configs[0]?.port]));
    expect(ports).toEqual(Object.fromEntries(DEFAULT_METRICS_PORTS));
  });

  it("compose runs Prometheus, Grafana and Jaeger beside the roles, with the files it mounts", () => {
    const compose = parse(readFileSync(join(ROOT, "deploy", "compose.yaml"), "utf8").replace(/\$\{(\w+):\?[^}]*\}/g, "x"), { merge: true }) as { services: Record<string, { image?: string; volumes?: string[] }> };
    for (const name of ["prometheus", "grafana", "jaeger", "dispatcher", "worker", "monitor", "km"]) expect(compose.services[name], name).toBeDefined();
    for (const name of ["prometheus", "grafana"]) {
      for (const volume of compose.services[name]?.volumes ?? []) {
        const source = volume.split(":")[0] as string;
        if (source.startsWith("./")) expect(existsSync(join(ROOT, "deploy", source)), `${name}: ${source}`).toBe(true);
      }
    }
  });
});
