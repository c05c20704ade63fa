// One job, one trace, across real processes: a dispatcher (`serve --role dispatcher`) and a worker (`serve --role
// worker`), each exporting its spans to a file of its own (DISPATCHER_TELEMETRY_FILE). The job's spans — the gRPC
// server span of RunDiagnosticJob, job.create, the relay's outbox.publish, the worker's consumer span, job.start,
// job.handle diagnostic and job.complete — form one connected tree in one trace, whose id is the job row's trace_id
// and GetJob's. The same run checks WatchJob end to end: every transition the worker commits reaches the watcher, in
// order, and the stream ends with the job.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { DiagnosticOutcome, JobState, type WatchJobResponse } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import type { SpanRecord } from "../../src/telemetry/file-exporter.js";
import { createTestApiKey, createTestEnv, killStrayDispatchers, spawnDispatcher, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";
import { openJobsDb, SMALL_POOLS, type JobsDb } from "./faults-support.js";
import { until } from "../support/poll.js";

let env: TestEnv;
let h: JobsDb;
let dispatcher: DispatcherProcess;
let client: DispatcherClients;
const files = { dispatcher: "", worker: "" };

beforeAll(async () => {
  env = await createTestEnv({ label: "trace", migrate: true, env: { ...SMALL_POOLS, DISPATCHER_LOGGING_LEVEL: "info" } });
  files.dispatcher = join(env.dir, "dispatcher-spans.jsonl");
  files.worker = join(env.dir, "worker-spans.jsonl");
  h = openJobsDb(env);
  const key = await createTestApiKey(env.urls.provisioning, { role: "admin" });
  dispatcher = await startDispatcher(env, ["serve", "--role", "dispatcher"], { env: env.with({ DISPATCHER_TELEMETRY_FILE: files.dispatcher }), timeoutMs: 40_000 });
  client = createDispatcherClients({ address: env.address, token: key.secret, retry: false });
}, 90_000);

afterAll(async () => {
  client?.close();
  await killStrayDispatchers();
  await h?.close();
  await env?.cleanup();
});

function spansIn(file: string): SpanRecord[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as SpanRecord);
}

describe("one diagnostic job through dispatcher and worker processes", () => {
  let jobId = "";
  const watched: WatchJobResponse[] = [];
  let worker: DispatcherProcess;

  it("is watched from QUEUED to SUCCEEDED: every transition in order, then the stream ends", async () => {
    const { job } = await client.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED, sleep: { seconds: "0", nanos: 350_000_000 }, note: "one trace" });
    jobId = job?.id ?? "";
    expect(job?.state).toBe(JobState.JOB_STATE_QUEUED);
    // Watch first, then start the worker: the watcher must see the job's whole life after "created".
    const watching = (async () => {
      for await (const m of client.jobs.watchJob({ id: jobId }, { deadlineMs: 60_000 })) watched.push(m);
    })();
    await until(async () => watched.length > 0, 10_000, "the first watch message");
    worker = spawnDispatcher(["serve", "--role", "worker"], env.with({ DISPATCHER_TELEMETRY_FILE: files.worker }));
    await worker.waitForOutput(/worker consuming jobs/, 40_000);
    await watching;

    const { events } = await client.jobs.listJobEvents({ id: jobId });
    // The first message is the job as it stood (no event); then one message per event after "created", in order.
    expect(watched[0]?.event).toBeUndefined();
    expect(watched[0]?.job?.state).toBe(JobState.JOB_STATE_QUEUED);
    const seen = watched.slice(1).map((m) => [m.event?.sequence, m.event?.type, m.event?.attempt]);
    expect(seen).toEqual(events.slice(1).map((e) => [e.sequence, e.type, e.attempt]));
    expect(events.map((e) => e.type).filter((t) => t !== "progress")).toEqual(["created", "started", "succeeded"]);
    expect(events.filter((e) => e.type === "progress").length).toBeGreaterThanOrEqual(1);
    // Each message carries the job as it stood when read (events that arrive together share one read); the stream
    // ends with the terminal event and the finished job.
    expect(watched.at(-1)?.event).toMatchObject({ type: "succeeded", fromState: JobState.JOB_STATE_RUNNING, toState: JobState.JOB_STATE_SUCCEEDED });
    expect(watched.at(-1)?.job).toMatchObject({ id: jobId, state: JobState.JOB_STATE_SUCCEEDED, attempt: 1, progressPercent: 100 });
    expect(await h.effects(jobId)).toEqual([1]);
  }, 60_000);

  it("yields exactly one trace: gRPC server → job.create → outbox.publish → consume → job.handle, with the job row's trace id", async () => {
    expect(jobId).not.toBe("");
    // A span is in its file once it ended; job.complete ends last in the worker.
    const all = await until(async () => {
      const spans = [...spansIn(files.dispatcher), ...spansIn(files.worker)];
      return spans.some((s) => s.name === "job.complete" && s.attributes["job.id"] === jobId) ? spans : null;
    }, 10_000, "the worker's job.complete span");

    const jobSpans = all.filter((s) => s.attributes["job.id"] === jobId);
    const traceIds = new Set(jobSpans.map((s) => s.traceId));
    expect([...traceIds], JSON.stringify(jobSpans.map((s) => [s.name, s.traceId]))).toHaveLength(1);
    const traceId = [...traceIds][0] as string;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);

    // The trace id the job keeps, in its row and in GetJob.
    const row = await h.job(jobId);
    expect(row.traceId).toBe(traceId);
    expect(row.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    expect((await client.jobs.getJob({ id: jobId })).job?.traceId).toBe(traceId);

    const trace = all.filter((s) => s.traceId === traceId);
    const dispatcherPid = dispatcher.pid;
    const workerPid = worker.pid;
    const one = (pred: (s: SpanRecord) => boolean, what: string): SpanRecord => {
      const found = trace.filter(pred);
      expect(found.length, `${what} in ${JSON.stringify(trace.map((s) => s.name))}`).toBe(1);
      return found[0] as SpanRecord;
    };
    const server = one((s) => s.kind === "SERVER" && s.attributes["rpc.system"] === "grpc", "one gRPC server span");
    expect(server.name).toMatch(/dispatcher\.v1\.JobService\/RunDiagnosticJob$/);
    expect(server.parentSpanId).toBeUndefined();
    const create = one((s) => s.name === "job.create", "job.create");
    const relay = one((s) => s.name === "outbox.publish", "outbox.publish");
    const produce = one((s) => s.kind === "PRODUCER", "the publish span");
    const consume = one((s) => s.kind === "CONSUMER", "the consumer span");
    const start = one((s) => s.name === "job.start", "job.start");
    const handle = one((s) => s.name === "job.handle diagnostic", "job.handle diagnostic");
    const complete = one((s) => s.name === "job.complete", "job.complete");

    // Which process made which span.
    for (const s of [server, create, relay, produce]) expect(s.pid, s.name).toBe(dispatcherPid);
    for (const s of [consume, start, handle, complete]) expect(s.pid, s.name).toBe(workerPid);

    // The causal chain.
    expect(create.parentSpanId).toBe(server.spanId);
    expect(relay.parentSpanId).toBe(create.spanId);
    expect(produce.parentSpanId).toBe(relay.spanId);
    expect(consume.parentSpanId).toBe(produce.spanId);
    for (const s of [start, handle, complete]) expect(s.parentSpanId, s.name).toBe(consume.spanId);

    // One tree: every span's parent is in the trace, and the server span is its only root.
    const ids = new Set(trace.map((s) => s.spanId));
    expect(trace.filter((s) => s.parentSpanId === undefined).map((s) => s.name)).toEqual([server.name]);
    for (const s of trace) if (s.parentSpanId) expect(ids.has(s.parentSpanId), `parent of ${s.name}`).toBe(true);

    // Job id and kind on every job span; the attempt once the job runs.
    for (const s of [create, relay, produce, consume, start, handle, complete]) {
      expect(s.attributes, s.name).toMatchObject({ "job.id": jobId, "job.kind": "diagnostic" });
    }
    for (const s of [consume, handle, complete]) expect(s.attributes["job.attempt"], s.name).toBe(1);
    expect(trace.every((s) => s.status.code !== "ERROR")).toBe(true);
    expect((await h.events(jobId)).filter((t) => t !== "progress")).toEqual(["created", "started", "succeeded"]);
  });
});
