// The worker runtime on the real MariaDB and NATS with the diagnostic kind: success with exactly one effect,
// retries with backoff, dead letters, permanent failures, duplicate deliveries, cancellation at a checkpoint,
// deadlines, and the handler's span under the consumer span of the publisher's trace.
import { SpanKind } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobExecution } from "../../src/jobs/execution.js";
import { encodeJobMessage, jobMsgId, jobSubject } from "../../src/jobs/outbox.js";
import { startWorker, type RunningWorker } from "../../src/jobs/worker.js";
import { publishJob } from "../../src/mq/jobs-stream.js";
import { contextFromTraceparent } from "../../src/telemetry/propagation.js";
import { startInMemoryTracing } from "../telemetry/in-memory.js";
import { diagnostic, openExecHarness, types, type ExecHarness } from "./exec-support.js";
import { until } from "../support/poll.js";

const tracing = startInMemoryTracing();
let h: ExecHarness;
let worker: RunningWorker;
beforeAll(async () => {
  h = await openExecHarness("worker", { leaseMs: 1_500 });
  worker = await startWorker({ resources: h.resources("w1"), catalog: h.catalog });
});
afterAll(async () => {
  await worker?.stop(1_000);
  await h?.close();
  await tracing.stop();
});

async function run(payload: Record<string, unknown>, options: { maxAttempts?: number; deadlineMs?: number } = {}): Promise<string> {
  const id = await h.insertJob({ payload: diagnostic(payload), ...options });
  await h.publish(id);
  return id;
}

describe("worker", () => {
  it("runs a job to SUCCEEDED with exactly one effect row, then acks its message", async () => {
    const id = await run({ sleepMs: 50, note: "hello" });
    const row = await h.waitForState(id, ["SUCCEEDED", "FAILED"]);
    expect(row).toMatchObject({ state: "SUCCEEDED", attempt: 1, leaseOwner: null, progressPercent: 100, result: { sleptMs: 50, attempt: 1, note: "hello" } });
    expect(await h.effects(id)).toEqual([{ attempt: 1 }]);
    const events = await h.events(id);
    expect(types(events).filter((t) => t !== "progress")).toEqual(["created", "started", "succeeded"]);
    expect(events[1]!.actor).toBe(worker.owner);
    // Acked: nothing is left in the work queue.
    await until(async () => (await h.jsm.streams.info(h.config.mq.jobsStream)).state.messages === 0, 5_000, "the stream to drain");
  });

  it("retries retryable failures with the kind's backoff, then succeeds on attempt 3", async () => {
    const id = await run({ outcome: "fail_retryable", failAttempts: 2 }, { maxAttempts: 5 });
    const row = await h.waitForState(id, ["SUCCEEDED", "FAILED"]);
    expect(row).toMatchObject({ state: "SUCCEEDED", attempt: 3, errorCode: null });
    expect(await h.effects(id)).toEqual([{ attempt: 3 }]);
    const events = await h.events(id);
    expect(types(events)).toEqual(["created", "started", "retry_scheduled", "started", "retry_scheduled", "started", "succeeded"]);
    expect(events.filter((e) => e.type === "started").map((e) => e.attempt)).toEqual([1, 2, 3]);
    expect(events[2]!.message).toMatch(/UNAVAILABLE: diagnostic attempt 1 failed as requested/);
    // diagnostic backoff: 200 ms after attempt 1, 1000 ms after attempt 2.
    const gap = (a: number, b: number) => events[b]!.time.getTime() - events[a]!.time.getTime();
    expect(gap(2, 3)).toBeGreaterThanOrEqual(180);
    expect(gap(4, 5)).toBeGreaterThanOrEqual(950);
  });

  it("fails with the last error and a dead letter keeping the payload when attempts run out", async () => {
    const id = await run({ outcome: "fail_retryable", failAttempts: 0, note: "doomed" }, { maxAttempts: 2 });
    const row = await h.waitForState(id, ["SUCCEEDED", "FAILED"]);
    expect(row).toMatchObject({ state: "FAILED", attempt: 2, errorCode: "UNAVAILABLE", errorMessage: "diagnostic attempt 2 failed as requested" });
    expect(types(await h.events(id))).toEqual(["created", "started", "retry_scheduled", "started", "failed", "dead_lettered"]);
    expect(await h.deadLetters(id)).toEqual([
      { attempt: 2, kind: "diagnostic", payload: diagnostic({ outcome: "fail_retryable", note: "doomed" }), lastError: "UNAVAILABLE: diagnostic attempt 2 failed as requested" },
    ]);
    expect(await h.effects(id)).toEqual([]);
  });

  it("fails a permanent failure at once, and a payload that does not fit the schema", async () => {
    const perm = await run({ outcome: "fail_permanent", note: "nope" });
    const bad = await h.insertJob({ payload: { sleepMs: -5, outcome: "explode" } });
    await h.publish(bad);
    expect(await h.waitForState(perm, ["SUCCEEDED", "FAILED"])).toMatchObject({ state: "FAILED", attempt: 1, errorCode: "FAILED_PRECONDITION", errorDetails: { note: "nope" } });
    expect(types(await h.events(perm))).toEqual(["created", "started", "failed"]);
    expect(await h.deadLetters(perm)).toEqual([]);
    const row = await h.waitForState(bad, ["SUCCEEDED", "FAILED"]);
    expect(row).toMatchObject({ state: "FAILED", attempt: 1, errorCode: "INVALID_ARGUMENT" });
    const fields = (row.errorDetails as { violations: { field: string }[] }).violations.map((v) => v.field).sort();
    expect(fields).toEqual(["outcome", "sleepMs"]);
  });

  it("runs a job once when its message is delivered again while it runs and after it ended", async () => {
    const id = await h.insertJob({ payload: diagnostic({ sleepMs: 400 }) });
    await Promise.all([h.publish(id, "diagnostic", 1), h.publish(id, "diagnostic", 2)]);
    await h.waitForState(id, ["SUCCEEDED"]);
    await h.publish(id, "diagnostic", 3);
    await until(async () => (await h.jsm.streams.info(h.config.mq.jobsStream)).state.messages === 0, 5_000, "every delivery to be acked");
    expect(types(await h.events(id)).filter((t) => t === "started")).toHaveLength(1);
    expect(await h.effects(id)).toEqual([{ attempt: 1 }]);
  });

  it("honours a cancellation request at the next checkpoint: CANCELLED, no effect", async () => {
    const id = await run({ sleepMs: 20_000 });
    await h.waitForState(id, ["RUNNING"]);
    const asked = Date.now();
    await h.db.$executeRaw`UPDATE jobs SET cancel_requested = 1 WHERE id = ${id}`;
    const row = await h.waitForState(id, ["CANCELLED", "SUCCEEDED", "FAILED"], 5_000);
    // Seen at the next lease renewal (every 500 ms here), honoured at the next 100 ms step.
    expect(Date.now() - asked).toBeLessThan(2_000);
    expect(row).toMatchObject({ state: "CANCELLED", attempt: 1, errorCode: "CANCELLED" });
    expect(types(await h.events(id)).at(-1)).toBe("cancelled");
    expect(await h.effects(id)).toEqual([]);
  });

  it("fails a job whose deadline passes while it runs, with the reason", async () => {
    const id = await run({ sleepMs: 20_000 }, { deadlineMs: 700 });
    const row = await h.waitForState(id, ["FAILED", "SUCCEEDED", "CANCELLED"], 5_000);
    expect(row).toMatchObject({ state: "FAILED", errorCode: "DEADLINE_EXCEEDED", errorMessage: "timed out while attempt 1 of diagnostic was running" });
    expect(types(await h.events(id)).at(-1)).toBe("timed_out");
    expect(await h.effects(id)).toEqual([]);
  });

  it("runs the handler in a job.handle span under the consumer span of the message's trace", async () => {
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const id = await h.insertJob({ payload: diagnostic(), traceparent });
    await publishJob(h.js, {
      subject: jobSubject(h.config.mq.subjectPrefix, "diagnostic"),
      msgId: jobMsgId(id, 1),
      payload: encodeJobMessage({ jobId: id, kind: "diagnostic", publication: 1 }),
      parent: contextFromTraceparent(traceparent),
    });
    await h.waitForState(id, ["SUCCEEDED"]);
    const spans = await until(async () => {
      const all = tracing.spans().filter((s) => s.spanContext().traceId === "4bf92f3577b34da6a3ce929d0e0e4736");
      return all.some((s) => s.name === "job.complete") ? all : null;
    }, 5_000, "the job's spans");
    const consumer = spans.find((s) => s.kind === SpanKind.CONSUMER);
    const handle = spans.find((s) => s.name === "job.handle diagnostic");
    expect(consumer?.attributes).toMatchObject({ "job.id": id, "job.kind": "diagnostic", "job.attempt": 1 });
    expect(handle?.attributes).toMatchObject({ "job.id": id, "job.kind": "diagnostic", "job.attempt": 1 });
    expect(handle?.parentSpanContext?.spanId).toBe(consumer?.spanContext().spanId);
    for (const name of ["job.start", "job.complete"]) {
      expect(spans.find((s) => s.name === name)?.parentSpanContext?.spanId).toBe(consumer?.spanContext().spanId);
    }
  });
});

describe("a database outage while committing the outcome", () => {
  it("does not ack: the message comes back after the lease and a new attempt completes the job, with one effect", async () => {
    const g = await openExecHarness("woutage", { leaseMs: 1_000 });
    try {
      const ex = new JobExecution({ sql: g.sql, nc: g.nc });
      let failures = 0;
      const complete = ex.complete.bind(ex);
      ex.complete = async (input) => {
        if (input.attempt === 1) {
          failures++;
          throw new Error("connection lost (simulated)");
        }
        return complete(input);
      };
      const w = await startWorker({ resources: g.resources("outage"), catalog: g.catalog, execution: ex });
      try {
        const id = await g.insertJob({ payload: diagnostic() });
        await g.publish(id);
        const row = await g.waitForState(id, ["SUCCEEDED", "FAILED"], 15_000);
        expect(failures).toBe(3);
        expect(row).toMatchObject({ state: "SUCCEEDED", attempt: 2 });
        expect(await g.effects(id)).toEqual([{ attempt: 2 }]);
        expect(types(await g.events(id))).toEqual(["created", "started", "lease_expired", "started", "succeeded"]);
      } finally {
        await w.stop(1_000);
      }
    } finally {
      await g.close();
    }
  });
});

describe("worker stop", () => {
  it("lets a short handler finish within the grace period; aborts a long one, whose job another worker takes over after its lease", async () => {
    // A stream of its own, so that which worker gets which job is certain.
    const g = await openExecHarness("wstop", { leaseMs: 1_000 });
    try {
      const b = await startWorker({ resources: g.resources("b"), catalog: g.catalog });
      const short = await g.insertJob({ payload: diagnostic({ sleepMs: 600 }) });
      const long = await g.insertJob({ payload: diagnostic({ sleepMs: 2_500 }) });
      await g.publish(short);
      await g.publish(long);
      await until(async () => (await g.job(short)).state === "RUNNING" && (await g.job(long)).state === "RUNNING", 5_000, "both jobs to run");
      const t0 = Date.now();
      await b.stop(1_200);
      expect(Date.now() - t0).toBeLessThan(4_000);
      expect(await g.job(short)).toMatchObject({ state: "SUCCEEDED", attempt: 1 });
      expect(await g.job(long)).toMatchObject({ state: "RUNNING", attempt: 1, leaseOwner: b.owner });

      const c = await startWorker({ resources: g.resources("c"), catalog: g.catalog });
      try {
        const row = await g.waitForState(long, ["SUCCEEDED", "FAILED"], 15_000);
        expect(row).toMatchObject({ state: "SUCCEEDED", attempt: 2 });
        expect(await g.effects(long)).toEqual([{ attempt: 2 }]);
        const events = await g.events(long);
        expect(types(events).filter((t) => t !== "progress")).toEqual(["created", "started", "lease_expired", "started", "succeeded"]);
        expect(events.filter((e) => e.type === "started").map((e) => e.actor)).toEqual([b.owner, c.owner]);
      } finally {
        await c.stop(1_000);
      }
    } finally {
      await g.close();
    }
  });
});
