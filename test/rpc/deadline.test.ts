// Deadlines and cancellation reach the handler as one AbortSignal: the client's deadline, the server's default
// deadline for calls without one, and client cancellation — also when the handler first asks for it afterwards.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status } from "@grpc/grpc-js";
import { createDispatcherClients, DispatcherError, type DispatcherClients } from "../../src/client/index.js";
import { CancelledError, DeadlineExceededError } from "../../src/errors.js";
import type { CallContext } from "../../src/rpc/adapter.js";
import { Job } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { startTestServer, testJobService, type TestServer } from "./fixtures.js";
import { sleep } from "../support/poll.js";

interface Seen {
  reason: unknown;
  abortedAfterMs: number;
  deadline: Date;
  remainingAtStart: number;
}

describe("deadlines and cancellation", () => {
  let t: TestServer;
  let c: DispatcherClients;
  const seen = new Map<string, Seen>();
  /** What a handler that never looked at its signal finds there once it does, after its deadline passed. */
  let lateLook: { aborted: boolean; reason: unknown } | undefined;

  /** Waits for the call's signal and records when and why it fired. */
  const waitForAbort = async (id: string, ctx: CallContext): Promise<never> => {
    const start = Date.now();
    const remainingAtStart = ctx.remainingMs();
    await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
    seen.set(id, { reason: ctx.signal.reason, abortedAfterMs: Date.now() - start, deadline: ctx.deadline, remainingAtStart });
    throw ctx.signal.reason;
  };

  beforeAll(async () => {
    const jobs = testJobService({
      getJob: (req, ctx) => waitForAbort(req.id, ctx),
      listJobs: async (_req, ctx) => {
        await sleep(400);
        lateLook = { aborted: ctx.signal.aborted, reason: ctx.signal.reason };
        return { jobs: [], nextPageToken: "" };
      },
      watchJob: async (req, ctx) => {
        await sleep(500);
        await ctx.send({ job: Job.fromPartial({ id: req.id }) });
      },
    });
    t = await startTestServer({ services: [jobs], server: { defaultDeadlineMs: 300 } });
    c = createDispatcherClients({ address: t.address, token: "reader-token", retry: false });
  });

  afterAll(async () => {
    c.close();
    await t.stop();
  });

  it("the client's deadline aborts the handler's signal with DeadlineExceededError", async () => {
    const before = Date.now();
    const err = await c.jobs.getJob({ id: "client-deadline" }, { deadlineMs: 200 }).catch((e: unknown) => e);
    expect((err as DispatcherError).code).toBe(status.DEADLINE_EXCEEDED);
    await sleep(20);
    const s = seen.get("client-deadline");
    expect(s?.reason).toBeInstanceOf(DeadlineExceededError);
    expect(s?.abortedAfterMs).toBeGreaterThanOrEqual(100);
    expect(s?.abortedAfterMs).toBeLessThan(1_000);
    expect(Math.abs((s?.deadline.getTime() ?? 0) - (before + 200))).toBeLessThan(100);
    expect(s?.remainingAtStart).toBeLessThanOrEqual(200);
  });

  it("a call without a deadline gets server.defaultDeadlineMs: the adapter answers DEADLINE_EXCEEDED", async () => {
    const started = Date.now();
    const err = await c.jobs.getJob({ id: "no-deadline" }, { deadlineMs: 0 }).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(DispatcherError);
    expect((err as DispatcherError).code).toBe(status.DEADLINE_EXCEEDED);
    expect((err as DispatcherError).errorInfo?.reason).toBe("DEADLINE_EXCEEDED");
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2_000);
    expect(seen.get("no-deadline")?.reason).toBeInstanceOf(DeadlineExceededError);
    expect(t.requests.find((r) => r.code === "DEADLINE_EXCEEDED")).toBeDefined();
  });

  it("client cancellation aborts the handler's signal with CancelledError", async () => {
    const controller = new AbortController();
    const call = c.jobs.getJob({ id: "cancelled" }, { deadlineMs: 5_000, signal: controller.signal }).catch((e: unknown) => e);
    await sleep(100);
    controller.abort();
    expect(((await call) as DispatcherError).code).toBe(status.CANCELLED);
    for (let i = 0; i < 100 && !seen.has("cancelled"); i++) await sleep(10);
    expect(seen.get("cancelled")?.reason).toBeInstanceOf(CancelledError);
    expect(seen.get("cancelled")?.abortedAfterMs).toBeLessThan(1_000);
  });

  it("a signal first asked for after the deadline fired is already aborted, with DeadlineExceededError", async () => {
    const err = await c.jobs.listJobs({}, { deadlineMs: 150 }).catch((e: unknown) => e);
    expect((err as DispatcherError).code).toBe(status.DEADLINE_EXCEEDED);
    for (let i = 0; i < 100 && !lateLook; i++) await sleep(10);
    expect(lateLook?.aborted).toBe(true);
    expect(lateLook?.reason).toBeInstanceOf(DeadlineExceededError);
  });

  it("a server stream without a deadline is not cut by the default deadline (it lasts as long as what it watches)", async () => {
    const ids: string[] = [];
    for await (const m of c.jobs.watchJob({ id: "long-watch" })) ids.push(m.job?.id ?? "");
    expect(ids).toEqual(["long-watch"]);
  });
});
