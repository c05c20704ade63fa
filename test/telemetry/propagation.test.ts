// Trace context into and out of NATS headers and stored traceparent strings.
import { headers } from "@nats-io/transport-node";
import { context, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { afterAll, describe, expect, it } from "vitest";
import {
  contextFromTraceparent,
  extractTraceHeaders,
  injectTraceHeaders,
  storedTraceContext,
  traceparentOf,
} from "../../src/telemetry/propagation.js";
import { withSpan } from "../../src/telemetry/spans.js";
import { startInMemoryTracing } from "./in-memory.js";

const tracing = startInMemoryTracing();
afterAll(() => tracing.stop());

const TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("NATS headers", () => {
  it("carry the active span to a child span on the other side", async () => {
    const { sent, parentSpanId, traceId } = await withSpan("publish", {}, (span) => ({
      sent: injectTraceHeaders(),
      parentSpanId: span.spanContext().spanId,
      traceId: span.spanContext().traceId,
    }));
    expect(sent.get("traceparent")).toBe(`00-${traceId}-${parentSpanId}-01`);
    const received = extractTraceHeaders(sent);
    const child = await withSpan("consume", { parent: received }, (span) => span);
    expect(child.spanContext().traceId).toBe(traceId);
    const exported = tracing.spans().find((s) => s.name === "consume");
    expect(exported?.parentSpanContext?.spanId).toBe(parentSpanId);
    expect(exported?.parentSpanContext?.isRemote).toBe(true);
  });

  it("keep existing headers and add tracestate when there is one", () => {
    const h = headers();
    h.set("Nats-Msg-Id", "job-1:1");
    const ctx = contextFromTraceparent(TP, "vendor=abc");
    injectTraceHeaders(h, ctx);
    expect(h.get("Nats-Msg-Id")).toBe("job-1:1");
    expect(h.get("traceparent")).toBe(TP);
    expect(h.get("tracestate")).toBe("vendor=abc");
  });

  it("are read ignoring the case of the header name", () => {
    const h = headers();
    h.set("Traceparent", TP);
    expect(trace.getSpanContext(extractTraceHeaders(h))?.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
  });

  it("without a trace give the base context, and nothing is injected outside a span", () => {
    expect(extractTraceHeaders(undefined)).toBe(ROOT_CONTEXT);
    expect(extractTraceHeaders(headers())).toBe(ROOT_CONTEXT);
    const h = injectTraceHeaders(headers(), ROOT_CONTEXT);
    expect(h.has("traceparent")).toBe(false);
  });
});

describe("stored traceparent", () => {
  it("round-trips through a string", () => {
    const ctx = contextFromTraceparent(TP);
    expect(traceparentOf(ctx)).toBe(TP);
    expect(storedTraceContext(contextFromTraceparent(TP, "a=1"))).toEqual({ traceparent: TP, tracestate: "a=1" });
  });

  it("is captured from the active span", async () => {
    const [tp, spanId] = await withSpan("rpc", {}, (span) => [traceparentOf(), span.spanContext().spanId]);
    expect(tp).toMatch(new RegExp(`^00-[0-9a-f]{32}-${spanId}-01$`));
    expect(traceparentOf(context.active())).toBeUndefined();
  });

  it("when missing or malformed yields the base context instead of failing", () => {
    for (const bad of [undefined, null, "", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"]) {
      expect(contextFromTraceparent(bad)).toBe(ROOT_CONTEXT);
    }
  });
});
