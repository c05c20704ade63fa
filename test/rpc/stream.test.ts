// Server streaming through the adapter: ordered delivery as an async iterable, send() that waits for a slow
// reader (backpressure), cancellation when the reader stops, errors after messages, and message size limits.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status } from "@grpc/grpc-js";
import { createDispatcherClients, DispatcherError, type DispatcherClients } from "../../src/client/index.js";
import { CancelledError, NotFoundError } from "../../src/errors.js";
import { Job } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { startTestServer, testJobService, type TestServer } from "./fixtures.js";
import { sleep } from "../support/poll.js";

const COUNT = 200;
const PAYLOAD = "x".repeat(64 * 1024);

describe("server streaming", () => {
  let t: TestServer;
  let c: DispatcherClients;
  let handlerDoneAt = 0;
  let cancelReason: unknown;

  beforeAll(async () => {
    const jobs = testJobService({
      watchJob: async (req, ctx) => {
        if (req.id === "slow-reader") {
          for (let i = 0; i < COUNT; i++) await ctx.send({ job: Job.fromPartial({ id: String(i), progressMessage: PAYLOAD }) });
          handlerDoneAt = Date.now();
        } else if (req.id === "endless") {
          for (let i = 0; !ctx.signal.aborted; i++) await ctx.send({ job: Job.fromPartial({ id: String(i) }) }).catch(() => undefined);
          cancelReason = ctx.signal.reason;
        } else if (req.id === "fails-midway") {
          await ctx.send({ job: Job.fromPartial({ id: "first" }) });
          throw new NotFoundError("job", "fails-midway");
        }
      },
      listJobs: async () => ({ jobs: [], nextPageToken: "" }),
    });
    t = await startTestServer({ services: [jobs], server: { maxMessageBytes: 256 * 1024 } });
    c = createDispatcherClients({ address: t.address, token: "reader-token", retry: false });
  });

  afterAll(async () => {
    c.close();
    await t.stop();
  });

  it("delivers every message in order, and send() waits for a slow reader", async () => {
    const readAt: number[] = [];
    const ids: string[] = [];
    for await (const m of c.jobs.watchJob({ id: "slow-reader" })) {
      ids.push(m.job?.id ?? "");
      readAt.push(Date.now());
      if (ids.length <= 100) await sleep(5);
    }
    expect(ids).toEqual(Array.from({ length: COUNT }, (_, i) => String(i)));
    // Without backpressure the handler would have written 12.8 MB at once and finished before the reader got far.
    expect(handlerDoneAt).toBeGreaterThan(readAt[50] ?? Infinity);
  });

  it("breaking out of the loop cancels the call and the handler's signal fires", async () => {
    let n = 0;
    for await (const _ of c.jobs.watchJob({ id: "endless" })) if (++n === 3) break;
    for (let i = 0; i < 100 && cancelReason === undefined; i++) await sleep(10);
    expect(cancelReason).toBeInstanceOf(CancelledError);
  });

  it("an error after some messages ends the stream with that error's status and details", async () => {
    const got: string[] = [];
    const err = await (async () => {
      for await (const m of c.jobs.watchJob({ id: "fails-midway" })) got.push(m.job?.id ?? "");
    })().catch((e: unknown) => e);
    expect(got).toEqual(["first"]);
    expect(err).toBeInstanceOf(DispatcherError);
    expect((err as DispatcherError).code).toBe(status.NOT_FOUND);
    expect((err as DispatcherError).errorInfo?.reason).toBe("JOB_NOT_FOUND");
  });

  it("rejects a request larger than server.maxMessageBytes with RESOURCE_EXHAUSTED", async () => {
    await expect(c.jobs.listJobs({ kind: "k".repeat(300 * 1024) })).rejects.toMatchObject({ code: status.RESOURCE_EXHAUSTED });
  });
});
