// src/mq/acked-publisher.ts on the real NATS: acks with their stream sequence, duplicates by msg id (each publication
// matched to its own ack however many are under way), and the failures: no stream on the subject, JetStream's
// refusal, no ack in time.
import { headers } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAckedPublisher, type AckedPublisher } from "../../src/mq/acked-publisher.js";
import { ensureJobsStream, publishJob } from "../../src/mq/jobs-stream.js";
import { deleteStream, openJetStream, testStreamName, testSubjectPrefix, type TestJetStream } from "./support.js";

let t: TestJetStream;
let pub: AckedPublisher;
const stream = testStreamName("acked");
const prefix = testSubjectPrefix("acked");
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

beforeAll(async () => {
  t = await openJetStream();
  await ensureJobsStream(t.jsm, { stream, subjectPrefix: prefix });
  pub = createAckedPublisher(t.nc);
});
afterAll(async () => {
  pub?.close();
  await deleteStream(t.jsm, stream);
  await t.close();
});

describe("createAckedPublisher", () => {
  it("resolves each of many concurrent publications with its own ack; a repeated msg id is a duplicate", async () => {
    const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => pub.publish(`${prefix}.k`, bytes(String(i)), { msgID: `m-${i}`, headers: headers(), timeout: 5_000 })));
    expect(new Set(acks.map((a) => a.seq)).size).toBe(200);
    expect(acks.every((a) => a.stream === stream && !a.duplicate)).toBe(true);
    const again = await pub.publish(`${prefix}.k`, bytes("7"), { msgID: "m-7", headers: headers(), timeout: 5_000 });
    expect(again).toMatchObject({ duplicate: true, seq: acks[7]?.seq });
    expect((await t.jsm.streams.info(stream)).state.messages).toBe(200);
  });

  it("carries publishJob: the msg id header, the ack's sequence", async () => {
    const r = await publishJob(pub, { subject: `${prefix}.k`, msgId: "job-1:1", payload: bytes("{}") });
    const stored = await t.jsm.streams.getMessage(stream, { seq: r.seq });
    expect(stored?.header.get("Nats-Msg-Id")).toBe("job-1:1");
  });

  it("fails a publication no stream takes, one JetStream refuses, and one that gets no ack in time", async () => {
    await expect(pub.publish(`${prefix}_nobody.x`, bytes("x"), { msgID: "n-1", headers: headers(), timeout: 5_000 })).rejects.toThrow(/no stream/);
    // A stream that expects another last msg id refuses the message with an error in the ack.
    const h = headers();
    h.set("Nats-Expected-Last-Msg-Id", "not-the-last");
    await expect(pub.publish(`${prefix}.k`, bytes("x"), { msgID: "n-2", headers: h, timeout: 5_000 })).rejects.toThrow(/refused/);
    // A plain subscriber on a subject without a stream: the publication is delivered, and nobody acks it.
    const sub = t.nc.subscribe(`${prefix}_silent.x`);
    await t.nc.flush();
    const started = Date.now();
    await expect(pub.publish(`${prefix}_silent.x`, bytes("x"), { msgID: "n-3", headers: headers(), timeout: 300 })).rejects.toThrow(/timed out/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    sub.unsubscribe();
  });
});
