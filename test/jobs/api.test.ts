// The JobService RPCs on a real gRPC server over the real MariaDB and NATS: bad input, object scope, cancel, retry,
// idempotency and pagination. Transitions a worker would make are committed by SQL here.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DispatcherClients } from "../../src/client/index.js";
import { DiagnosticOutcome, JobState } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { diagnosticKind } from "../../src/jobs/kinds/diagnostic.js";
import { openHarness, principal, streamMessages, transition, type JobsHarness } from "./support.js";
import { until } from "../support/poll.js";

const MAX = diagnosticKind.maxAttempts;

let h: JobsHarness;
let admin: DispatcherClients;
let operator: DispatcherClients;
let reader: DispatcherClients;

beforeAll(async () => {
  h = await openHarness("jobs_api");
  admin = h.client("admin-token");
  operator = h.client("operator-token");
  reader = h.client("reader-token");
});
afterAll(() => h.close());

const diag = (extra: Record<string, unknown> = {}) => ({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED, ...extra });

async function rpcError(p: Promise<unknown>): Promise<{ codeName: string; fieldViolations: { field: string }[]; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { codeName: string; fieldViolations: { field: string }[]; message: string };
  }
  throw new Error("expected the call to fail");
}

describe("RunDiagnosticJob and GetJob", () => {
  it("creates a QUEUED job with a complete message and returns it from GetJob", async () => {
    const { job } = await admin.jobs.runDiagnosticJob({ ...diag(), sleep: { seconds: "1", nanos: 500_000_000 }, note: "hello" });
    expect(job).toMatchObject({ kind: "diagnostic", state: JobState.JOB_STATE_QUEUED, attempt: 0, maxAttempts: MAX, requestedBy: "u-admin", cancelRequested: false });
    expect(job?.id).toMatch(/^[0-9A-Z]{26}$/);
    const got = await admin.jobs.getJob({ id: job?.id });
    expect(got.job).toEqual(job);
    const row = await h.db.job.findUniqueOrThrow({ where: { id: job?.id as string } });
    expect(row.payload).toEqual({ sleepMs: 1500, outcome: "succeed", failAttempts: 0, pendingChecks: 0, note: "hello" });
    expect(row.publishCount).toBe(1);
  });

  it("unknown job id → NOT_FOUND; empty id → INVALID_ARGUMENT on id", async () => {
    expect((await rpcError(admin.jobs.getJob({ id: "01JDQ3Z5K8W8G4QF2Q6N2D7M9T" }))).codeName).toBe("NOT_FOUND");
    expect((await rpcError(admin.jobs.getJob({ id: "not-a-job" }))).codeName).toBe("NOT_FOUND");
    expect((await rpcError(admin.jobs.listJobEvents({ id: "01JDQ3Z5K8W8G4QF2Q6N2D7M9T" }))).codeName).toBe("NOT_FOUND");
    expect((await rpcError(admin.jobs.cancelJob({ id: "01JDQ3Z5K8W8G4QF2Q6N2D7M9T" }))).codeName).toBe("NOT_FOUND");
    const e = await rpcError(admin.jobs.getJob({ id: "" }));
    expect(e.codeName).toBe("INVALID_ARGUMENT");
    expect(e.fieldViolations.map((v) => v.field)).toEqual(["id"]);
  });

  it("rejects bad diagnostic requests with field violations, never INTERNAL", async () => {
    const e = await rpcError(admin.jobs.runDiagnosticJob({ sleep: { seconds: "-1", nanos: 0 }, failAttempts: -2, note: "x".repeat(300) }));
    expect(e.codeName).toBe("INVALID_ARGUMENT");
    expect(e.fieldViolations.map((v) => v.field).sort()).toEqual(["fail_attempts", "note", "outcome", "sleep"]);
    const tooLong = await rpcError(admin.jobs.runDiagnosticJob({ ...diag(), sleep: { seconds: "3601", nanos: 0 } }));
    expect(tooLong.fieldViolations.map((v) => v.field)).toEqual(["sleep"]);
    const key = await rpcError(admin.jobs.runDiagnosticJob({ ...diag(), idempotencyKey: "k".repeat(129) }));
    expect(key.fieldViolations.map((v) => v.field)).toEqual(["idempotency_key"]);
  });

  it("is for admins only", async () => {
    expect((await rpcError(operator.jobs.runDiagnosticJob(diag()))).codeName).toBe("PERMISSION_DENIED");
  });
});

describe("idempotency", () => {
  it("the same key twice → one job", async () => {
    const a = await admin.jobs.runDiagnosticJob({ ...diag(), idempotencyKey: "same-key" });
    const b = await admin.jobs.runDiagnosticJob({ ...diag(), idempotencyKey: "same-key" });
    expect(b.job?.id).toBe(a.job?.id);
    expect(await h.db.job.count({ where: { idempotencyKey: "same-key" } })).toBe(1);
    // One publication: the second call wrote no outbox row.
    expect((await h.db.job.findUniqueOrThrow({ where: { id: a.job?.id as string } })).publishCount).toBe(1);
  });

  it("the same key concurrently → one job", async () => {
    const all = await Promise.all(Array.from({ length: 8 }, () => admin.jobs.runDiagnosticJob({ ...diag(), idempotencyKey: "racing-key" })));
    expect(new Set(all.map((r) => r.job?.id)).size).toBe(1);
    expect(await h.db.job.count({ where: { idempotencyKey: "racing-key" } })).toBe(1);
  });

  it("keys are per principal; the same key for another kind → FAILED_PRECONDITION", async () => {
    const mine = await h.jobs.createJob({ kind: "note", payload: { text: "a" }, requester: principal("reader-token"), idempotencyKey: "shared" });
    const theirs = await h.jobs.createJob({ kind: "note", payload: { text: "a" }, requester: principal("reader2-token"), idempotencyKey: "shared" });
    expect(theirs.job.id).not.toBe(mine.job.id);
    expect([mine.created, theirs.created]).toEqual([true, true]);
    await expect(h.jobs.createJob({ kind: "diagnostic", payload: { sleepMs: 0, outcome: "succeed", failAttempts: 0, pendingChecks: 0, note: "" }, requester: principal("admin-token"), idempotencyKey: "shared-admin" })).resolves.toMatchObject({ created: true });
    await expect(h.jobs.createJob({ kind: "note", payload: { text: "a" }, requester: principal("admin-token"), idempotencyKey: "shared-admin" })).rejects.toMatchObject({ code: "FAILED_PRECONDITION", reason: "IDEMPOTENCY_KEY_REUSED" });
  });

  it("in the caller's transaction, a repeated key runs no effects and reports created=false", async () => {
    const input = { kind: "note", payload: { text: "tx" }, requester: principal("reader-token"), idempotencyKey: "tx-key" };
    const first = await h.db.$transaction((tx) => h.jobs.createJob(input, tx));
    first.afterCommit();
    const second = await h.db.$transaction((tx) => h.jobs.createJob(input, tx));
    expect([first.created, second.created]).toEqual([true, false]);
    expect(second.job.id).toBe(first.job.id);
  });

  it("validates the payload against the catalog", async () => {
    await expect(h.jobs.createJob({ kind: "note", payload: { text: 5 }, requester: principal("reader-token") })).rejects.toMatchObject({ code: "INVALID_ARGUMENT", violations: [{ field: "payload.text" }] });
    await expect(h.jobs.createJob({ kind: "nope", payload: {}, requester: principal("admin-token") })).rejects.toMatchObject({ code: "INVALID_ARGUMENT", violations: [{ field: "kind" }] });
    await expect(h.jobs.createJob({ kind: "diagnostic", payload: {}, requester: principal("reader-token") })).rejects.toMatchObject({ code: "PERMISSION_DENIED" });
  });
});

describe("object scope", () => {
  it("a reader sees their own jobs and gets NOT_FOUND for another user's", async () => {
    const own = await h.jobs.createJob({ kind: "note", payload: { text: "mine" }, requester: principal("reader-token") });
    const other = await h.jobs.createJob({ kind: "note", payload: { text: "theirs" }, requester: principal("reader2-token") });
    expect((await reader.jobs.getJob({ id: own.job.id })).job?.id).toBe(own.job.id);
    for (const call of [() => reader.jobs.getJob({ id: other.job.id }), () => reader.jobs.listJobEvents({ id: other.job.id })]) {
      expect((await rpcError(call())).codeName).toBe("NOT_FOUND");
    }
    const listed = await reader.jobs.listJobs({ pageSize: 1000 });
    expect(listed.jobs.every((j) => j.requestedBy === "u-read")).toBe(true);
    expect(listed.jobs.map((j) => j.id)).toContain(own.job.id);
    expect((await reader.jobs.listJobs({ requestedBy: "u-read2" })).jobs).toEqual([]);
    // Admins see everyone's; an operator, like anyone else, its own and those of its groups' accounts (none here).
    expect((await admin.jobs.getJob({ id: other.job.id })).job?.requestedBy).toBe("u-read2");
    expect((await admin.jobs.listJobs({ requestedBy: "u-read2", pageSize: 1000 })).jobs.map((j) => j.id)).toContain(other.job.id);
    expect((await rpcError(operator.jobs.getJob({ id: other.job.id }))).codeName).toBe("NOT_FOUND");
    expect((await operator.jobs.listJobs({ requestedBy: "u-read2", pageSize: 1000 })).jobs).toEqual([]);
  });

  it("a reader cannot cancel (method permission)", async () => {
    const own = await h.jobs.createJob({ kind: "note", payload: { text: "x" }, requester: principal("reader-token") });
    expect((await rpcError(reader.jobs.cancelJob({ id: own.job.id }))).codeName).toBe("PERMISSION_DENIED");
  });
});

describe("CancelJob", () => {
  it("cancels a queued job at once, with an event", async () => {
    const { job } = await admin.jobs.runDiagnosticJob(diag());
    const r = await admin.jobs.cancelJob({ id: job?.id, reason: "not needed" });
    expect(r.job).toMatchObject({ state: JobState.JOB_STATE_CANCELLED, error: { code: "CANCELLED", message: "not needed" } });
    expect(r.job?.endTime).toBeInstanceOf(Date);
    const { events } = await admin.jobs.listJobEvents({ id: job?.id });
    expect(events.map((e) => [e.sequence, e.type, e.fromState, e.toState, e.actor])).toEqual([
      ["1", "created", JobState.JOB_STATE_UNSPECIFIED, JobState.JOB_STATE_QUEUED, "u-admin"],
      ["2", "cancelled", JobState.JOB_STATE_QUEUED, JobState.JOB_STATE_CANCELLED, "u-admin"],
    ]);
  });

  it("asks a running job to stop (once), and refuses a finished one with FAILED_PRECONDITION", async () => {
    const { job } = await admin.jobs.runDiagnosticJob(diag());
    const id = job?.id as string;
    await transition(h, id, "started", "QUEUED", "RUNNING");
    const r = await admin.jobs.cancelJob({ id });
    expect(r.job).toMatchObject({ state: JobState.JOB_STATE_RUNNING, cancelRequested: true });
    await admin.jobs.cancelJob({ id });
    const types = (await admin.jobs.listJobEvents({ id })).events.map((e) => e.type);
    expect(types).toEqual(["created", "started", "cancel_requested"]);
    await transition(h, id, "succeeded", "RUNNING", "SUCCEEDED");
    const e = await rpcError(admin.jobs.cancelJob({ id }));
    expect(e.codeName).toBe("FAILED_PRECONDITION");
    expect((await admin.jobs.getJob({ id })).job?.state).toBe(JobState.JOB_STATE_SUCCEEDED);
  });
});

describe("RetryJob", () => {
  it("FAILED → QUEUED with a new publication, more attempts, and the dead letter marked replayed", async () => {
    const { job } = await admin.jobs.runDiagnosticJob(diag());
    const id = job?.id as string;
    await transition(h, id, "started", "QUEUED", "RUNNING");
    await transition(h, id, "failed", "RUNNING", "FAILED");
    await h.db.deadLetter.create({ data: { id: `DL${id.slice(2)}`, jobId: id, attempt: 1, kind: "diagnostic", payload: {}, lastError: "boom" } });
    expect((await rpcError(operator.jobs.retryJob({ id: "01JDQ3Z5K8W8G4QF2Q6N2D7M9T" }))).codeName).toBe("NOT_FOUND");
    // Another user's job out of the operator's scope does not exist for it (retry's permission check comes after).
    expect((await rpcError(operator.jobs.retryJob({ id }))).codeName).toBe("NOT_FOUND");
    const r = await admin.jobs.retryJob({ id, idempotencyKey: "retry-1" });
    expect(r.job).toMatchObject({ state: JobState.JOB_STATE_QUEUED, maxAttempts: 2 * MAX, attempt: 1 });
    expect(r.job?.error).toBeUndefined();
    const again = await admin.jobs.retryJob({ id, idempotencyKey: "retry-1" });
    expect(again.job?.id).toBe(id);
    const row = await h.db.job.findUniqueOrThrow({ where: { id } });
    expect(row.publishCount).toBe(2);
    const published = async () => (await streamMessages(h.jsm, h.stream)).map((m) => m.msgId).filter((m) => m.startsWith(`${id}:`));
    await until(async () => (await published()).length === 2, 5_000, "both publications on the stream");
    expect((await published()).sort()).toEqual([`${id}:1`, `${id}:2`]);
    expect((await h.db.deadLetter.findFirstOrThrow({ where: { jobId: id } })).replayedAt).toBeInstanceOf(Date);
    const types = (await admin.jobs.listJobEvents({ id })).events.map((e) => e.type);
    expect(types).toEqual(["created", "started", "failed", "retried"]);
    // Not FAILED/CANCELLED any more: a retry without the same key is refused.
    expect((await rpcError(admin.jobs.retryJob({ id }))).codeName).toBe("FAILED_PRECONDITION");
  });
});

describe("ListJobs", () => {
  it("malformed page token and page size 1001 → INVALID_ARGUMENT with field violations", async () => {
    const token = await rpcError(admin.jobs.listJobs({ pageToken: "garbage!" }));
    expect(token.codeName).toBe("INVALID_ARGUMENT");
    expect(token.fieldViolations.map((v) => v.field)).toEqual(["page_token"]);
    const size = await rpcError(admin.jobs.listJobs({ pageSize: 1001 }));
    expect(size.codeName).toBe("INVALID_ARGUMENT");
    expect(size.fieldViolations.map((v) => v.field)).toEqual(["page_size"]);
    expect((await rpcError(admin.jobs.listJobs({ pageSize: -1 }))).fieldViolations.map((v) => v.field)).toEqual(["page_size"]);
    expect((await rpcError(admin.jobs.listJobs({ state: 99 as JobState }))).fieldViolations.map((v) => v.field)).toEqual(["state"]);
    // A well-formed token of another query is refused too.
    const page = await admin.jobs.listJobs({ pageSize: 1 });
    expect(page.nextPageToken).not.toBe("");
    const other = await rpcError(admin.jobs.listJobs({ pageSize: 1, pageToken: page.nextPageToken, kind: "note" }));
    expect(other.fieldViolations.map((v) => v.field)).toEqual(["page_token"]);
    const forged = Buffer.from(JSON.stringify({ c: { t: "x", i: 5 }, q: "nope" })).toString("base64url");
    expect((await rpcError(admin.jobs.listJobs({ pageToken: forged }))).codeName).toBe("INVALID_ARGUMENT");
  });

  it("pagination returns every job exactly once, newest first, and filters apply", async () => {
    const requester = principal("reader2-token");
    // Created in a burst, so many share a millisecond: the id breaks the ties.
    const created = await Promise.all(Array.from({ length: 57 }, (_, i) => h.jobs.createJob({ kind: "note", payload: { text: `p${i}` }, requester, resource: { type: "server", id: `s${i % 3}` } })));
    const want = new Set(created.map((c) => c.job.id));
    const seen: string[] = [];
    const times: number[] = [];
    let token = "";
    let pages = 0;
    do {
      const page = await admin.jobs.listJobs({ pageSize: 10, pageToken: token, requestedBy: "u-read2", kind: "note" });
      seen.push(...page.jobs.map((j) => j.id));
      times.push(...page.jobs.map((j) => j.createTime?.getTime() ?? 0));
      token = page.nextPageToken;
      pages++;
    } while (token);
    const mine = seen.filter((id) => want.has(id));
    expect(mine.length).toBe(57);
    expect(new Set(seen).size).toBe(seen.length);
    expect(pages).toBeGreaterThanOrEqual(6);
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    const s1 = await admin.jobs.listJobs({ pageSize: 1000, resource: { type: "server", id: "s1" } });
    expect(s1.jobs.length).toBe(19);
    expect(s1.nextPageToken).toBe("");
    const queued = await admin.jobs.listJobs({ pageSize: 1000, state: JobState.JOB_STATE_QUEUED, requestedBy: "u-read2" });
    expect(queued.jobs.every((j) => j.state === JobState.JOB_STATE_QUEUED)).toBe(true);
  });
});
