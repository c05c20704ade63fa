// The worker consumer on the real NATS: nak with delay, term, working(), the max-deliveries advisory, bounded
// concurrency, graceful stop, and the trace continuing from publisher to consumer.
import { AckPolicy } from "@nats-io/jetstream";
import { SpanKind } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { consume, ensureWorkerConsumer, type ConsumeOptions, type Consumption, type Delivery, type WorkerConsumerOptions } from "../../src/mq/consumer.js";
import { ensureJobsStream, publishJob } from "../../src/mq/jobs-stream.js";
import { contextFromTraceparent } from "../../src/telemetry/propagation.js";
import { withSpan } from "../../src/telemetry/spans.js";
import { startInMemoryTracing } from "../telemetry/in-memory.js";
import { captureLogger, deleteStream, openJetStream, testStreamName, type TestJetStream } from "./support.js";
import { until } from "../support/poll.js";

const tracing = startInMemoryTracing();
let t: TestJetStream;
const streams: string[] = [];
const running: Consumption[] = [];
beforeAll(async () => {
  t = await openJetStream();
});
afterAll(async () => {
  await Promise.all(running.map((c) => c.stop()));
  for (const s of streams) await deleteStream(t.jsm, s);
  await t.close();
  await tracing.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bytes = (s: string) => new TextEncoder().encode(s);

interface Seen {
  msgId: string | undefined;
  deliveryCount: number;
  at: number;
}

/** A fresh stream and durable consumer; `start` consumes it with `onMessage`, recording every delivery. */
async function fixture(label: string, consumer: Partial<WorkerConsumerOptions> = {}) {
  const stream = testStreamName(label);
  streams.push(stream);
  const prefix = `t${stream.toLowerCase()}`;
  await ensureJobsStream(t.jsm, { stream, subjectPrefix: prefix });
  const durable = "workers";
  await ensureWorkerConsumer(t.jsm, { stream, durable, filterSubjects: [`${prefix}.>`], ackWaitMs: 10_000, maxDeliver: 5, ...consumer });
  const seen: Seen[] = [];
  const { log, lines } = captureLogger("warn");
  return {
    stream,
    durable,
    subject: `${prefix}.test_kind`,
    seen,
    lines,
    log,
    publish: (msgId: string) => publishJob(t.js, { subject: `${prefix}.test_kind`, msgId, payload: bytes(msgId) }),
    async start(onMessage: (d: Delivery) => Promise<void>, extra: Partial<ConsumeOptions> = {}) {
      const c = await consume(t.js, {
        stream,
        durable,
        maxMessages: 4,
        log,
        ...extra,
        onMessage: async (d) => {
          seen.push({ msgId: d.msgId, deliveryCount: d.deliveryCount, at: Date.now() });
          await onMessage(d);
        },
      });
      running.push(c);
      return c;
    },
  };
}

describe("ensureWorkerConsumer", () => {
  it("creates an explicit-ack durable pull consumer and updates it in place", async () => {
    const f = await fixture("cfg", { backoffMs: [1_000, 5_000], maxDeliver: 4 });
    const info = await t.jsm.consumers.info(f.stream, f.durable);
    expect(info.config.ack_policy).toBe("explicit");
    expect(info.config.deliver_subject).toBeUndefined();
    expect(info.config.backoff).toEqual([1e9, 5e9]);
    const again = await ensureWorkerConsumer(t.jsm, { stream: f.stream, durable: f.durable, filterSubjects: [`${f.subject}`], ackWaitMs: 7_000, maxDeliver: 3 });
    expect(again.config.ack_wait).toBe(7e9);
    expect(again.config.max_deliver).toBe(3);
    expect(again.config.backoff ?? []).toEqual([]);
    expect(again.config.filter_subject).toBe(f.subject);
  });
});

describe("ensureWorkerConsumer reconciles an existing consumer at start", () => {
  it("logs what it changes and leaves a matching consumer alone", async () => {
    const f = await fixture("crecon", { ackWaitMs: 30_000, maxAckPending: 1_000 });
    const { log, lines } = captureLogger("info");
    const wanted = { stream: f.stream, durable: f.durable, filterSubjects: [f.subject.replace(/test_kind$/, ">")], ackWaitMs: 11_000, maxDeliver: 5, maxAckPending: 10_000, log };
    const info = await ensureWorkerConsumer(t.jsm, wanted);
    expect(info.config.ack_wait).toBe(11e9);
    expect(info.config.max_ack_pending).toBe(10_000);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ consumer: f.durable, changes: [{ setting: "ack_wait_ms", from: 30_000, to: 11_000 }, { setting: "max_ack_pending", from: 1_000, to: 10_000 }] });
    await ensureWorkerConsumer(t.jsm, wanted);
    expect(lines).toHaveLength(1);
  });

  it("refuses a push consumer of the same name, saying how to replace it", async () => {
    const stream = testStreamName("cpush");
    streams.push(stream);
    const prefix = `t${stream.toLowerCase()}`;
    await ensureJobsStream(t.jsm, { stream, subjectPrefix: prefix });
    await t.jsm.consumers.add(stream, { durable_name: "workers", ack_policy: AckPolicy.Explicit, deliver_subject: `${prefix}_deliver` });
    await expect(ensureWorkerConsumer(t.jsm, { stream, durable: "workers", filterSubjects: [`${prefix}.>`], ackWaitMs: 11_000, maxDeliver: -1 })).rejects.toMatchObject({
      name: "FailedPreconditionError",
      reason: "JOBS_CONSUMER_INCOMPATIBLE",
      message: expect.stringMatching(/push consumer.*nats consumer rm .* workers/),
    });
  });
});

describe("consume", () => {
  it("redelivers a nak'ed message after the requested delay, not before", async () => {
    const f = await fixture("nak");
    await f.start(async (d) => (d.deliveryCount === 1 ? d.nak(1_500) : d.ack()));
    await f.publish("m1");
    await until(() => f.seen.length >= 2, 6_000, "redelivery");
    const [first, second] = f.seen as [Seen, Seen];
    expect(second.deliveryCount).toBe(2);
    expect(second.at - first.at).toBeGreaterThanOrEqual(1_400);
  });

  it("never redelivers a term'ed message, even after the ack wait", async () => {
    const f = await fixture("term", { ackWaitMs: 1_000 });
    await f.start(async (d) => d.term("permanent failure"));
    await f.publish("m1");
    await until(() => f.seen.length >= 1, 5_000, "delivery");
    await sleep(2_500);
    expect(f.seen).toHaveLength(1);
    const info = await t.jsm.consumers.info(f.stream, f.durable);
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
  });

  it("working() keeps a slow delivery past the ack wait; without it the message is redelivered", async () => {
    const f = await fixture("working", { ackWaitMs: 1_000 });
    let keptDone = false;
    await f.start(async (d) => {
      if (d.msgId === "kept") {
        for (let i = 0; i < 8; i++) {
          await sleep(300);
          d.working();
        }
        keptDone = true;
      } else if (d.deliveryCount === 1) {
        await sleep(2_400);
      }
      d.ack();
    });
    await f.publish("kept");
    await f.publish("lapsed");
    await until(() => f.seen.filter((s) => s.msgId === "lapsed").length >= 2, 6_000, "redelivery of the lapsed message");
    await until(() => keptDone, 5_000, "the kept message to finish");
    // The kept message ran 2.4 s, more than twice its ack wait, and was never delivered again.
    expect(f.seen.filter((s) => s.msgId === "kept")).toHaveLength(1);
  });

  it("sends working() itself every heartbeatMs while a handler runs", async () => {
    const f = await fixture("heartbeat", { ackWaitMs: 1_000 });
    await f.start(async (d) => {
      await sleep(2_500);
      d.ack();
    }, { heartbeatMs: 300 });
    await f.publish("slow");
    await until(() => f.seen.length >= 1, 5_000, "delivery");
    await sleep(3_000);
    expect(f.seen).toHaveLength(1);
  });

  it("naks after retryDelayMs when the handler throws or forgets to settle, and logs it", async () => {
    const f = await fixture("throws");
    await f.start(
      async (d) => {
        if (d.deliveryCount === 1) throw new Error("handler bug");
        if (d.deliveryCount === 2) return; // unsettled
        d.ack();
      },
      { retryDelayMs: 200 },
    );
    await f.publish("m1");
    await until(() => f.seen.length >= 3, 5_000, "two redeliveries");
    expect(f.seen.map((s) => s.deliveryCount)).toEqual([1, 2, 3]);
    const errors = f.lines.filter((l) => l.level === "error").map((l) => (l.err as { message: string }).message);
    expect(errors).toEqual(["handler bug", "handler returned without ack, nak or term"]);
  });

  it("runs at most maxMessages handlers at once and handles each message once", async () => {
    const f = await fixture("bounded");
    let now = 0;
    let peak = 0;
    await f.start(
      async (d) => {
        peak = Math.max(peak, ++now);
        await sleep(60);
        now--;
        d.ack();
      },
      { maxMessages: 3 },
    );
    await Promise.all(Array.from({ length: 15 }, (_, i) => f.publish(`m${i}`)));
    await until(() => f.seen.length >= 15, 10_000, "all messages");
    await sleep(200);
    expect(peak).toBe(3);
    expect(new Set(f.seen.map((s) => s.msgId)).size).toBe(15);
    expect(f.seen).toHaveLength(15);
  });

  it("stop() lets a running handler finish and takes nothing more", async () => {
    const f = await fixture("stop");
    let finished = false;
    const c = await f.start(async (d) => {
      await sleep(500);
      finished = true;
      d.ack();
    });
    await f.publish("m1");
    await until(() => f.seen.length === 1, 5_000, "delivery");
    await c.stop();
    expect(finished).toBe(true);
    await f.publish("m2");
    await sleep(500);
    expect(f.seen).toHaveLength(1);
    expect((await t.jsm.consumers.info(f.stream, f.durable)).num_pending).toBe(1);
  });
});

describe("trace context", () => {
  it("continues from the publishing RPC to the consumer and its handler", async () => {
    const f = await fixture("trace");
    let handlerTrace: string | undefined;
    await f.start(async (d) => {
      await withSpan("handler", {}, (span) => {
        handlerTrace = span.spanContext().traceId;
      });
      d.ack();
    });
    tracing.reset();
    const rpcTrace = await withSpan("rpc", { kind: SpanKind.SERVER }, async (span) => {
      await f.publish("traced");
      return span.spanContext().traceId;
    });
    await until(() => tracing.spans().some((s) => s.name === "handler"), 5_000, "handler span");
    await until(() => tracing.spans().some((s) => s.kind === SpanKind.CONSUMER), 5_000, "consumer span");
    const spans = tracing.spans();
    const rpc = spans.find((s) => s.name === "rpc");
    const producer = spans.find((s) => s.kind === SpanKind.PRODUCER);
    const consumer = spans.find((s) => s.kind === SpanKind.CONSUMER);
    const handler = spans.find((s) => s.name === "handler");
    expect(handlerTrace).toBe(rpcTrace);
    for (const s of [producer, consumer, handler]) expect(s?.spanContext().traceId).toBe(rpcTrace);
    expect(producer?.parentSpanContext?.spanId).toBe(rpc?.spanContext().spanId);
    expect(consumer?.parentSpanContext?.spanId).toBe(producer?.spanContext().spanId);
    expect(consumer?.parentSpanContext?.isRemote).toBe(true);
    expect(handler?.parentSpanContext?.spanId).toBe(consumer?.spanContext().spanId);
    expect(consumer?.attributes).toMatchObject({ "messaging.system": "nats", "messaging.destination.name": f.subject, "messaging.message.id": "traced" });
  });

  it("continues a stored traceparent when a relay publishes outside any span", async () => {
    const f = await fixture("relay");
    await f.start(async (d) => d.ack());
    tracing.reset();
    const stored = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    await publishJob(t.js, { subject: f.subject, msgId: "relayed", payload: bytes("x"), parent: contextFromTraceparent(stored) });
    await until(() => tracing.spans().some((s) => s.kind === SpanKind.CONSUMER), 5_000, "consumer span");
    const producer = tracing.spans().find((s) => s.kind === SpanKind.PRODUCER);
    const consumer = tracing.spans().find((s) => s.kind === SpanKind.CONSUMER);
    expect(producer?.spanContext().traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(producer?.parentSpanContext?.spanId).toBe("00f067aa0ba902b7");
    expect(consumer?.spanContext().traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
  });
});
