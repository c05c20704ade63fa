// AnalyticsService over a real gRPC server: metric series and cost reports scoped like servers (NOT_FOUND outside the
// caller's accounts), the CLI's CSV; and an unreachable analytics database: the metrics RPCs answer UNAVAILABLE, server
// info says analytics is down, the monitor's tasks only warn, and a real `dispatcher start` serves and launches nothing
// less for it.
import { status } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { runAccrual } from "../../src/analytics/accrual.js";
import { createAnalyticsSql } from "../../src/analytics/db.js";
import { ingestSamples } from "../../src/analytics/metrics.js";
import { rollUpDays, rollUpHours } from "../../src/analytics/rollup.js";
import { analyticsRpcServices } from "../../src/analytics/rpc-services.js";
import { startAnalyticsTasks } from "../../src/analytics/tasks.js";
import { createDispatcherClients, DispatcherError, type DispatcherClients } from "../../src/client/index.js";
import { csv } from "../../src/commands/analytics.js";
import { loadConfig } from "../../src/config.js";
import { Metric, MetricAggregate, MetricStep, UsageGrouping } from "../../src/gen/proto/dispatcher/v1/analytics.js";
import { DiagnosticOutcome, JobState } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { AccountStatus } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import { createLogger } from "../../src/log.js";
import type { Principal } from "../../src/iam/principal.js";
import { systemHandlers } from "../../src/system/handlers.js";
import { createSystemService } from "../../src/system/service.js";
import { startTestServer, type TestServer } from "../rpc/fixtures.js";
import { bootstrapToken, createTestEnv, freePort, killStrayDispatchers, startDispatcher, type TestEnv } from "../support/process.js";
import { HOUR, insertAccount, insertBudgetCode, insertServer, MINUTE, openAnalyticsFixture, type AnalyticsFixture } from "./support.js";
import { runCli, type CliRun } from "../support/cli.js";
import { until } from "../support/poll.js";

let f: AnalyticsFixture;
let server: TestServer;
let otherAccount = "";
const ids = { mine: "", theirs: "" };
const open: DispatcherClients[] = [];
const T0 = Date.UTC(2026, 10, 24, 8);
const NOW = new Date(T0 + 3 * HOUR + 30 * MINUTE);

const principals = (): Record<string, Principal> => ({
  admin: { id: "u-admin", kind: "user", roles: ["admin"], displayName: "admin" },
  mine: { id: "u-mine", kind: "user", roles: ["reader"], displayName: "reader of one account", accountIds: [f.accountId] },
  none: { id: "u-none", kind: "user", roles: ["reader"], displayName: "reader of nothing", accountIds: [] },
});

function client(token: string, address = server.address): DispatcherClients {
  const c = createDispatcherClients({ address, token, retry: false });
  open.push(c);
  return c;
}

beforeAll(async () => {
  f = await openAnalyticsFixture("anl_api");
  otherAccount = await insertAccount(f.sql);
  await insertBudgetCode(f.sql, "B-1", { hard: 1_000_000n, soft: 0n });
  const mine = await insertServer(f.sql, { accountId: f.accountId, budgetCode: "B-1", hourlyPriceMicros: 600_000n, createdAt: new Date(T0) });
  const theirs = await insertServer(f.sql, { accountId: otherAccount, budgetCode: "B-1", hourlyPriceMicros: 60_000n, createdAt: new Date(T0) });
  ids.mine = mine.id;
  ids.theirs = theirs.id;
  await mine.change("RUNNING", new Date(T0 + HOUR));
  await theirs.change("RUNNING", new Date(T0 + HOUR));
  await ingestSamples(
    f.analytics,
    Array.from({ length: 12 }, (_, i) => ({ serverId: ids.mine, time: new Date(T0 + i * 10 * MINUTE), cpuPercent: i * 10, memoryUsedBytes: 1_000 + i, networkInBytes: 5 })),
  );
  await rollUpHours(f.analytics, new Date(T0), NOW);
  await rollUpDays(f.analytics, new Date(T0), NOW);
  for (let more = true; more; ) more = (await runAccrual(f.sql, f.analytics, NOW)).more;
  const p = principals();
  const analytics = analyticsRpcServices({ provisioning: f.sql, analytics: f.analytics, now: () => NOW });
  server = await startTestServer({
    services: [systemHandlers(createSystemService({ roles: ["dispatcher"], analytics: analytics.status })), ...analytics.services],
    authenticate: async (token) => p[token] ?? null,
  });
});

afterAll(async () => {
  for (const c of open) c.close();
  await server?.stop();
  await f?.close();
});

const code = (e: unknown): number | undefined => (e instanceof DispatcherError ? e.code : undefined);

describe("AnalyticsService", () => {
  it("returns raw samples and hourly aggregates of a server in scope", async () => {
    const raw = await client("mine").analytics.queryServerMetrics({ serverId: ids.mine, startTime: new Date(T0), endTime: NOW, step: MetricStep.METRIC_STEP_RAW, metrics: [Metric.METRIC_CPU_PERCENT] });
    expect(raw.series).toHaveLength(1);
    expect(raw.series[0]?.points.map((p) => p.value)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110]);
    const hourly = await client("mine").analytics.queryServerMetrics({
      serverId: ids.mine,
      startTime: new Date(T0),
      endTime: NOW,
      step: MetricStep.METRIC_STEP_HOUR,
      aggregate: MetricAggregate.METRIC_AGGREGATE_MAX,
      metrics: [Metric.METRIC_CPU_PERCENT, Metric.METRIC_NETWORK_IN_BYTES, Metric.METRIC_DISK_USED_BYTES],
    });
    const byMetric = Object.fromEntries(hourly.series.map((s) => [s.metric, s.points]));
    expect(byMetric[Metric.METRIC_CPU_PERCENT]?.map((p) => [p.value, p.count, p.avg])).toEqual([
      [50, "6", 25],
      [110, "6", 85],
    ]);
    expect(byMetric[Metric.METRIC_NETWORK_IN_BYTES]?.map((p) => p.sum)).toEqual([30, 30]);
    // Never reported: an empty series, not zeros.
    expect(byMetric[Metric.METRIC_DISK_USED_BYTES]).toEqual([]);
  });

  it("answers NOT_FOUND for a server outside the caller's accounts, as for one that does not exist; admins see all", async () => {
    const q = (token: string, serverId: string) => client(token).analytics.queryServerMetrics({ serverId, step: MetricStep.METRIC_STEP_HOUR, startTime: new Date(T0), endTime: NOW }).catch((e: unknown) => e);
    expect(code(await q("mine", ids.theirs))).toBe(status.NOT_FOUND);
    expect(code(await q("mine", "01HZZZZZZZZZZZZZZZZZZZZZZZ"))).toBe(status.NOT_FOUND);
    expect(code(await q("none", ids.mine))).toBe(status.NOT_FOUND);
    expect(await q("admin", ids.theirs)).toMatchObject({ series: expect.any(Array) });
    expect(code(await client("mine").analytics.fleetSummary({ accountId: otherAccount }).catch((e: unknown) => e))).toBe(status.NOT_FOUND);
    expect(code(await q("mine", ""))).toBe(status.INVALID_ARGUMENT);
  });

  it("reports usage per budget code, account and server over a period, only over the caller's accounts", async () => {
    const period = { startTime: new Date(T0), endTime: new Date(T0 + 24 * HOUR) };
    // Running from 09:00 to 11:30: 2.5 h at 0.60/h and at 0.06/h.
    const admin = await client("admin").analytics.reportUsage({ groupBy: UsageGrouping.USAGE_GROUPING_BUDGET_CODE, ...period });
    expect(admin.rows).toEqual([{ key: "B-1", costMicros: "1650000", costCents: "165", accruingSeconds: "18000", servers: "2" }]);
    const perServer = await client("mine").analytics.reportUsage({ groupBy: UsageGrouping.USAGE_GROUPING_SERVER, ...period });
    expect(perServer.rows).toEqual([{ key: ids.mine, costMicros: "1500000", costCents: "150", accruingSeconds: "9000", servers: "1" }]);
    const perAccount = await client("admin").analytics.reportUsage({ groupBy: UsageGrouping.USAGE_GROUPING_ACCOUNT, ...period });
    expect(perAccount.rows.map((r) => [r.key, r.costMicros]).sort()).toEqual([[f.accountId, "1500000"], [otherAccount, "150000"]].sort());
    expect((await client("none").analytics.reportUsage({ groupBy: UsageGrouping.USAGE_GROUPING_SERVER, ...period })).rows).toEqual([]);
  });

  it("sums up a fleet: servers by state and by agent state, cost per hour, recent CPU", async () => {
    const s = await client("mine").analytics.fleetSummary({});
    expect(s).toMatchObject({ servers: "1", states: [{ state: "RUNNING", count: "1" }], agents: [{ state: "NONE", count: "1" }], hourlyCostMicros: "600000", samplesLastHour: "0" });
    await f.sql.execute`UPDATE servers SET agent_state = 'UNREACHABLE' WHERE id = ${ids.theirs}`;
    let goneId = "";
    try {
      const all = await client("admin").analytics.fleetSummary({});
      expect(all).toMatchObject({ servers: "2", agents: [{ state: "NONE", count: "1" }, { state: "UNREACHABLE", count: "1" }], hourlyCostMicros: "660000" });
      // A terminated server counts among the states, not among the agents.
      goneId = (await insertServer(f.sql, { accountId: otherAccount, budgetCode: "B-1", hourlyPriceMicros: 60_000n, createdAt: new Date(T0) })).id;
      await f.sql.execute`UPDATE servers SET state = 'TERMINATED' WHERE id = ${goneId}`;
      const after = await client("admin").analytics.fleetSummary({ accountId: otherAccount });
      expect(after).toMatchObject({ servers: "2", states: [{ state: "RUNNING", count: "1" }, { state: "TERMINATED", count: "1" }], agents: [{ state: "UNREACHABLE", count: "1" }] });
    } finally {
      await f.sql.execute`UPDATE servers SET agent_state = 'NONE' WHERE id = ${ids.theirs}`;
      if (goneId) await f.sql.execute`DELETE FROM servers WHERE id = ${goneId}`;
    }
  });

  it("server info says analytics is available", async () => {
    expect((await client("admin").system.getServerInfo({})).analytics).toEqual({ name: "analytics", available: true, detail: "" });
  });

  it("CSV quotes what needs quoting", () => {
    expect(csv(["a", "b"], [["x,y", 'say "hi"'], ["1", "2"]])).toBe('a,b\n"x,y","say ""hi"""\n1,2\n');
  });
});

/** Polls `get` every 200 ms until it returns a value, for up to 60 s. */

describe("analytics database unreachable", () => {
  it("the metrics RPCs answer UNAVAILABLE, server info says so, ingestion and the monitor's tasks fail softly", async () => {
    const port = await freePort();
    const down = createAnalyticsSql(`mysql://root@127.0.0.1:${port}/nowhere`, 1, { acquireTimeoutMs: 500 });
    const p = principals();
    const analytics = analyticsRpcServices({ provisioning: f.sql, analytics: down, now: () => NOW });
    const srv = await startTestServer({ services: [systemHandlers(createSystemService({ roles: ["dispatcher"], analytics: analytics.status })), ...analytics.services], authenticate: async (t) => p[t] ?? null });
    try {
      const c = client("admin", srv.address);
      const err = await c.analytics.queryServerMetrics({ serverId: ids.mine, step: MetricStep.METRIC_STEP_RAW }).catch((e: unknown) => e);
      expect(code(err)).toBe(status.UNAVAILABLE);
      expect((err as DispatcherError).errorInfo?.reason).toBe("ANALYTICS_UNAVAILABLE");
      expect((err as DispatcherError).message).not.toContain(String(port));
      expect(code(await c.analytics.reportUsage({ groupBy: UsageGrouping.USAGE_GROUPING_ACCOUNT }).catch((e: unknown) => e))).toBe(status.UNAVAILABLE);
      // Scope first: NOT_FOUND is still NOT_FOUND.
      expect(code(await client("none", srv.address).analytics.queryServerMetrics({ serverId: ids.mine, step: MetricStep.METRIC_STEP_RAW }).catch((e: unknown) => e))).toBe(status.NOT_FOUND);
      const info = await c.system.getServerInfo({});
      expect(info.analytics).toMatchObject({ name: "analytics", available: false, detail: expect.stringContaining("unavailable") });
      expect(await c.health.check("")).toBe("SERVING");
      await expect(ingestSamples(down, [{ serverId: "s", time: new Date(), cpuPercent: 1, memoryUsedBytes: 1 }])).rejects.toMatchObject({ code: "UNAVAILABLE", reason: "ANALYTICS_UNAVAILABLE" });

      const lines: Array<Record<string, unknown>> = [];
      const log = createLogger({ level: "debug", destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } as unknown as NodeJS.WritableStream });
      const config = loadConfig({ DISPATCHER_ANALYTICS_ROLLUP_INTERVAL_MS: "50", DISPATCHER_ANALYTICS_ACCRUAL_INTERVAL_MS: "50" }, "");
      const tasks = startAnalyticsTasks({ config, log, sql: f.sql, analytics: down, now: () => new Date() });
      await new Promise((r) => setTimeout(r, 2_500));
      await tasks.stop(1_000);
      const warnings = lines.filter((l) => String(l.msg).startsWith("analytics database unavailable"));
      expect(warnings).toHaveLength(1);
      expect(lines.filter((l) => Number(l.level) >= 50)).toEqual([]);
    } finally {
      await srv.stop();
      await down.end();
    }
  });

  it("`dispatcher start` with the analytics database unreachable warns, serves, launches servers, runs jobs, and answers analytics calls UNAVAILABLE", async () => {
    let t: TestEnv | undefined;
    try {
      t = await createTestEnv({ label: "anldown" });
      const env = t.with({ DISPATCHER_ANALYTICS_URL: `mysql://root@127.0.0.1:${await freePort()}/dispatcher_analytics` });
      const proc = await startDispatcher(t, ["start"], { env, timeoutMs: 60_000 });
      expect(proc.output()).toMatch(/analytics: not migrated, the database is unavailable/);
      const c = client(bootstrapToken(proc) ?? "", t.address);
      expect((await c.system.getServerInfo({})).analytics).toMatchObject({ available: false });
      expect(code(await c.analytics.fleetSummary({}).catch((e: unknown) => e))).toBe(status.UNAVAILABLE);
      // Provisioning still works: budget codes, and jobs run to the end.
      await expect(c.budgetCodes.createBudgetCode({ code: "UP-1", name: "up", hardQuotaCents: "10000000" })).resolves.toBeTruthy();
      const { job } = await c.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED });
      let state = job?.state;
      for (let i = 0; i < 100 && state !== JobState.JOB_STATE_SUCCEEDED; i++) {
        await new Promise((r) => setTimeout(r, 200));
        state = (await c.jobs.getJob({ id: job?.id ?? "" })).job?.state;
      }
      expect(state).toBe(JobState.JOB_STATE_SUCCEEDED);
      // And a launch on the local cloud runs to the end (its accrual and metrics simply wait for analytics).
      const local = await until(async () => (await c.accounts.listAccounts({ pageSize: 10 })).accounts.find((a) => a.name === "local" && a.status === AccountStatus.ACCOUNT_STATUS_ACTIVE), 60_000, "the local account ACTIVE");
      for (const u of (await c.users.listUsers({ pageSize: 10 })).users) await c.budgetCodes.grantBudgetCode({ code: "UP-1", userId: u.id });
      const launch = await c.servers.launchServer({ accountId: local.id, regionId: "local", productId: "small", imageId: "basic", name: "no-analytics", budgetCode: "UP-1" });
      const launched = await until(
        async () => {
          const j = (await c.jobs.getJob({ id: launch.job?.id ?? "" })).job;
          return j && [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED].includes(j.state) ? j : undefined;
        },
        60_000,
        "the launch job's end",
      );
      expect(launched.state, JSON.stringify(launched.error)).toBe(JobState.JOB_STATE_SUCCEEDED);
      const stopped = await c.servers.terminateServer({ id: launch.server?.id ?? "" });
      await until(async () => (await c.jobs.getJob({ id: stopped.job?.id ?? "" })).job?.state === JobState.JOB_STATE_SUCCEEDED, 60_000, "the terminate job SUCCEEDED");
      expect(await c.health.check("")).toBe("SERVING");
      expect((await proc.stop()).code).toBe(0);
    } finally {
      await killStrayDispatchers();
      await t?.cleanup();
    }
  }, 120_000);
});

describe("dispatcher budgets usage / servers metrics", () => {
  afterEach(() => {
    vi.restoreAllMocks();
    delete process.env.DISPATCHER_CLIENT_TOKEN;
  });

  const cli = (token: string, ...args: string[]): Promise<CliRun> => runCli(server.address, token, args);

  it("prints usage per server as CSV and a server's hourly CPU as a table; NOT_FOUND exits non-zero", async () => {
    const usage = await cli("mine", "budgets", "usage", "--group-by", "server", "--from", new Date(T0).toISOString(), "--to", new Date(T0 + 24 * HOUR).toISOString(), "--csv");
    expect(usage).toMatchObject({ code: 0, err: "" });
    expect(usage.out).toBe(`server,cost,cents,accruing_hours,servers\n${ids.mine},1.5000,150,2.50,1\n`);
    const metrics = await cli("mine", "servers", "metrics", ids.mine, "--step", "hour", "--aggregate", "max", "-m", "cpu_percent", "--from", new Date(T0).toISOString(), "--to", NOW.toISOString(), "--csv");
    expect(metrics.code).toBe(0);
    expect(metrics.out.trim().split("\n").map((l) => l.split(",").slice(1, 4).join(","))).toEqual(["metric,value,count", "cpu_percent,50,6", "cpu_percent,110,6"]);
    const missing = await cli("mine", "servers", "metrics", ids.theirs);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/NOT_FOUND/);
  });

  it("sums up the fleet as CSV, agents by state on one line", async () => {
    const fleet = await cli("mine", "servers", "fleet", "--csv");
    expect(fleet).toMatchObject({ code: 0, err: "" });
    expect(fleet.out).toMatch(/^field,value\nservers,1\n {2}running,1\nagents,1 none\ncost per hour,0\.6000\n/);
  });
});
