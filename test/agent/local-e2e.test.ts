// End to end on the local cloud, one real `dispatcher start` (quick start): launch a server with the `agent` image →
// its agent registers through the gRPC-Web bridge within 10 s → RunServerScript `echo hi` as a job → terminate → the
// agent process is gone and the agent no longer pinged.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { runAgentsRun, runAgentsShow } from "../../src/commands/agents.js";
import { AgentConnectionState } from "../../src/gen/proto/dispatcher/v1/agents.js";
import { Metric, MetricAggregate, MetricStep } from "../../src/gen/proto/dispatcher/v1/analytics.js";
import { JobState, type Job } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { AccountStatus } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import { AgentState, ServerState } from "../../src/gen/proto/dispatcher/v1/servers.js";

import { bootstrapToken, jobEnd, pidAlive, createTestEnv, killStrayDispatchers, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";
import { until } from "../support/poll.js";

let t: TestEnv;
let p: DispatcherProcess;
let c: DispatcherClients;
let account: string;
let adminToken: string;
let spansFile: string;
const pids = new Set<number>();

const alive = pidAlive;

const finished = (job: Job | undefined, timeoutMs?: number): Promise<Job> => jobEnd(c, job, timeoutMs);

beforeAll(async () => {
  t = await createTestEnv({ label: "agent_e2e" });
  spansFile = join(t.dir, "spans.jsonl");
  p = await startDispatcher(t, ["start"], { env: t.with({ DISPATCHER_TELEMETRY_FILE: spansFile, DISPATCHER_AGENT_PING_INTERVAL_MS: "500", DISPATCHER_LOCAL_CLOUD_STOP_GRACE_MS: "2000" }), timeoutMs: 60_000 });
  const token = bootstrapToken(p);
  if (!token) throw new Error(`no admin token printed\n${p.output()}`);
  adminToken = token;
  c = createDispatcherClients({ address: t.address, token, retry: false });
  account = (await until(async () => (await c.accounts.listAccounts({ pageSize: 100 })).accounts.find((a) => a.name === "local" && a.status === AccountStatus.ACCOUNT_STATUS_ACTIVE), 60_000, "the local account")).id;
  await c.budgetCodes.createBudgetCode({ code: "AGENT", name: "agents", financeCode: "F-1", hardQuotaCents: "100000000", softQuotaCents: "0" });
  for (const u of (await c.users.listUsers({ pageSize: 100 })).users) await c.budgetCodes.grantBudgetCode({ code: "AGENT", userId: u.id });
}, 120_000);

afterAll(async () => {
  c?.close();
  await p?.stop("SIGTERM").catch(() => undefined);
  await killStrayDispatchers();
  for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
  await t?.cleanup();
});

describe("an agent on the local cloud", () => {
  it("registers within 10 s of its launch, runs echo hi as a job, and is gone after terminate", async () => {
    const requestedAt = Date.now();
    const { job, server } = await c.servers.launchServer({ accountId: account, regionId: "local", dataCenter: "", productId: "small", imageId: "agent", name: "with-agent", budgetCode: "AGENT", idempotencyKey: "" });
    const launched = await finished(job, 60_000);
    expect(launched.state, JSON.stringify(launched.error)).toBe(JobState.JOB_STATE_SUCCEEDED);
    const id = server!.id;
    const running = (await c.servers.getServer({ id })).server!;
    expect(running.state).toBe(ServerState.SERVER_STATE_RUNNING);
    const pid = Number(running.details.pid);
    pids.add(pid);

    // The server answers (its agent listens) before registering; registration follows within 10 s.
    const agent = await until(async () => (await c.agents.getServerAgent({ serverId: id }).catch(() => null))?.agent, 10_000, "the agent to register");
    expect(agent.state).toBe(AgentConnectionState.AGENT_CONNECTION_STATE_CONNECTED);
    // Registered within 10 s of its server's start (process start, module loading, the call through the bridge); the
    // whole way from the launch request is logged (it adds the job pipeline and KM, and varies with the machine's load).
    const startedAt = Date.parse(running.details.startedAt!);
    expect(agent.registerTime!.getTime() - startedAt).toBeLessThan(10_000);
    console.log(`agent registered ${agent.registerTime!.getTime() - startedAt} ms after its server started, ${agent.registerTime!.getTime() - requestedAt} ms after the launch request`);
    expect(agent.port).toBe(Number(running.details.port));

    // One trace: the launch call, the worker's handling, the driver call and the agent's registration through the bridge.
    type SpanLine = { traceId: string; name: string; kind: string; attributes: Record<string, unknown> };
    const spans = (): SpanLine[] => (existsSync(spansFile) ? readFileSync(spansFile, "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as SpanLine) : []);
    const trace = await until(async () => {
      const mine = spans().filter((sp) => sp.traceId === launched.traceId);
      return mine.some((sp) => /AgentRegistrationService\/Register$/.test(sp.name)) ? mine : null;
    }, 10_000, "the registration span in the launch's trace");
    const names = trace.map((sp) => sp.name);
    expect(names, JSON.stringify(names)).toEqual(
      expect.arrayContaining([expect.stringMatching(/ServerService\/LaunchServer$/), "job.handle server.launch", "driver.local.launch", expect.stringMatching(/AgentRegistrationService\/Register$/)]),
    );
    expect((await c.servers.getServer({ id })).server!.agentState).toBe(AgentState.AGENT_STATE_CONNECTED);

    const { job: script } = await c.agents.runServerScript({ serverId: id, command: "echo", args: ["hi"], env: {}, idempotencyKey: "" });
    const ran = await finished(script);
    expect(ran.state, JSON.stringify(ran.error)).toBe(JobState.JOB_STATE_SUCCEEDED);
    expect(ran.result).toMatchObject({ exitCode: 0, stdout: "hi\n", timedOut: false });

    // The same through the CLI's commands (in-process, against the same dispatcher).
    const out: string[] = [];
    const io = { out: (t: string) => void out.push(t), err: (t: string) => void out.push(t) };
    process.env.DISPATCHER_CLIENT_TOKEN = adminToken;
    try {
      expect(await runAgentsRun(id, ["sh", "-c", "echo from-cli; exit 4"], { address: t.address, configFile: "", env: [], wait: true, io })).toBe(1);
      expect(out.join("")).toContain("from-cli");
      expect(out.join("")).toContain("dispatcher agents run: the command exited with code 4\n");
      expect(await runAgentsShow(id, { address: t.address, configFile: "", io })).toBe(0);
      expect(out.join("")).toMatch(/state:\s+CONNECTED/);
    } finally {
      delete process.env.DISPATCHER_CLIENT_TOKEN;
    }

    // Pings keep it CONNECTED and see it again and again.
    const seen = agent.lastSeenTime!.getTime();
    await until(async () => ((await c.agents.getServerAgent({ serverId: id })).agent?.lastSeenTime?.getTime() ?? 0) > seen, 10_000, "a ping answered");

    // What the pings collected from the agent is in the analytics database: the series query returns it.
    const cpu = await until(async () => {
      const { series } = await c.analytics.queryServerMetrics({ serverId: id, startTime: new Date(requestedAt - 60_000), endTime: new Date(Date.now() + 60_000), step: MetricStep.METRIC_STEP_RAW, aggregate: MetricAggregate.METRIC_AGGREGATE_UNSPECIFIED, metrics: [Metric.METRIC_CPU_PERCENT, Metric.METRIC_MEMORY_USED_BYTES] });
      const points = series.find((x) => x.metric === Metric.METRIC_CPU_PERCENT)?.points ?? [];
      return points.length > 0 ? series : null;
    }, 10_000, "the agent's metrics in the series query");
    const memory = cpu.find((x) => x.metric === Metric.METRIC_MEMORY_USED_BYTES)?.points ?? [];
    expect(memory.length).toBeGreaterThan(0);
    expect(memory[0]!.value).toBeGreaterThan(0);

    const terminated = await finished((await c.servers.terminateServer({ id, idempotencyKey: "" })).job);
    expect(terminated.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    expect(alive(pid)).toBe(false);
    const gone = await until(async () => {
      const a = (await c.agents.getServerAgent({ serverId: id })).agent;
      return a?.state === AgentConnectionState.AGENT_CONNECTION_STATE_GONE ? a : null;
    }, 10_000, "the agent to be GONE");
    expect(gone.state).toBe(AgentConnectionState.AGENT_CONNECTION_STATE_GONE);
    const { events } = await c.servers.listServerEvents({ id, pageSize: 1000 });
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(["LAUNCH_REQUESTED", "AGENT_REGISTERED", "TERMINATE_REQUESTED"]));
    // The join token never appears in the dispatcher's output.
    expect(p.output()).not.toMatch(/djt_[A-Za-z0-9_-]{20,}/);
  }, 180_000);
});
