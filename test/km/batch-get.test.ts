// GetCredential calls made together go to KM as one BatchGetCredentials call: each answered, refused and audited on
// its own (its caller's trace id in its record), one call's deadline or cancellation ending that call alone, the
// batch as a whole refused to people and failing closed on audit; the call's own validation; a lone call unchanged.
import { Client, status as Code } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatcherError } from "../../src/client/errors.js";
import { openConnection } from "../../src/db/connect.js";
import { DeadlineExceededError, InvalidArgumentError, NotFoundError, PermissionDeniedError, UnavailableError } from "../../src/errors.js";
import { KeyManagementServiceService as KM, type BatchGetCredentialsRequest, type BatchGetCredentialsResponse, type CredentialMetadata } from "../../src/gen/proto/km/v1/km.js";
import { createChannelOpener } from "../../src/km/channel.js";
import type { KmClient } from "../../src/km/client.js";
import { createGetBatches, type GetTransport, type Unsealer } from "../../src/km/get-batches.js";
import { generateKeyText } from "../../src/km/keys.js";
import { kmClientSettings } from "../../src/km/settings.js";
import { answerCounter, hostileStrings } from "../support/fuzz.js";
import { startInMemoryTracing, type InMemoryTracing } from "../telemetry/in-memory.js";
import { sql, startTestKm, type TestKm } from "./support.js";

const FIELDS = { access_key_id: "AKIABATCH", secret_access_key: "batch/secret/value/never/logged/00000000" };

let t: TestKm;
let worker: KmClient;
let dispatcher: KmClient;
let tracing: InMemoryTracing;

beforeAll(async () => {
  tracing = startInMemoryTracing();
  t = await startTestKm({ label: "kmbatch", masterKeys: generateKeyText(1) });
  worker = t.client("worker");
  dispatcher = t.client("dispatcher");
});

afterAll(async () => {
  await t?.cleanup();
  await tracing?.stop();
});

const store = (accountId: string, n: number) => dispatcher.storeCredential({ accountId, type: "aws-access-key", fields: { ...FIELDS, n: String(n) }, jobId: "job-store" });
const methodsCalled = (from: number): string[] => t.requests.slice(from).map((r) => r.method.replace("/km.v1.KeyManagementService/", ""));

/** BatchGetCredentials called directly, with the development certificate of `identity`. */
function batchGet(identity: string, request: BatchGetCredentialsRequest): Promise<BatchGetCredentialsResponse> {
  const s = kmClientSettings(t.config, identity);
  if (s.transport.kind !== "tls") throw new Error("the test KM serves mutual TLS");
  const client = new Client(t.address, s.transport.credentials, s.transport.serverName ? { "grpc.ssl_target_name_override": s.transport.serverName } : {});
  const m = KM.batchGetCredentials;
  return new Promise<BatchGetCredentialsResponse>((resolve, reject) => {
    client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, { deadline: Date.now() + 10_000 }, (err, res) => {
      client.close();
      if (err || !res) reject(DispatcherError.from(err));
      else resolve(res);
    });
  });
}

describe("GetCredential calls made together", () => {
  it("go as one BatchGetCredentials call; each caller gets its own fields and its own audit record with its own trace id", async () => {
    const metas = await Promise.all(Array.from({ length: 4 }, (_, i) => store(`acct-b${i}`, i)));
    const from = t.requests.length;
    tracing.reset();
    const got = await Promise.all(Array.from({ length: 24 }, (_, i) => worker.getCredential({ id: metas[i % 4]!.id, accountId: `acct-b${i % 4}`, jobId: `job-b-${i}`, purpose: "batched" })));
    got.forEach((g, i) => expect(g.fields).toEqual({ ...FIELDS, n: String(i % 4) }));
    expect(methodsCalled(from)).toEqual(["BatchGetCredentials"]);

    // Each caller's span and its audit record share a trace; no two callers share one.
    const spanTrace = new Map(tracing.spans().filter((s) => s.name === "km.GetCredential").map((s) => [String(s.attributes["job.id"]), s.spanContext().traceId]));
    await t.km.audit.flush();
    const rows = await sql<{ job_id: string; trace_id: string; principal: string; result: string }>(t.dbUrl, "SELECT job_id, trace_id, principal, result FROM audit_events WHERE action = 'get' AND job_id LIKE 'job-b-%'");
    expect(rows).toHaveLength(24);
    for (const r of rows) {
      expect(r).toMatchObject({ principal: "cert:worker", result: "OK" });
      expect(r.trace_id).toBe(spanTrace.get(r.job_id));
    }
    expect(new Set(rows.map((r) => r.trace_id)).size).toBe(24);

    // KM traces each request in its caller's trace, under the caller's span: a job's trace keeps KM's part of it.
    const callerSpans = new Map(tracing.spans().filter((s) => s.name === "km.GetCredential").map((s) => [String(s.attributes["job.id"]), s.spanContext()]));
    const kmSpans = tracing.spans().filter((s) => s.name === "km.get" && String(s.attributes["job.id"]).startsWith("job-b-"));
    expect(kmSpans).toHaveLength(24);
    for (const s of kmSpans) {
      const parent = callerSpans.get(String(s.attributes["job.id"]));
      expect(s.spanContext().traceId).toBe(parent?.traceId);
      expect(s.parentSpanContext?.spanId).toBe(parent?.spanId);
      expect(s.attributes["km.batch.size"]).toBe(24);
    }
  });

  it("each succeeds or fails on its own: another account's credential is NOT_FOUND and a malformed id INVALID_ARGUMENT beside answered calls", async () => {
    const meta = await store("acct-mixed", 7);
    const from = t.requests.length;
    const outcomes = await Promise.allSettled([
      worker.getCredential({ id: meta.id, accountId: "acct-mixed" }),
      worker.getCredential({ id: meta.id, accountId: "acct-other" }),
      worker.getCredential({ id: "not-a-credential-id", accountId: "acct-mixed" }),
      worker.getCredential({ id: meta.id, accountId: "acct-mixed", jobId: "job-mixed" }),
    ]);
    expect(methodsCalled(from)).toEqual(["BatchGetCredentials"]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled"]);
    const [, other, malformed] = outcomes as unknown as [unknown, PromiseRejectedResult, PromiseRejectedResult];
    expect(other.reason).toBeInstanceOf(NotFoundError);
    expect(malformed.reason).toBeInstanceOf(InvalidArgumentError);
    expect((malformed.reason as InvalidArgumentError).violations.map((v) => v.field)).toEqual(["id"]);
    await t.km.audit.flush();
    const notFound = tracing.spans().find((s) => s.name === "km.get" && s.attributes["km.account.id"] === "acct-other");
    expect(notFound?.status.code).toBe(2); // ERROR, with the exception recorded
    const refused = await sql<{ result: string }>(t.dbUrl, "SELECT result FROM audit_events WHERE action = 'get' AND credential_id = ? AND account_id = 'acct-other'", [meta.id]);
    expect(refused.map((r) => r.result)).toEqual(["NOT_FOUND"]);
  });

  it("a call made alone goes as GetCredential", async () => {
    const meta = await store("acct-alone", 1);
    const from = t.requests.length;
    await worker.getCredential({ id: meta.id, accountId: "acct-alone" });
    expect(methodsCalled(from)).toEqual(["GetCredential"]);
  });

  it("a call whose deadline comes first ends at its deadline while the others wait for their answers; a cancelled one ends at once", async () => {
    const meta = await store("acct-slow", 2);
    // Audit rows cannot be written while the table is locked: every call waits for its record.
    const lock = await openConnection(t.dbUrl);
    await lock.query("LOCK TABLES audit_events WRITE");
    const cancel = new AbortController();
    const started = Date.now();
    const short = worker.getCredential({ id: meta.id, accountId: "acct-slow" }, { deadline: new Date(Date.now() + 400) }).catch((e: unknown) => e);
    const cancelled = worker.getCredential({ id: meta.id, accountId: "acct-slow" }, { signal: cancel.signal }).catch((e: unknown) => e);
    const long = worker.getCredential({ id: meta.id, accountId: "acct-slow" }, { deadline: new Date(Date.now() + 8_000) });
    try {
      setTimeout(() => cancel.abort(), 100);
      expect(await cancelled).toBeInstanceOf(UnavailableError); // CANCELLED, as a cancelled GetCredential
      expect(await short).toBeInstanceOf(DeadlineExceededError);
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      await lock.query("UNLOCK TABLES");
      await lock.end();
    }
    expect((await long).fields).toEqual({ ...FIELDS, n: "2" });
  });

  it("fail closed: when the audit table cannot be written, every call of the batch fails and none gets its fields", async () => {
    const meta = await store("acct-closed", 3);
    await sql(t.dbUrl, "CREATE TRIGGER audit_events_blocked BEFORE INSERT ON audit_events FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit blocked by the test'");
    try {
      const outcomes = await Promise.allSettled(Array.from({ length: 5 }, () => worker.getCredential({ id: meta.id, accountId: "acct-closed" })));
      for (const o of outcomes) {
        expect(o.status).toBe("rejected");
        expect((o as PromiseRejectedResult).reason).toBeInstanceOf(UnavailableError);
        expect(JSON.stringify((o as PromiseRejectedResult).reason)).not.toContain(FIELDS.secret_access_key);
      }
    } finally {
      await sql(t.dbUrl, "DROP TRIGGER audit_events_blocked");
    }
  });
});

describe("BatchGetCredentials called directly", () => {
  it("is refused to people as GetCredential is: PERMISSION_DENIED for the whole call, recorded as denied", async () => {
    const meta = await store("acct-people", 4);
    const err = await batchGet("admin", { items: [{ request: { id: meta.id, accountId: "acct-people", jobId: "", purpose: "" }, traceparent: "" }] }).catch((e: unknown) => e);
    expect((err as DispatcherError).codeName).toBe("PERMISSION_DENIED");
    const people = t.client("admin");
    const both = await Promise.allSettled([people.getCredential({ id: meta.id, accountId: "acct-people" }), people.getCredential({ id: meta.id, accountId: "acct-people" })]);
    for (const o of both) expect((o as PromiseRejectedResult).reason).toBeInstanceOf(PermissionDeniedError);
    await t.km.audit.flush();
    const denied = await sql<{ detail: string }>(t.dbUrl, "SELECT detail FROM audit_events WHERE action = 'denied' AND principal = 'cert:admin'");
    expect(denied.some((d) => d.detail.startsWith("BatchGetCredentials from"))).toBe(true);
  });

  it("answers with the credentials' metadata, their fields sealed together for the items in order, null where one failed", async () => {
    const metas = [await store("acct-seal", 10), await store("acct-seal", 11)];
    const item = (id: string, accountId = "acct-seal") => ({ request: { id, accountId, jobId: "", purpose: "" }, traceparent: "" });
    const items = [item(metas[0]!.id), item(metas[1]!.id, "acct-not-it"), item(metas[1]!.id)];
    const res = await batchGet("worker", { items });
    expect(res.results.map((r) => r.result?.$case)).toEqual(["credential", "error", "credential"]);
    expect(res.results[0]?.result?.$case === "credential" && res.results[0].result.value.id).toBe(metas[0]!.id);
    const opener = createChannelOpener(kmClientSettings(t.config, "worker").channelKeys);
    const ctx = items.map((i) => ({ credentialId: i.request.id, accountId: i.request.accountId }));
    expect(JSON.parse(opener.open({ items: ctx }, res.sealedFields!).toString())).toEqual([{ ...FIELDS, n: "10" }, null, { ...FIELDS, n: "11" }]);
    expect(() => opener.open({ items: [ctx[2]!, ctx[1]!, ctx[0]!] }, res.sealedFields!)).toThrow(/authentication failed/);
    // Nothing answered: no seal at all.
    expect((await batchGet("worker", { items: [item(metas[0]!.id, "acct-not-it")] })).sealedFields).toBeUndefined();
  });

  it("sends no fields at all when the audit records cannot be written", async () => {
    const meta = await store("acct-seal-closed", 12);
    await sql(t.dbUrl, "CREATE TRIGGER audit_events_blocked BEFORE INSERT ON audit_events FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit blocked by the test'");
    try {
      const item = { request: { id: meta.id, accountId: "acct-seal-closed", jobId: "", purpose: "" }, traceparent: "" };
      const res = await batchGet("worker", { items: [item, item] });
      expect(res.sealedFields).toBeUndefined();
      for (const r of res.results) expect(r.result?.$case === "error" && r.result.value.code).toBe(Code.UNAVAILABLE);
    } finally {
      await sql(t.dbUrl, "DROP TRIGGER audit_events_blocked");
    }
  });

  it("takes 1 to 100 items and W3C traceparents: anything else is INVALID_ARGUMENT naming the field", async () => {
    const item = (traceparent = "") => ({ request: { id: "01JDQ3Z5K8W8G4QF2Q6N2D7M9T", accountId: "a", jobId: "", purpose: "" }, traceparent });
    const fields = async (request: BatchGetCredentialsRequest): Promise<string[]> => {
      const err = (await batchGet("worker", request).catch((e: unknown) => e)) as DispatcherError;
      expect(err.codeName).toBe("INVALID_ARGUMENT");
      return err.fieldViolations.map((v) => v.field);
    };
    expect(await fields({ items: [] })).toEqual(["items"]);
    expect(await fields({ items: Array.from({ length: 101 }, () => item()) })).toEqual(["items"]);
    expect(await fields({ items: [item(), item("NOT-A-TRACEPARENT")] })).toEqual(["items[1].traceparent"]);
    expect(await fields({ items: [item("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01")] })).toEqual(["items[0].traceparent"]);
    // 100 unknown ids: a valid call, each item NOT_FOUND on its own.
    const res = await batchGet("worker", { items: Array.from({ length: 100 }, () => item("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")) });
    expect(res.results).toHaveLength(100);
    for (const r of res.results) expect(r.result?.$case === "error" && r.result.value.code).toBe(5);
  });
});

describe("BatchGetCredentials under hostile input", () => {
  it("never answers INTERNAL or UNKNOWN, for the call or any item; only the stored credential in its own account is answered", async () => {
    const meta = await store("acct-fuzz", 20);
    const strings = hostileStrings([meta.id, "acct-fuzz", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]);
    const item = fc.record({
      request: fc.record({ id: fc.oneof(fc.constant(meta.id), strings), accountId: fc.oneof(fc.constant("acct-fuzz"), strings), jobId: strings, purpose: strings }),
      traceparent: fc.oneof(fc.constant(""), strings),
    });
    const { codes, record } = answerCounter();
    await fc.assert(
      fc.asyncProperty(fc.array(item, { maxLength: 4 }), async (items) => {
        const outcome: BatchGetCredentialsResponse | Error = await batchGet("worker", { items }).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
        record("BatchGetCredentials", outcome);
        if (outcome instanceof Error) return;
        outcome.results.forEach((r, i) => {
          const asked = items[i]?.request;
          if (r.result?.$case === "credential") expect([asked?.id, asked?.accountId]).toEqual([meta.id, "acct-fuzz"]);
          else record(`BatchGetCredentials item ${i}`, r.result?.$case === "error" ? DispatcherError.fromStatus(r.result.value) : new Error("no result"));
        });
      }),
      { numRuns: 40 },
    );
    expect(codes.get(Code.INVALID_ARGUMENT)).toBeGreaterThan(0);
  });
});

describe("against a KM without BatchGetCredentials", () => {
  it("calls made together go one call each once KM answers UNIMPLEMENTED, with what is left of their deadlines, and so do later ones", async () => {
    const calls: string[] = [];
    const deadlines: number[] = [];
    const transport: GetTransport = {
      async getCredential(request, options) {
        calls.push(`get ${request.id}`);
        deadlines.push(options.deadlineMs ?? 0);
        return { credential: undefined, sealedFields: undefined };
      },
      async batchGetCredentials(request) {
        calls.push(`batch ${request.items.length}`);
        await new Promise((r) => setTimeout(r, 300)); // a slow answer: the resent requests keep their own deadlines
        throw new DispatcherError(Code.UNIMPLEMENTED, "unknown method");
      },
    };
    const unseal: Unsealer = { one: (r) => ({ credential: { id: r.id } as CredentialMetadata, fields: {} }), batch: () => [] };
    const get = createGetBatches(transport, unseal, 1_000);
    const request = (id: string) => ({ id, accountId: "a", jobId: "", purpose: "" });
    await Promise.all([get(request("1"), {}), get(request("2"), { deadlineMs: 5_000 })]);
    await Promise.all([get(request("3"), {}), get(request("4"), {})]);
    expect(calls).toEqual(["batch 2", "get 1", "get 2", "get 3", "get 4"]);
    // Sent 300 ms after the calls, with what was left of their 1 s (default) and 5 s deadlines.
    expect(deadlines[0]).toBeGreaterThan(0);
    expect(deadlines[0]).toBeLessThanOrEqual(720);
    expect(deadlines[1]).toBeGreaterThan(4_000);
    expect(deadlines[1]).toBeLessThanOrEqual(4_720);
  });
});
