// The service's metrics: every instrument declared once, and the one-line recording calls the layers make. Instruments
// come from the process's OpenTelemetry meter provider (installed by ./metrics-server.ts when metrics are on; the API's
// no-op provider otherwise, so a recording costs nothing). Labels are bounded sets only — method, kind, cloud,
// operation, outcome, loop, presence — never an id, a name, an email or anything secret.
import { MeterProvider as SdkMeterProvider } from "@opentelemetry/sdk-metrics";
import { metrics, type Attributes, type Counter, type Histogram, type Meter, type MeterProvider, type ObservableGauge, type ObservableResult } from "@opentelemetry/api";

/** Instrumentation scope of the project's own metrics. */
export const METER_NAME = "dispatcher";

/** OpenTelemetry's advised boundaries for rpc.server.duration, in milliseconds. */
const RPC_BUCKETS_MS = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];
/** Seconds: from a millisecond (a warm start) to an hour (a long launch or a job waiting behind a backlog). */
const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/** Seconds, at millisecond resolution: a collection pauses a process for well under a millisecond to tens of them. */
const GC_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1];

/** The names as exported (Prometheus: dots become underscores, counters gain `_total`). docs/telemetry.md lists them. */
export const METRIC = {
  rpcDuration: "rpc.server.duration",
  jobsCreated: "dispatcher.jobs.created",
  jobsStarted: "dispatcher.jobs.started",
  jobsSucceeded: "dispatcher.jobs.succeeded",
  jobsFailed: "dispatcher.jobs.failed",
  jobsCancelled: "dispatcher.jobs.cancelled",
  jobsRetried: "dispatcher.jobs.retried",
  jobsDeadLettered: "dispatcher.jobs.dead_lettered",
  jobWait: "dispatcher.job.wait.duration",
  jobRun: "dispatcher.job.run.duration",
  jobsOverdue: "dispatcher.jobs.overdue",
  outboxBacklog: "dispatcher.outbox.backlog",
  outboxOldestAge: "dispatcher.outbox.oldest_age",
  consumerPending: "dispatcher.jetstream.consumer.pending",
  consumerAckPending: "dispatcher.jetstream.consumer.ack_pending",
  consumerRedelivered: "dispatcher.jetstream.consumer.redelivered",
  deadLetters: "dispatcher.dead_letters",
  loopLag: "dispatcher.monitor.loop.lag",
  kmDuration: "dispatcher.km.client.duration",
  kmAuditFailures: "dispatcher.km.audit.failures",
  driverDuration: "dispatcher.driver.duration",
  agents: "dispatcher.agents",
  agentChannelsClosed: "dispatcher.agent.channels.closed",
  poolConnections: "db.client.connection.count",
  poolPending: "db.client.connection.pending_requests",
  gcDuration: "v8js.gc.duration",
  eventLoopDelayP50: "nodejs.eventloop.delay.p50",
  eventLoopDelayP99: "nodejs.eventloop.delay.p99",
  eventLoopDelayMax: "nodejs.eventloop.delay.max",
  eventLoopUtilization: "nodejs.eventloop.utilization",
} as const;

interface Instruments {
  meter: Meter;
  rpcDuration: Histogram;
  jobs: Record<JobTransition, Counter>;
  jobWait: Histogram;
  jobRun: Histogram;
  kmDuration: Histogram;
  kmAuditFailures: Counter;
  agentChannelsClosed: Counter;
  driverDuration: Histogram;
  gcDuration: Histogram;
}

export type JobTransition = "created" | "started" | "succeeded" | "failed" | "cancelled" | "retried" | "dead_lettered";

const JOB_COUNTERS: Record<JobTransition, { name: string; description: string }> = {
  created: { name: METRIC.jobsCreated, description: "Jobs created (committed), by kind" },
  started: { name: METRIC.jobsStarted, description: "Attempts started, by kind" },
  succeeded: { name: METRIC.jobsSucceeded, description: "Jobs that succeeded, by kind" },
  failed: { name: METRIC.jobsFailed, description: "Jobs that failed (timeouts included), by kind" },
  cancelled: { name: METRIC.jobsCancelled, description: "Jobs cancelled, by kind" },
  retried: { name: METRIC.jobsRetried, description: "Attempts that failed and were scheduled again, by kind" },
  dead_lettered: { name: METRIC.jobsDeadLettered, description: "Jobs whose attempts ran out and left a dead letter, by kind" },
};

function create(meter: Meter): Instruments {
  const seconds = (name: string, description: string): Histogram => meter.createHistogram(name, { unit: "s", description, advice: { explicitBucketBoundaries: SECONDS_BUCKETS } });
  const jobs = Object.fromEntries(
    Object.entries(JOB_COUNTERS).map(([t, c]) => [t, meter.createCounter(c.name, { unit: "{job}", description: c.description })]),
  ) as Record<JobTransition, Counter>;
  return {
    meter,
    rpcDuration: meter.createHistogram(METRIC.rpcDuration, { unit: "ms", description: "Duration of inbound RPCs, by service, method and status code", advice: { explicitBucketBoundaries: RPC_BUCKETS_MS } }),
    jobs,
    jobWait: seconds(METRIC.jobWait, "From a job's creation to the start of its first attempt, by kind"),
    jobRun: seconds(METRIC.jobRun, "From a job's first start to its end, by kind and outcome"),
    kmDuration: seconds(METRIC.kmDuration, "Calls to KM from this process, by method and outcome"),
    kmAuditFailures: meter.createCounter(METRIC.kmAuditFailures, { unit: "{failure}", description: "KM audit writes that failed (the calls they recorded were refused), by sink" }),
    agentChannelsClosed: meter.createCounter(METRIC.agentChannelsClosed, { unit: "{channel}", description: "Kept channels to agents this process closed, by reason (idle, bound: over agent.maxChannels, failed, stop)" }),
    driverDuration: seconds(METRIC.driverDuration, "Cloud driver calls, by cloud, operation and outcome"),
    gcDuration: meter.createHistogram(METRIC.gcDuration, { unit: "s", description: "Garbage collection pauses of this process, by type (minor, major, incremental, weakcb)", advice: { explicitBucketBoundaries: GC_BUCKETS } }),
  };
}

let cache: { provider: MeterProvider; on: boolean; instruments: Instruments } | undefined;

/** The instruments of the current global meter provider (made again when a provider is installed or replaced). */
function instruments(): Instruments {
  const provider = metrics.getMeterProvider();
  if (cache?.provider !== provider) cache = { provider, on: provider instanceof SdkMeterProvider, instruments: create(provider.getMeter(METER_NAME)) };
  return cache.instruments;
}

/** Whether metrics are recorded in this process: measurements that cost a query are taken only then. */
export function measuring(): boolean {
  instruments();
  return cache?.on === true;
}

/** The project's meter, for observable instruments that a role registers (see ./metrics-observers.ts). */
export function meter(): Meter {
  return instruments().meter;
}

/** One inbound RPC: `method` is the full path ("/dispatcher.v1.JobService/GetJob"), `code` the gRPC status code. */
export function recordRpc(method: string, code: number, durationMs: number): void {
  const slash = method.lastIndexOf("/");
  instruments().rpcDuration.record(durationMs, {
    "rpc.system": "grpc",
    "rpc.service": method.slice(1, slash),
    "rpc.method": method.slice(slash + 1),
    "rpc.grpc.status_code": code,
  });
}

/** A job's transition, counted once its transaction committed. */
export function recordJob(transition: JobTransition, kind: string, count = 1): void {
  instruments().jobs[transition].add(count, { "job.kind": kind });
}

/** Seconds from a job's creation to its first attempt's start. */
export function recordJobWait(kind: string, seconds: number): void {
  instruments().jobWait.record(Math.max(0, seconds), { "job.kind": kind });
}

/** Seconds from a job's first start to its end; `outcome` is its terminal state in lower case. */
export function recordJobRun(kind: string, outcome: "succeeded" | "failed" | "cancelled", seconds: number): void {
  instruments().jobRun.record(Math.max(0, seconds), { "job.kind": kind, "job.outcome": outcome });
}

/** One call to KM: `method` as in km.v1 ("GetCredential"), `outcome` "ok" or the error's code. */
export function recordKmCall(method: string, outcome: string, seconds: number): void {
  instruments().kmDuration.record(seconds, { "km.method": method, outcome });
}

/** A KM audit write that failed: `sink` is "database" or "file". */
export function recordKmAuditFailure(sink: "database" | "file"): void {
  instruments().kmAuditFailures.add(1, { sink });
}

export type AgentChannelCloseReason = "idle" | "bound" | "failed" | "stop";

/** A kept channel to an agent closed: "bound" means agent.maxChannels is below the agents this process calls. */
export function recordAgentChannelClosed(reason: AgentChannelCloseReason): void {
  instruments().agentChannelsClosed.add(1, { reason });
}

/** One driver call: `operation` as the registry names it ("launch", "volumes.create"), `outcome` "ok" or the DriverError code. */
export function recordDriverCall(cloud: string, operation: string, outcome: string, seconds: number): void {
  instruments().driverDuration.record(seconds, { "cloud.driver": cloud, operation, outcome });
}

/** One collection pause of this process: `type` as OpenTelemetry's v8js.gc.type (minor, major, incremental, weakcb). */
export function recordGcPause(type: string, seconds: number): void {
  instruments().gcDuration.record(seconds, { "v8js.gc.type": type });
}

/** Seconds since `startedAt` (a performance.now() reading). */
export function secondsSince(startedAt: number): number {
  return (performance.now() - startedAt) / 1000;
}

/** Observations of one observable gauge: each row's value with its attributes. */
export type Rows = ReadonlyArray<readonly [number, Attributes]>;

/**
 * An observable gauge whose callback reads `read()` at each collection (scrape or export); a failing read reports
 * nothing (the series goes stale rather than wrong). Returns its removal, for the role's stop.
 */
export function observeGauge(name: string, options: { unit: string; description: string }, read: () => Promise<Rows> | Rows): () => void {
  const gauge: ObservableGauge = meter().createObservableGauge(name, options);
  const callback = async (result: ObservableResult): Promise<void> => {
    let rows: Rows;
    try {
      rows = await read();
    } catch {
      return;
    }
    for (const [value, attributes] of rows) result.observe(value, attributes);
  };
  gauge.addCallback(callback);
  return () => gauge.removeCallback(callback);
}
