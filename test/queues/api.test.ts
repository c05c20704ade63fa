// QueueService over a real server, MariaDB and JetStream: the outbox backlog and the workers' consumer as they are,
// dead letters under their jobs' scope, and replay — operators and admins may, readers are refused, and a replay is
// a retry of the job (QUEUED again, dead letter marked, the same idempotency key answered once).
import { status, type Client } from "@grpc/grpc-js";
import { AckPolicy } from "@nats-io/jetstream";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatcherError, type DispatcherClients } from "../../src/client/index.js";
import { newId } from "../../src/db/ids.js";
import { JobState } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { QueueServiceService } from "../../src/gen/proto/dispatcher/v1/queues.js";
import { isAllowed, METHOD_PERMISSIONS } from "../../src/iam/permissions.js";
import { jobHandlers } from "../../src/jobs/handlers.js";
import { readConsumerStats } from "../../src/mq/consumer-stats.js";
import { queueHandlers } from "../../src/queues/handlers.js";
import { createQueueService } from "../../src/queues/service.js";
import { createDispatcherClients } from "../../src/client/index.js";
import { until } from "../support/poll.js";
import { insecureClient, rawCall, startTestServer, type TestServer } from "../rpc/fixtures.js";
import { authenticate, openHarness, principal, transition, type JobsHarness } from "../jobs/support.js";

const DURABLE = "workers";
let h: JobsHarness;
let server: TestServer;
let raw: Client;
const clients: DispatcherClients[] = [];
const as = (token: string): DispatcherClients => {
  const c = createDispatcherClients({ address: server.address, token, retry: false });
  clients.push(c);
  return c;
};
const codeOf = (err: unknown): number => (err instanceof DispatcherError ? err.code : -1);

beforeAll(async () => {
  // No relay: what the job service writes stays in the outbox, so the backlog is what the test made.
  h = await openHarness("queues_api", { relay: false, server: false });
  const queues = createQueueService({ sql: h.sql, jobs: h.jobs, consumerStats: () => readConsumerStats(h.jsm, h.stream, DURABLE) });
  server = await startTestServer({ services: [jobHandlers(h.jobs), queueHandlers(queues)], authenticate });
  raw = insecureClient(server.address);
});
afterAll(async () => {
  for (const c of clients) c.close();
  raw?.close();
  await server?.stop(500);
  await h?.close();
});

/** A job requested by `token`'s principal whose attempts ran out: FAILED with its dead letter, as the worker leaves it. */
async function deadLettered(token: string): Promise<{ jobId: string; deadLetterId: string }> {
  const { job } = await h.jobs.createJob({ kind: "note", payload: { text: "x" }, requester: principal(token) });
  await transition(h, job.id, "failed", "QUEUED", "FAILED", 2);
  const deadLetterId = newId();
  await h.sql.execute`
    INSERT INTO dead_letters (id, job_id, attempt, kind, payload, last_error, created_at)
    SELECT ${deadLetterId}, id, attempt, kind, payload, 'UNAVAILABLE: test failure', NOW(3) FROM jobs WHERE id = ${job.id}`;
  return { jobId: job.id, deadLetterId };
}

describe("queue figures", () => {
  it("count the unpublished outbox and its oldest age, and the consumer's pending, in-flight and redelivered messages", async () => {
    const before = await as("reader-token").queues.getQueueStats({});
    expect(before.consumer).toMatchObject({ stream: h.stream, consumer: DURABLE, present: false, pending: "0" });
    const backlog0 = Number(before.outbox?.backlog);

    for (let i = 0; i < 3; i++) await h.jobs.createJob({ kind: "note", payload: { text: `n${i}` }, requester: principal("operator-token") });
    await h.jsm.consumers.add(h.stream, { durable_name: DURABLE, ack_policy: AckPolicy.Explicit, filter_subject: `${h.subjectPrefix}.>` });
    for (let i = 0; i < 3; i++) await h.js.publish(`${h.subjectPrefix}.note`, new TextEncoder().encode(`m${i}`));
    const consumer = await h.js.consumers.get(h.stream, DURABLE);
    const first = await consumer.next();
    first?.nak();
    // The nak'd message comes again (delivered twice) and stays unacknowledged: in flight and redelivered.
    // Another message may come first: acknowledge those, so that only the redelivered one stays in flight.
    let acked = 0;
    let again = await consumer.next({ expires: 2_000 });
    while (again && again.info.deliveryCount < 2) {
      again.ack();
      acked++;
      again = await consumer.next({ expires: 2_000 });
    }
    expect(again?.info.deliveryCount).toBe(2);

    const stats = await as("reader-token").queues.getQueueStats({});
    expect(Number(stats.outbox?.backlog) - backlog0).toBe(3);
    await until(async () => (await h.jsm.consumers.info(h.stream, DURABLE)).num_ack_pending === 1, 5_000, "acks to land");
    const s = await as("reader-token").queues.getQueueStats({});
    expect(s.consumer).toMatchObject({ present: true, streamMessages: String(3 - acked), pending: String(2 - acked), ackPending: "1", redelivered: "1" });
    expect(s.readTime).toBeInstanceOf(Date);
    again?.ack();
  });

  it("measure the oldest unpublished row's age by the database's clock", async () => {
    await h.sql.execute`UPDATE outbox_entries SET created_at = NOW(3) - INTERVAL 90 SECOND ORDER BY id LIMIT 1`;
    const s = await as("operator-token").queues.getQueueStats({});
    expect(Number(s.outbox?.oldestAge?.seconds)).toBeGreaterThanOrEqual(90);
    expect(Number(s.outbox?.oldestAge?.seconds)).toBeLessThan(120);
    await h.sql.execute`DELETE FROM outbox_entries`;
    const empty = await as("operator-token").queues.getQueueStats({});
    expect(empty.outbox).toMatchObject({ backlog: "0", oldestAge: { seconds: "0", nanos: 0 } });
  });
});

describe("dead letters", () => {
  it("are listed under their jobs' scope: admins all, others those of their own jobs", async () => {
    const mine = await deadLettered("reader-token");
    const theirs = await deadLettered("operator-token");
    const ids = async (token: string) => (await as(token).queues.listDeadLetters({})).deadLetters.map((d) => d.id);
    expect(await ids("admin-token")).toEqual(expect.arrayContaining([mine.deadLetterId, theirs.deadLetterId]));
    expect(await ids("reader-token")).toContain(mine.deadLetterId);
    expect(await ids("reader-token")).not.toContain(theirs.deadLetterId);
    expect(await ids("reader2-token")).toEqual([]);
    const listed = (await as("reader-token").queues.listDeadLetters({ kind: "note" })).deadLetters.find((d) => d.id === mine.deadLetterId);
    expect(listed).toMatchObject({ jobId: mine.jobId, kind: "note", attempt: 2, lastError: "UNAVAILABLE: test failure", replayTime: undefined });
    expect((await as("admin-token").queues.listDeadLetters({ kind: "diagnostic" })).deadLetters).toEqual([]);
  });

  it("come in pages, newest first, whose tokens belong to their query", async () => {
    for (let i = 0; i < 3; i++) await deadLettered("admin-token");
    const all = (await as("admin-token").queues.listDeadLetters({ pageSize: 1000 })).deadLetters.map((d) => d.id);
    expect(all).toEqual([...all].sort().reverse());
    const seen: string[] = [];
    let token = "";
    do {
      const page = await as("admin-token").queues.listDeadLetters({ pageSize: 2, pageToken: token });
      seen.push(...page.deadLetters.map((d) => d.id));
      token = page.nextPageToken;
    } while (token);
    expect(seen).toEqual(all);
    const page1 = await as("admin-token").queues.listDeadLetters({ pageSize: 2 });
    const err = await as("admin-token").queues.listDeadLetters({ pageSize: 2, pageToken: page1.nextPageToken, kind: "note" }).catch((e: unknown) => e);
    expect(codeOf(err)).toBe(status.INVALID_ARGUMENT);
  });
});

describe("replaying a dead letter", () => {
  it("retries the job for an operator: QUEUED again with fresh attempts, the dead letter marked, its key answered once", async () => {
    const { jobId, deadLetterId } = await deadLettered("operator-token");
    const op = as("operator-token").queues;
    const out = await op.replayDeadLetter({ id: deadLetterId, idempotencyKey: "replay-1" });
    expect(out.job).toMatchObject({ id: jobId, state: JobState.JOB_STATE_QUEUED, maxAttempts: 4 });
    expect(out.deadLetter?.replayTime).toBeInstanceOf(Date);
    const again = await op.replayDeadLetter({ id: deadLetterId, idempotencyKey: "replay-1" });
    expect(again.job).toMatchObject({ id: jobId, state: JobState.JOB_STATE_QUEUED, maxAttempts: 4 });
    const events = (await as("operator-token").jobs.listJobEvents({ id: jobId })).events.filter((e) => e.type === "retried");
    expect(events).toHaveLength(1);
    expect(codeOf(await op.replayDeadLetter({ id: deadLetterId }).catch((e: unknown) => e))).toBe(status.FAILED_PRECONDITION);
    const waiting = (await op.listDeadLetters({})).deadLetters.map((d) => d.id);
    expect(waiting).not.toContain(deadLetterId);
    expect((await op.listDeadLetters({ includeReplayed: true })).deadLetters.map((d) => d.id)).toContain(deadLetterId);
  });

  it("is refused to a reader with PERMISSION_DENIED, even of a dead letter of their own job, and changes nothing", async () => {
    const { jobId, deadLetterId } = await deadLettered("reader-token");
    const err = await as("reader-token").queues.replayDeadLetter({ id: deadLetterId }).catch((e: unknown) => e);
    expect(codeOf(err)).toBe(status.PERMISSION_DENIED);
    expect((await as("reader-token").jobs.getJob({ id: jobId })).job?.state).toBe(JobState.JOB_STATE_FAILED);
    expect((await as("reader-token").queues.listDeadLetters({})).deadLetters.map((d) => d.id)).toContain(deadLetterId);
  });

  it("answers NOT_FOUND for a dead letter of a job out of scope, and INVALID_ARGUMENT without an id", async () => {
    const { deadLetterId } = await deadLettered("admin-token");
    expect(codeOf(await as("operator-token").queues.replayDeadLetter({ id: deadLetterId }).catch((e: unknown) => e))).toBe(status.NOT_FOUND);
    expect(codeOf(await as("operator-token").queues.replayDeadLetter({ id: newId() }).catch((e: unknown) => e))).toBe(status.NOT_FOUND);
    expect(codeOf(await as("operator-token").queues.replayDeadLetter({ id: "" }).catch((e: unknown) => e))).toBe(status.INVALID_ARGUMENT);
  });
});

describe("QueueService access", () => {
  const methods = Object.values(QueueServiceService);

  it("is in the permission table, refuses callers without credentials, and allows each role what the table grants", async () => {
    expect(methods.map((m) => METHOD_PERMISSIONS[m.path])).toEqual(["queues.read", "jobs.read", "jobs.retry"]);
    for (const m of methods) expect((await rawCall(raw, m.path, false))?.code, m.path).toBe(status.UNAUTHENTICATED);
    const grants: Record<string, string[]> = {};
    for (const token of ["admin-token", "operator-token", "reader-token"]) {
      for (const m of methods) {
        const err = await rawCall(raw, m.path, false, token);
        const allowed = isAllowed(principal(token), METHOD_PERMISSIONS[m.path] as string);
        if (allowed) expect([status.PERMISSION_DENIED, status.UNAUTHENTICATED], `${token} ${m.path}`).not.toContain(err?.code);
        else expect(err?.code, `${token} ${m.path}`).toBe(status.PERMISSION_DENIED);
        if (allowed) (grants[token] ??= []).push(m.path.slice(m.path.lastIndexOf("/") + 1));
      }
    }
    expect(grants).toEqual({
      "admin-token": ["GetQueueStats", "ListDeadLetters", "ReplayDeadLetter"],
      "operator-token": ["GetQueueStats", "ListDeadLetters", "ReplayDeadLetter"],
      "reader-token": ["GetQueueStats", "ListDeadLetters"],
    });
  });

  it("never answers INTERNAL or UNKNOWN to hostile values in any field", async () => {
    const { deadLetterId } = await deadLettered("operator-token");
    const str = fc.oneof(fc.constant(deadLetterId), fc.constantFrom("", " ", "\u0000", "x".repeat(100_000), "note", "e30", "eyJjIjp7fX0"), fc.string({ maxLength: 300, unit: "binary" }));
    const int = fc.oneof(fc.integer({ min: -2147483648, max: 2147483647 }), fc.constantFrom(0, 1, 1000, 1001, -1));
    const q = as("admin-token").queues;
    const codes = new Set<number>();
    await fc.assert(
      fc.asyncProperty(fc.record({ pageSize: int, pageToken: str, includeReplayed: fc.boolean(), kind: str, id: str, idempotencyKey: str }), async (r) => {
        for (const call of [() => q.listDeadLetters(r), () => q.replayDeadLetter(r), () => q.getQueueStats({})]) {
          const out = await call().then(() => status.OK, (e: unknown) => codeOf(e));
          codes.add(out);
          expect([status.INTERNAL, status.UNKNOWN, -1]).not.toContain(out);
        }
      }),
      { numRuns: 60 },
    );
    expect(codes).toContain(status.OK);
    expect(codes).toContain(status.INVALID_ARGUMENT);
    expect(server.logLines.filter((l) => l.level === "error" || l.level === "fatal")).toEqual([]);
  }, 120_000);
});
