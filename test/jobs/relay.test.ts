// The outbox relay against the real MariaDB and NATS: each created job reaches the stream exactly once with its
// trace context, rows leave the outbox in batches once published, and rows the fast path never saw are published by the
// poll loop.
import type { JetStreamClient } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOutboxRelay } from "../../src/jobs/relay.js";
import { createLogger } from "../../src/log.js";
import { startInMemoryTracing } from "../telemetry/in-memory.js";
import { openHarness, principal, streamMessages, type JobsHarness } from "./support.js";
import { until } from "../support/poll.js";

const tracing = startInMemoryTracing();
afterAll(() => tracing.stop());

const note = (text: string) => ({ kind: "note", payload: { text }, requester: principal("reader-token") });

describe("outbox relay, fast path", () => {
  let h: JobsHarness;
  beforeAll(async () => {
    h = await openHarness("relay_fast", { server: false, pollIntervalMs: 60_000 });
  });
  afterAll(() => h.close());

  it("publishes each created job exactly once, with Nats-Msg-Id <id>:1, the payload and the job's trace", async () => {
    const started = Date.now();
    const created = [];
    for (let i = 0; i < 300; i += 25) created.push(...(await Promise.all(Array.from({ length: 25 }, (_, j) => h.jobs.createJob(note(`n${i + j}`))))));
    const ids = created.map((c) => c.job.id);
    await until(async () => h.relay?.stats().marked === 300, 10_000, "300 rows marked");
    const msgs = await streamMessages(h.jsm, h.stream);
    expect(msgs.length).toBe(300);
    expect(msgs.map((m) => m.msgId).sort()).toEqual(ids.map((id) => `${id}:1`).sort());
    const first = msgs.find((m) => m.msgId === `${ids[0]}:1`);
    expect(JSON.parse(first?.data ?? "")).toEqual({ jobId: ids[0], kind: "note", publication: 1 });
    // The message continues the job's trace: same trace id as the job row.
    const traceId = created[0]?.job.traceId;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(first?.traceparent.split("-")[1]).toBe(traceId);
    // Batched marking: at most one statement per 50 ms window (the default markDelayMs), however many rows.
    const stats = h.relay?.stats();
    expect(stats?.published).toBe(300);
    expect(stats?.markStatements).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 50) + 1);
    expect(stats?.markStatements).toBeLessThan(150);
    // Published rows leave the outbox; their jobs keep when they were last published.
    expect(await h.db.outboxEntry.count({ where: { jobId: { in: ids } } })).toBe(0);
    expect(await h.db.job.count({ where: { publishedAt: null } })).toBe(0);
    // The same publications handed over again are deduplicated by JetStream: still one message per job.
    const before = stats?.duplicates ?? 0;
    for (const jobId of ids.slice(0, 5)) {
      h.relay?.submit({ id: 0n, jobId, kind: "note", publication: 1, msgId: `${jobId}:1`, subject: `${h.subjectPrefix}.note`, headers: {}, payload: { jobId, kind: "note", publication: 1 } });
    }
    await until(async () => (h.relay?.stats().duplicates ?? 0) - before === 5, 5_000, "5 duplicates");
    expect((await streamMessages(h.jsm, h.stream)).length).toBe(300);
  });

  it("traces: job.create → outbox.publish → publish <subject>, one trace", async () => {
    tracing.reset();
    const { job } = await h.jobs.createJob(note("traced"));
    await until(async () => tracing.spans().some((s) => s.name.startsWith("publish ") && s.attributes["job.id"] === job.id), 5_000, "publish span");
    const spans = tracing.spans().filter((s) => s.spanContext().traceId === job.traceId);
    const create = spans.find((s) => s.name === "job.create");
    const relay = spans.find((s) => s.name === "outbox.publish");
    const publish = spans.find((s) => s.name.startsWith("publish "));
    expect(create?.attributes).toMatchObject({ "job.id": job.id, "job.kind": "note" });
    expect(relay?.parentSpanContext?.spanId).toBe(create?.spanContext().spanId);
    expect(publish?.parentSpanContext?.spanId).toBe(relay?.spanContext().spanId);
  });
});

describe("outbox relay, poll loop", () => {
  let h: JobsHarness;
  beforeAll(async () => {
    // No relay in the service: rows stay unpublished, as after a crash between commit and publish.
    h = await openHarness("relay_poll", { server: false, relay: false });
  });
  afterAll(() => h.close());

  it("publishes rows left unpublished for more than a second, once, and removes them", async () => {
    const created = await Promise.all(Array.from({ length: 20 }, (_, i) => h.jobs.createJob(note(`lost${i}`))));
    expect(await h.db.outboxEntry.count()).toBe(20);
    const relay = createOutboxRelay({ sql: h.sql, js: h.js, log: createLogger({ level: "silent" }), pollIntervalMs: 100, batchSize: 8 });
    // Fresh rows belong to the fast path: a pass right now takes none of them.
    expect(await relay.pollOnce()).toBe(0);
    relay.start();
    try {
      await until(async () => (await h.db.outboxEntry.count()) === 0, 10_000, "rows published");
      const msgs = await streamMessages(h.jsm, h.stream);
      expect(msgs.map((m) => m.msgId).sort()).toEqual(created.map((c) => `${c.job.id}:1`).sort());
      expect(relay.stats().recovered).toBe(20);
      expect(await h.db.job.count({ where: { publishedAt: null } })).toBe(0);
      expect(await relay.pollOnce()).toBe(0);
    } finally {
      await relay.stop();
    }
  });

  it("a poll pass holding its claimed rows does not block job creation", async () => {
    await Promise.all(Array.from({ length: 5 }, (_, i) => h.jobs.createJob(note(`held${i}`))));
    await new Promise((r) => setTimeout(r, 1_100));
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let waiting = 0;
    // JetStream that holds every publish until the gate opens: the claim transaction stays open meanwhile.
    const held = { publish: async (...args: Parameters<JetStreamClient["publish"]>) => (waiting++, await gate, h.js.publish(...args)) } as unknown as JetStreamClient;
    const relay = createOutboxRelay({ sql: h.sql, js: held, log: createLogger({ level: "silent" }) });
    const pass = relay.pollOnce();
    try {
      await until(async () => waiting === 5, 5_000, "publishes to start");
      const t0 = Date.now();
      const during = await h.jobs.createJob(note("during the claim"));
      expect(Date.now() - t0).toBeLessThan(1_000);
      expect(during.created).toBe(true);
    } finally {
      open();
    }
    expect(await pass).toBe(5);
    await relay.stop();
  });

  it("two relays polling at once publish each row once", async () => {
    const created = await Promise.all(Array.from({ length: 40 }, (_, i) => h.jobs.createJob(note(`shared${i}`))));
    await new Promise((r) => setTimeout(r, 1_100));
    const log = createLogger({ level: "silent" });
    const a = createOutboxRelay({ sql: h.sql, js: h.js, log, batchSize: 16 });
    const b = createOutboxRelay({ sql: h.sql, js: h.js, log, batchSize: 16 });
    const left = await h.db.outboxEntry.count();
    expect(left).toBeGreaterThanOrEqual(40);
    const [na, nb] = await Promise.all([a.pollOnce(), b.pollOnce()]);
    expect((na ?? 0) + (nb ?? 0)).toBe(left);
    expect(await h.db.outboxEntry.count()).toBe(0);
    const msgs = await streamMessages(h.jsm, h.stream);
    const ids = new Set(created.map((c) => `${c.job.id}:1`));
    expect(msgs.filter((m) => ids.has(m.msgId)).length).toBe(40);
    expect(a.stats().duplicates + b.stats().duplicates).toBe(0);
    await Promise.all([a.stop(), b.stop()]);
  });
});
