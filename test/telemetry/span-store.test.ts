// The embedded span store: keeps job traces (and only those), promotes spans that ended before their trace's first job
// span, and stays within its count and age; fed by a real tracer provider through SpanStoreProcessor.
import { context, trace, type Tracer } from "@opentelemetry/api";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { afterEach, describe, expect, it } from "vitest";
import type { SpanRecord } from "../../src/telemetry/file-exporter.js";
import { SpanStore, SpanStoreProcessor } from "../../src/telemetry/span-store.js";

let clock = 1_000_000_000_000;
let provider: BasicTracerProvider | undefined;

function setup(maxSpans: number, maxAgeMs = 3_600_000): { store: SpanStore; tracer: Tracer } {
  const store = new SpanStore({ maxSpans, maxAgeMs, now: () => clock });
  provider = new BasicTracerProvider({ spanProcessors: [new SpanStoreProcessor(store)] });
  return { store, tracer: provider.getTracer("test") };
}

afterEach(async () => {
  await provider?.shutdown();
  clock = 1_000_000_000_000;
});

/** A trace of `n` spans: a root, and children that end before it; the first child carries job.id when `jobId`. */
function jobTrace(tracer: Tracer, n: number, jobId?: string, at = clock): string {
  const root = tracer.startSpan("rpc", { startTime: at }, context.active());
  const ctx = trace.setSpan(context.active(), root);
  for (let i = 1; i < n; i++) {
    const child = tracer.startSpan(`child ${i}`, { startTime: at, attributes: i === 1 && jobId ? { "job.id": jobId } : {} }, ctx);
    child.end(at + i);
  }
  root.end(at + n);
  return root.spanContext().traceId;
}

const names = (spans: SpanRecord[] | undefined): string[] => (spans ?? []).map((s) => s.name);

describe("SpanStore", () => {
  it("keeps the spans of a job trace, the root that ends after the job span included", () => {
    const { store, tracer } = setup(100);
    const id = jobTrace(tracer, 3, "J1");
    expect(names(store.trace(id)?.spans)).toEqual(["child 1", "child 2", "rpc"]);
    expect(store.trace(id)?.evicted).toBe(false);
    expect(store.size).toBe(3);
  });

  it("does not let traces without a job push job traces out", () => {
    const { store, tracer } = setup(10);
    const job = jobTrace(tracer, 4, "J1");
    for (let i = 0; i < 500; i++) jobTrace(tracer, 2);
    expect(names(store.trace(job)?.spans)).toEqual(["child 1", "child 2", "child 3", "rpc"]);
    expect(store.size).toBe(4);
  });

  it("moves spans that ended before the trace's first job span into the store with it", () => {
    const { store, tracer } = setup(100);
    const root = tracer.startSpan("rpc", {}, context.active());
    const ctx = trace.setSpan(context.active(), root);
    tracer.startSpan("auth", {}, ctx).end();
    tracer.startSpan("job.create", { attributes: { "job.id": "J1" } }, ctx).end();
    root.end();
    const id = root.spanContext().traceId;
    expect(names(store.trace(id)?.spans)).toEqual(["auth", "job.create", "rpc"]);
    expect(store.size).toBe(3);
  });

  it("drops the oldest spans past maxSpans and says the trace is incomplete", () => {
    const { store, tracer } = setup(5);
    const first = jobTrace(tracer, 3, "J1");
    const second = jobTrace(tracer, 3, "J2");
    expect(store.size).toBe(5);
    expect(names(store.trace(first)?.spans)).toEqual(["child 2", "rpc"]);
    expect(store.trace(first)?.evicted).toBe(true);
    expect(names(store.trace(second)?.spans)).toEqual(["child 1", "child 2", "rpc"]);
    jobTrace(tracer, 3, "J3");
    expect(store.trace(first)).toBeUndefined();
    expect(store.size).toBe(5);
  });

  it("drops spans older than maxAgeMs", () => {
    const { store, tracer } = setup(100, 60_000);
    const old = jobTrace(tracer, 2, "J1", clock);
    clock += 30_000;
    const young = jobTrace(tracer, 2, "J2", clock);
    expect(store.size).toBe(4);
    clock += 40_000;
    expect(store.trace(old)).toBeUndefined();
    expect(names(store.trace(young)?.spans)).toEqual(["child 1", "rpc"]);
    expect(store.size).toBe(2);
  });

  it("holds many traces within its bounds", () => {
    const { store, tracer } = setup(1_000);
    const ids: string[] = [];
    for (let i = 0; i < 2_000; i++) ids.push(jobTrace(tracer, 5, `J${i}`));
    expect(store.size).toBe(1_000);
    expect(store.trace(ids[0] as string)).toBeUndefined();
    expect(store.trace(ids.at(-1) as string)?.spans).toHaveLength(5);
  });
});
