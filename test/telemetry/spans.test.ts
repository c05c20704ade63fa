// withSpan, recordError, jobAttributes and currentTraceId against a real SDK with an in-memory exporter.
import { context, ROOT_CONTEXT, SpanStatusCode, trace } from "@opentelemetry/api";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { currentTraceId, jobAttributes, setSpansRecorded, SpanKind, withSpan } from "../../src/telemetry/spans.js";
import { startInMemoryTracing } from "./in-memory.js";

const tracing = startInMemoryTracing();
afterAll(() => tracing.stop());
beforeEach(() => tracing.reset());

const byName = (name: string) => {
  const s = tracing.spans().find((x) => x.name === name);
  if (!s) throw new Error(`no span ${name}; have ${tracing.spans().map((x) => x.name).join(", ")}`);
  return s;
};

describe("withSpan", () => {
  it("returns the result, ends the span and makes it the active parent of nested spans", async () => {
    const result = await withSpan("outer", { kind: SpanKind.SERVER, attributes: jobAttributes({ id: "j1", kind: "launch_server", attempt: 2 }) }, async () => {
      await new Promise((r) => setTimeout(r, 5));
      return withSpan("inner", {}, () => 42);
    });
    expect(result).toBe(42);
    const outer = byName("outer");
    const inner = byName("inner");
    expect(outer.ended && inner.ended).toBe(true);
    expect(outer.kind).toBe(SpanKind.SERVER);
    expect(outer.attributes).toMatchObject({ "job.id": "j1", "job.kind": "launch_server", "job.attempt": 2 });
    expect(inner.spanContext().traceId).toBe(outer.spanContext().traceId);
    expect(inner.parentSpanContext?.spanId).toBe(outer.spanContext().spanId);
    expect(outer.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("records a thrown error, sets ERROR and rethrows the same error", async () => {
    const boom = new TypeError("disk on fire");
    await expect(withSpan("failing", {}, () => Promise.reject(boom))).rejects.toBe(boom);
    const s = byName("failing");
    expect(s.ended).toBe(true);
    expect(s.status).toEqual({ code: SpanStatusCode.ERROR, message: "TypeError: disk on fire" });
    expect(s.events.map((e) => e.name)).toEqual(["exception"]);
    expect(s.events[0]?.attributes?.["exception.message"]).toBe("disk on fire");
  });

  it("also catches synchronous throws and non-Error values", async () => {
    await expect(
      withSpan("sync-throw", {}, () => {
        throw "plain string";
      }),
    ).rejects.toBe("plain string");
    expect(byName("sync-throw").status.code).toBe(SpanStatusCode.ERROR);
  });

  it("honours an explicit parent, root and links", async () => {
    await withSpan("cause", {}, async (cause) => {
      const causeCtx = cause.spanContext();
      await withSpan("detached", { root: true, links: [{ context: causeCtx }] }, () => undefined);
      await withSpan("explicit", { parent: trace.setSpanContext(context.active(), { ...causeCtx, spanId: "00f067aa0ba902b7" }) }, () => undefined);
    });
    const cause = byName("cause");
    const detached = byName("detached");
    expect(detached.spanContext().traceId).not.toBe(cause.spanContext().traceId);
    expect(detached.parentSpanContext).toBeUndefined();
    expect(detached.links[0]?.context.spanId).toBe(cause.spanContext().spanId);
    expect(byName("explicit").parentSpanContext?.spanId).toBe("00f067aa0ba902b7");
  });

  it("leaves the attempt out of job attributes when unknown", () => {
    expect(jobAttributes({ id: "j", kind: "k" })).toEqual({ "job.id": "j", "job.kind": "k" });
  });
});

describe("currentTraceId", () => {
  it("is the active span's trace id inside a span and undefined outside", async () => {
    expect(currentTraceId()).toBeUndefined();
    const inside = await withSpan("t", {}, (span) => {
      expect(currentTraceId()).toBe(span.spanContext().traceId);
      return currentTraceId();
    });
    expect(inside).toMatch(/^[0-9a-f]{32}$/);
    expect(currentTraceId()).toBeUndefined();
  });
});

describe("withSpan in a process that records no span", () => {
  const remote = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", traceFlags: 1, isRemote: true };
  beforeEach(() => setSpansRecorded(false));
  afterEach(() => setSpansRecorded(undefined));

  it("makes no span: fn runs in the parent context, with the parent's span, and errors pass unchanged", async () => {
    const parent = trace.setSpanContext(ROOT_CONTEXT, remote);
    const seen = await withSpan("process m", { kind: SpanKind.CONSUMER, parent }, async (span) => {
      await new Promise((r) => setTimeout(r, 1));
      return { given: span.spanContext().spanId, active: trace.getSpanContext(context.active())?.spanId, traceId: currentTraceId() };
    });
    expect(seen).toEqual({ given: remote.spanId, active: remote.spanId, traceId: remote.traceId });
    const boom = new Error("boom");
    await expect(withSpan("failing", {}, () => Promise.reject(boom))).rejects.toBe(boom);
    expect(tracing.spans()).toEqual([]);
  });

  it("still starts a new trace when asked for a root", async () => {
    await withSpan("detached", { root: true }, () => undefined);
    expect(tracing.spans().map((s) => s.name)).toEqual(["detached"]);
  });
});
