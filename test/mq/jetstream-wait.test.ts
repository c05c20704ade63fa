// Start-up while JetStream is not answering yet: time-outs, no responders and "temporarily unavailable" are waited
// out with backoff and logged; anything else, or waiting past the bound, stands.
import { JetStreamApiError } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { isJetStreamStarting, whileJetStreamStarts } from "../../src/mq/jetstream-wait.js";
import { createLogger } from "../../src/log.js";

const notReady = new JetStreamApiError({ code: 503, err_code: 10008, description: "JetStream system temporarily unavailable" });

describe("waiting for JetStream at start", () => {
  it("tells the errors waiting can cure from the others", () => {
    expect(isJetStreamStarting(new errors.TimeoutError())).toBe(true);
    expect(isJetStreamStarting(new errors.NoRespondersError("$JS.API.STREAM.INFO.X"))).toBe(true);
    expect(isJetStreamStarting(notReady)).toBe(true);
    expect(isJetStreamStarting(new JetStreamApiError({ code: 400, err_code: 10058, description: "stream name already in use" }))).toBe(false);
    expect(isJetStreamStarting(new Error("subjects overlap with an existing stream"))).toBe(false);
  });

  it("tries again until the set-up answers, saying so each time", async () => {
    const lines: string[] = [];
    const destination = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString()), done()) });
    const log = createLogger({ level: "warn", destination });
    let calls = 0;
    const result = await whileJetStreamStarts(log, "set up the jobs stream", async () => {
      calls++;
      if (calls === 1) throw new errors.TimeoutError();
      if (calls === 2) throw notReady;
      return "ready";
    }, 0); // 0: as long as it takes
    expect(result).toBe("ready");
    expect(calls).toBe(3);
    expect(lines.filter((l) => l.includes("waiting for JetStream to set up the jobs stream"))).toHaveLength(2);
  });

  it("lets other errors, and the last one past the bound, through at once", async () => {
    const log = createLogger({ level: "silent" });
    let calls = 0;
    await expect(whileJetStreamStarts(log, "x", () => (calls++, Promise.reject(new Error("bad config"))), 0)).rejects.toThrow("bad config");
    expect(calls).toBe(1);
    calls = 0;
    const started = Date.now();
    const timedOut = whileJetStreamStarts(log, "x", () => (calls++, Promise.reject(new errors.TimeoutError())), 300);
    await expect(timedOut).rejects.toThrow("timeout");
    // Tried again until the bound had passed (pauses of 125–250 ms, then 250–500 ms), then gave up.
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
