// The jobs stream on the real NATS: idempotent set-up, dedupe by msg id, trace headers, reading and removing messages.
import { nanos } from "@nats-io/transport-node";
import { RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureJobsStream, publishJob } from "../../src/mq/jobs-stream.js";
import { captureLogger, openJetStream, deleteStream, testStreamName, type TestJetStream } from "./support.js";

let t: TestJetStream;
const streams: string[] = [];
beforeAll(async () => {
  t = await openJetStream();
});
afterAll(async () => {
  for (const s of streams) await deleteStream(t.jsm, s);
  await t.close();
});

async function newStream(label: string) {
  const stream = testStreamName(label);
  const subjectPrefix = `t${stream.toLowerCase()}`;
  streams.push(stream);
  await ensureJobsStream(t.jsm, { stream, subjectPrefix });
  return { stream, subjectPrefix };
}

const bytes = (s: string) => new TextEncoder().encode(s);

describe("ensureJobsStream", () => {
  it("creates a work-queue, file-backed stream on <prefix>.> with a 2-minute duplicate window", async () => {
    const { stream, subjectPrefix } = await newStream("create");
    const { config } = await t.jsm.streams.info(stream);
    expect(config.retention).toBe(RetentionPolicy.Workqueue);
    expect(config.storage).toBe(StorageType.File);
    expect(config.subjects).toEqual([`${subjectPrefix}.>`]);
    expect(config.duplicate_window).toBe(nanos(120_000));
  });

  it("is idempotent, including concurrently, and updates what changed", async () => {
    const stream = testStreamName("idem");
    streams.push(stream);
    const opts = { stream, subjectPrefix: `p${stream.toLowerCase()}` };
    await Promise.all([ensureJobsStream(t.jsm, opts), ensureJobsStream(t.jsm, opts), ensureJobsStream(t.jsm, opts)]);
    await ensureJobsStream(t.jsm, opts);
    const updated = await ensureJobsStream(t.jsm, { ...opts, duplicateWindowMs: 60_000 });
    expect(updated.config.duplicate_window).toBe(nanos(60_000));
    const names: string[] = [];
    for await (const n of t.jsm.streams.names()) if (n === stream) names.push(n);
    expect(names).toEqual([stream]);
  });

  it("refuses a same-named stream with another retention", async () => {
    const stream = testStreamName("wrong");
    streams.push(stream);
    await t.jsm.streams.add({ name: stream, subjects: [`w${stream.toLowerCase()}.>`], retention: RetentionPolicy.Limits, storage: StorageType.File });
    await expect(ensureJobsStream(t.jsm, { stream, subjectPrefix: `w${stream.toLowerCase()}` })).rejects.toThrow(/limits retention.*needs workqueue\/file.*nats stream rm/);
  });
});

describe("ensureJobsStream reconciles an existing stream at start", () => {
  it("logs each setting it changes, and nothing when the stream already matches", async () => {
    const stream = testStreamName("recon");
    streams.push(stream);
    const prefix = `r${stream.toLowerCase()}`;
    await t.jsm.streams.add({ name: stream, subjects: [`${prefix}.old.>`], retention: RetentionPolicy.Workqueue, storage: StorageType.File, duplicate_window: nanos(30_000) });
    const { log, lines } = captureLogger("info");
    const info = await ensureJobsStream(t.jsm, { stream, subjectPrefix: prefix, log });
    expect(info.config.subjects).toEqual([`${prefix}.>`]);
    expect(info.config.duplicate_window).toBe(nanos(120_000));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "info", stream, changes: [{ setting: "subjects", from: [`${prefix}.old.>`], to: [`${prefix}.>`] }, { setting: "duplicate_window_ms", from: 30_000, to: 120_000 }] });
    expect(lines[0]?.msg).toContain("duplicate_window_ms 30000 → 120000");
    await ensureJobsStream(t.jsm, { stream, subjectPrefix: prefix, log });
    expect(lines).toHaveLength(1);
  });

  it("refuses more than one copy on a server that is not clustered, saying what to set", async () => {
    const stream = testStreamName("r3single");
    streams.push(stream);
    const prefix = `s${stream.toLowerCase()}`;
    // Both paths: creating the stream, and raising the copies of one that exists (which such a server accepts and ignores).
    await expect(ensureJobsStream(t.jsm, { stream, subjectPrefix: prefix, replicas: 3 })).rejects.toMatchObject({
      name: "FailedPreconditionError",
      reason: "JOBS_STREAM_REPLICAS",
      message: expect.stringMatching(/mq\.jobsStreamReplicas is 3.*not part of a JetStream cluster.*lower mq\.jobsStreamReplicas \(1 on a single server\)/),
    });
    await ensureJobsStream(t.jsm, { stream, subjectPrefix: prefix });
    await expect(ensureJobsStream(t.jsm, { stream, subjectPrefix: prefix, replicas: 3 })).rejects.toMatchObject({ reason: "JOBS_STREAM_REPLICAS" });
    expect((await t.jsm.streams.info(stream)).config.num_replicas).toBe(1);
  });
});

describe("publishJob", () => {
  it("stores a message once per msg id: the second publish is acknowledged as a duplicate", async () => {
    const { stream, subjectPrefix } = await newStream("dedupe");
    const subject = `${subjectPrefix}.launch_server`;
    const first = await publishJob(t.js, { subject, msgId: "job-1:1", payload: bytes("a") });
    const again = await publishJob(t.js, { subject, msgId: "job-1:1", payload: bytes("a") });
    const other = await publishJob(t.js, { subject, msgId: "job-1:2", payload: bytes("b") });
    expect(first.duplicate).toBe(false);
    expect(again).toEqual({ seq: first.seq, duplicate: true });
    expect(other.duplicate).toBe(false);
    expect((await t.jsm.streams.info(stream)).state.messages).toBe(2);
  });

  it("stores the payload, the msg id and extra headers", async () => {
    const { stream, subjectPrefix } = await newStream("stored");
    const { seq } = await publishJob(t.js, {
      subject: `${subjectPrefix}.stop_server`,
      msgId: "job-2:1",
      payload: bytes('{"serverId":"s1"}'),
      headers: { "Job-Kind": "stop_server" },
    });
    const m = await t.jsm.streams.getMessage(stream, { seq });
    expect(m?.subject).toBe(`${subjectPrefix}.stop_server`);
    expect(new TextDecoder().decode(m?.data)).toBe('{"serverId":"s1"}');
    expect(m?.header?.get("Nats-Msg-Id")).toBe("job-2:1");
    expect(m?.header?.get("Job-Kind")).toBe("stop_server");
  });

  it("fails as UnavailableError when no stream takes the subject, and honours an aborted signal", async () => {
    const nowhere = `nowhere${testStreamName("x").toLowerCase()}.kind`;
    await expect(publishJob(t.js, { subject: nowhere, msgId: "m", payload: bytes("x"), timeoutMs: 1_000 })).rejects.toMatchObject({
      name: "UnavailableError",
      reason: "JETSTREAM_PUBLISH_FAILED",
    });
    const ac = new AbortController();
    ac.abort(new Error("deadline"));
    await expect(publishJob(t.js, { subject: nowhere, msgId: "m", payload: bytes("x"), signal: ac.signal })).rejects.toThrow("deadline");
  });
});
