// Metrics of a real `dispatcher start` on its metrics port: health and readiness, job counters and histograms by kind,
// RPCs by method and code, the queue, pool, loop, KM and driver instruments — and no label value that is an id, a
// name, an email or a secret. A worker-only process answers /healthz and /readyz on a port of its own.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { DiagnosticOutcome, JobState, type Job } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { metricsPort, metricsUrl } from "../../src/telemetry/metrics-server.js";
import { until } from "../support/poll.js";
import { bootstrapToken, createTestEnv, freePort, jobEnd, killStrayDispatchers, spawnDispatcher, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";
import { httpGet, scrape, sumOf, type Sample } from "./metrics-scrape.js";

describe("metrics settings", () => {
  it("gives each role its own default port and a process of several roles the first one's", () => {
    const off = { metrics: { enabled: true, bind: "0.0.0.0", otlpIntervalMs: 60_000 } };
    expect(metricsPort(off, ["km", "worker", "monitor", "dispatcher"])).toBe(9464);
    expect(metricsPort(off, ["worker"])).toBe(9465);
    expect(metricsPort(off, ["monitor", "km"])).toBe(9466);
    expect(metricsPort(off, ["km"])).toBe(9467);
    expect(metricsPort({ metrics: { ...off.metrics, port: 9999 } }, ["worker"])).toBe(9999);
  });

  it("sends OTLP metrics to the endpoint's /v1/metrics", () => {
    expect(metricsUrl("http://otel:4318")).toBe("http://otel:4318/v1/metrics");
    expect(metricsUrl("http://otel:4318/v1/traces")).toBe("http://otel:4318/v1/metrics");
    expect(metricsUrl("http://otel:4318/v1/metrics/")).toBe("http://otel:4318/v1/metrics");
  });
});

const NOTE = `note-${randomBytes(6).toString("hex")}`;
let t: TestEnv;
let p: DispatcherProcess;
let c: DispatcherClients;
let token = "";
const jobs: Job[] = [];
let samples: Sample[] = [];

beforeAll(async () => {
  t = await createTestEnv({ label: "metrics", metrics: true });
  p = await startDispatcher(t, ["start"], { timeoutMs: 240_000 });
  token = bootstrapToken(p) ?? "";
  if (!token) throw new Error(`no admin token printed\n${p.output()}`);
  c = createDispatcherClients({ address: t.address, token, retry: false });
  for (let i = 0; i < 5; i++) jobs.push(await jobEnd(c, (await c.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED, note: NOTE })).job, 30_000));
  jobs.push(await jobEnd(c, (await c.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_FAIL_PERMANENT, note: NOTE })).job, 30_000));
  // The local cloud's account is connected in the background: wait for its driver and KM calls to be counted too, and
  // for the jobs that work starts to have left the outbox and the consumer (the gauges then read 0).
  samples = await until(async () => {
    const s = await scrape(t.ports.metrics);
    const ready = sumOf(s, "dispatcher_jobs_succeeded_total", { job_kind: "diagnostic" }) === 5 && sumOf(s, "dispatcher_driver_duration_count", { cloud_driver: "local" }) && sumOf(s, "dispatcher_km_client_duration_count");
    const idle = sumOf(s, "dispatcher_outbox_backlog") === 0 && sumOf(s, "dispatcher_jetstream_consumer_pending") === 0;
    return ready && idle ? s : null;
  }, 60_000, "diagnostic, driver and KM measurements on /metrics, with the outbox and the consumer drained");
}, 360_000);

afterAll(async () => {
  c?.close();
  await p?.stop("SIGTERM").catch(() => undefined);
  await killStrayDispatchers();
  await t?.cleanup();
});

describe("a dispatcher's metrics port", () => {
  it("answers /healthz and /readyz while serving", async () => {
    expect(await httpGet(t.ports.metrics, "/healthz")).toEqual({ status: 200, body: "ok\n" });
    expect(await httpGet(t.ports.metrics, "/readyz")).toEqual({ status: 200, body: "ready\n" });
    expect((await httpGet(t.ports.metrics, "/nothing")).status).toBe(404);
  });

  it("counts jobs by kind through every transition, with create→start and start→end histograms", () => {
    expect(jobs.map((j) => j.state)).toEqual([...Array(5).fill(JobState.JOB_STATE_SUCCEEDED), JobState.JOB_STATE_FAILED]);
    const diag = { job_kind: "diagnostic" };
    expect(sumOf(samples, "dispatcher_jobs_created_total", diag)).toBe(6);
    expect(sumOf(samples, "dispatcher_jobs_started_total", diag)).toBe(6);
    expect(sumOf(samples, "dispatcher_jobs_succeeded_total", diag)).toBe(5);
    expect(sumOf(samples, "dispatcher_jobs_failed_total", diag)).toBe(1);
    expect(sumOf(samples, "dispatcher_job_wait_duration_count", diag)).toBe(6);
    expect(sumOf(samples, "dispatcher_job_run_duration_count", { ...diag, job_outcome: "succeeded" })).toBe(5);
    expect(sumOf(samples, "dispatcher_job_run_duration_count", { ...diag, job_outcome: "failed" })).toBe(1);
    expect(sumOf(samples, "dispatcher_job_wait_duration_bucket", { ...diag, le: "+Inf" })).toBe(6);
    // Other kinds (the local account's validation and discovery) are counted under their own kind.
    expect(samples.some((s) => s.name === "dispatcher_jobs_created_total" && s.labels.job_kind !== "diagnostic")).toBe(true);
  });

  it("times RPCs by service, method and status code (rpc.server.duration)", () => {
    const run = { rpc_system: "grpc", rpc_service: "dispatcher.v1.JobService", rpc_method: "RunDiagnosticJob" };
    expect(sumOf(samples, "rpc_server_duration_count", { ...run, rpc_grpc_status_code: "0" })).toBe(6);
    expect(sumOf(samples, "rpc_server_duration_count", { rpc_method: "GetJob", rpc_grpc_status_code: "0" })).toBeGreaterThan(0);
  });

  it("reports queues, pool, monitor loops, agents, KM and driver calls", () => {
    const names = new Set(samples.map((s) => s.name));
    for (const name of [
      "dispatcher_outbox_backlog",
      "dispatcher_outbox_oldest_age",
      "dispatcher_jetstream_consumer_pending",
      "dispatcher_jetstream_consumer_ack_pending",
      "dispatcher_jetstream_consumer_redelivered",
      "db_client_connection_count",
      "db_client_connection_pending_requests",
    ]) expect(names, name).toContain(name);
    expect(sumOf(samples, "dispatcher_outbox_backlog")).toBe(0);
    expect(sumOf(samples, "dispatcher_jetstream_consumer_pending")).toBe(0);
    expect(sumOf(samples, "db_client_connection_count", { db_client_connection_pool_name: "provisioning" })).toBeGreaterThan(0);
    expect(new Set(samples.filter((s) => s.name === "dispatcher_agents").map((s) => s.labels.agent_presence))).toEqual(new Set(["connected", "unreachable", "gone"]));
    const loops = new Set(samples.filter((s) => s.name === "dispatcher_monitor_loop_lag").map((s) => s.labels.loop));
    expect(loops.size).toBeGreaterThanOrEqual(3);
    expect(sumOf(samples, "dispatcher_km_client_duration_count", { km_method: "GetCredential", outcome: "ok" })).toBeGreaterThan(0);
    expect(sumOf(samples, "dispatcher_driver_duration_count", { cloud_driver: "local", outcome: "ok" })).toBeGreaterThan(0);
  });

  it("reports this process's collection pauses and event loop (OpenTelemetry's v8js and nodejs names)", () => {
    // A process that started and ran jobs has collected its young generation many times.
    expect(sumOf(samples, "v8js_gc_duration_count", { v8js_gc_type: "minor" })).toBeGreaterThan(0);
    expect(sumOf(samples, "v8js_gc_duration_sum", { v8js_gc_type: "minor" })).toBeGreaterThan(0);
    expect(new Set(samples.filter((s) => s.name === "v8js_gc_duration_count").map((s) => s.labels.v8js_gc_type))).not.toContain("other");
    for (const name of ["nodejs_eventloop_delay_p50", "nodejs_eventloop_delay_p99", "nodejs_eventloop_delay_max", "nodejs_eventloop_utilization"]) {
      expect(samples.filter((s) => s.name === name), name).toHaveLength(1);
    }
    const utilization = sumOf(samples, "nodejs_eventloop_utilization");
    expect(utilization).toBeGreaterThan(0);
    expect(utilization).toBeLessThanOrEqual(1);
    const delay = (q: string): number => sumOf(samples, `nodejs_eventloop_delay_${q}`) ?? Number.NaN;
    expect(delay("max")).toBeGreaterThanOrEqual(delay("p99"));
    expect(delay("p99")).toBeGreaterThanOrEqual(delay("p50"));
  });

  it("labels nothing with an id, a name, an email or a secret", async () => {
    const text = (await httpGet(t.ports.metrics, "/metrics")).body;
    const values = new Set(samples.flatMap((s) => Object.values(s.labels)));
    const ids = (await c.jobs.listJobs({ pageSize: 1000 })).jobs.flatMap((j) => [j.id, j.traceId, j.resource?.id ?? ""]).filter(Boolean);
    expect(ids.length).toBeGreaterThan(6);
    for (const id of ids) expect(text.includes(id), `an id in the metrics: ${id}`).toBe(false);
    for (const secret of [token, NOTE]) expect(text.includes(secret)).toBe(false);
    for (const v of values) {
      expect(v, "an email as a label").not.toMatch(/@/);
      expect(v, "an id-like label").not.toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$|^[0-9a-f]{32}$|^[0-9a-f-]{36}$/);
    }
    // Bounded: a few hundred series at most for a deployment of this size, not one per job.
    expect(samples.length).toBeLessThan(3000);
  });
});

describe("a worker-only process", () => {
  it("serves /healthz and /readyz on its metrics port, and stops serving them when it stops", async () => {
    const port = await freePort();
    const worker = spawnDispatcher(["serve", "--role", "worker"], t.with({ DISPATCHER_METRICS_PORT: String(port) }));
    try {
      await until(async () => (await httpGet(port, "/readyz").catch(() => null))?.status === 200, 90_000, "the worker's /readyz", () => worker.output());
      expect((await httpGet(port, "/healthz")).status).toBe(200);
      const s = await scrape(port);
      expect(s.some((x) => x.name === "db_client_connection_count")).toBe(true);
      // Every process running roles reports its own runtime, the worker too.
      expect(s.some((x) => x.name === "nodejs_eventloop_utilization")).toBe(true);
      worker.child.kill("SIGTERM");
      expect((await worker.exited).code).toBe(0);
      await expect(httpGet(port, "/healthz")).rejects.toThrow();
    } finally {
      if (worker.running) await worker.kill9();
    }
  }, 150_000);
});
