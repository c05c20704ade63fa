// A job's trace from the embedded store, as TraceService.GetJobTrace returns it from a real process running the
// dispatcher, worker and monitor roles with no OTLP endpoint: the RPC, relay and worker spans of a diagnostic job as
// one tree under the job's trace id, with a link to the external trace UI when one is configured. The job is read
// under GetJob's scope (another user's job is NOT_FOUND), and a caller's unsampled traceparent does not hide the job.
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { DiagnosticOutcome } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { SpanKind, TraceStorage, type GetJobTraceResponse, type Span } from "../../src/gen/proto/dispatcher/v1/traces.js";
import { until } from "../support/poll.js";
import { createTestApiKey, createTestEnv, jobEnd, killStrayDispatchers, startDispatcher, type TestEnv } from "../support/process.js";

let env: TestEnv;
let admin: DispatcherClients;
let reader: DispatcherClients;

beforeAll(async () => {
  env = await createTestEnv({ label: "jobtrace", migrate: true, env: { DISPATCHER_TELEMETRY_TRACE_UI_URL: "http://jaeger.test:16686/trace/{traceId}" } });
  const adminKey = await createTestApiKey(env.urls.provisioning, { role: "admin" });
  const readerKey = await createTestApiKey(env.urls.provisioning, { role: "reader" });
  await startDispatcher(env, ["serve", "--role", "dispatcher,worker,monitor"], { timeoutMs: 60_000 });
  admin = createDispatcherClients({ address: env.address, token: adminKey.secret, retry: false });
  reader = createDispatcherClients({ address: env.address, token: readerKey.secret, retry: false });
}, 90_000);

afterAll(async () => {
  admin?.close();
  reader?.close();
  await killStrayDispatchers();
  await env?.cleanup();
});

/** GetJobTrace until the worker's last span (job.complete) is in: spans are kept once they end, just after the commit. */
async function completeTrace(jobId: string): Promise<GetJobTraceResponse> {
  return until(async () => {
    const trace = await admin.traces.getJobTrace({ jobId });
    return trace.spans.some((s) => s.name === "job.complete") ? trace : null;
  }, 20_000, `the job.complete span of ${jobId}`);
}

describe("TraceService.GetJobTrace on the embedded store", () => {
  let jobId = "";

  it("returns the RPC, relay and worker spans of a job as one tree under the job's trace id", async () => {
    const { job } = await admin.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED, note: "trace" });
    jobId = job?.id ?? "";
    await jobEnd(admin, job);
    const trace = await completeTrace(jobId);
    const traceId = (await admin.jobs.getJob({ id: jobId })).job?.traceId;
    expect(trace.traceId).toBe(traceId);
    expect(trace.storage).toBe(TraceStorage.TRACE_STORAGE_EMBEDDED);
    expect(trace.truncated).toBe(false);
    expect(trace.externalUrl).toBe(`http://jaeger.test:16686/trace/${traceId}`);

    const one = (pred: (s: Span) => boolean, what: string): Span => {
      const found = trace.spans.filter(pred);
      expect(found.length, `${what} in ${JSON.stringify(trace.spans.map((s) => s.name))}`).toBe(1);
      return found[0] as Span;
    };
    const server = one((s) => s.kind === SpanKind.SPAN_KIND_SERVER && s.attributes["rpc.system"] === "grpc", "the RPC's server span");
    expect(server.name).toMatch(/JobService\/RunDiagnosticJob$/);
    expect(server.parentSpanId).toBe("");
    const create = one((s) => s.name === "job.create", "job.create");
    const relay = one((s) => s.name === "outbox.publish", "outbox.publish");
    const produce = one((s) => s.kind === SpanKind.SPAN_KIND_PRODUCER, "the publish span");
    const consume = one((s) => s.kind === SpanKind.SPAN_KIND_CONSUMER, "the consumer span");
    const handle = one((s) => s.name === "job.handle diagnostic", "job.handle diagnostic");
    expect(create.parentSpanId).toBe(server.spanId);
    expect(relay.parentSpanId).toBe(create.spanId);
    expect(produce.parentSpanId).toBe(relay.spanId);
    expect(consume.parentSpanId).toBe(produce.spanId);
    expect(handle.parentSpanId).toBe(consume.spanId);
    expect(handle.attributes).toMatchObject({ "job.id": jobId, "job.kind": "diagnostic", "job.attempt": "1" });

    // One tree, ordered by start time, with times and durations that make a waterfall.
    const ids = new Set(trace.spans.map((s) => s.spanId));
    for (const s of trace.spans) if (s.parentSpanId) expect(ids.has(s.parentSpanId), `parent of ${s.name}`).toBe(true);
    const starts = trace.spans.map((s) => s.startTime?.getTime() ?? 0);
    expect(starts).toEqual([...starts].sort((a, b) => a - b));
    expect(Number(server.durationMicros)).toBeGreaterThan(0);
    expect(trace.spans.every((s) => s.service === "dispatcher")).toBe(true);
  }, 60_000);

  it("answers NOT_FOUND for a job the caller may not see, as GetJob does", async () => {
    expect(jobId).not.toBe("");
    await expect(reader.jobs.getJob({ id: jobId })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(reader.traces.getJobTrace({ jobId })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(admin.traces.getJobTrace({ jobId: "01JZZZZZZZZZZZZZZZZZZZZZZZ" })).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  it("answers INVALID_ARGUMENT naming job_id when it is missing", async () => {
    await expect(admin.traces.getJobTrace({ jobId: "" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "job_id" }] });
  });

  it("keeps the trace of a job whose caller sent an unsampled traceparent (the CLI records nothing)", async () => {
    const caller = "0af7651916cd43dd8448eb211c80319c";
    const { job } = await admin.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED }, { metadata: { traceparent: `00-${caller}-b7ad6b7169203331-00` } });
    await jobEnd(admin, job);
    const trace = await completeTrace(job?.id ?? "");
    expect(trace.traceId).toBe(caller);
    expect(trace.spans.find((s) => s.kind === SpanKind.SPAN_KIND_SERVER)?.parentSpanId).toBe("b7ad6b7169203331");
  }, 60_000);
});
