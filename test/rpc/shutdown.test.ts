// Graceful stop (what SIGTERM triggers): health NOT_SERVING, in-flight calls finish, new calls get UNAVAILABLE;
// past the grace period the stragglers' signals fire; server streams are cancelled at once.
import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { status } from "@grpc/grpc-js";
import { checkHealth, createDispatcherClients, DispatcherError, type DispatcherClients } from "../../src/client/index.js";
import { UnavailableError } from "../../src/errors.js";
import { Job } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { createSystemService } from "../../src/system/service.js";
import { systemHandlers } from "../../src/system/handlers.js";
import { startTestServer, testJobService, type TestServer } from "./fixtures.js";
import { sleep, until } from "../support/poll.js";


describe("graceful stop", () => {
  let t: TestServer | undefined;
  const clients: DispatcherClients[] = [];
  const client = (address: string): DispatcherClients => {
    const c = createDispatcherClients({ address, token: "reader-token", retry: false });
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await t?.stop(100);
    t = undefined;
  });

  it("lets 50 in-flight calls finish, answers a call made after stop began with UNAVAILABLE, reports NOT_SERVING", async () => {
    let entered = 0;
    let finished = 0;
    const jobs = testJobService({
      getJob: async (req) => {
        entered++;
        await sleep(500);
        finished++;
        return { job: Job.fromPartial({ id: req.id }) };
      },
    });
    t = await startTestServer({ services: [systemHandlers(createSystemService({ roles: ["dispatcher"] })), jobs] });
    const c = client(t.address);
    const calls = Array.from({ length: 50 }, (_, i) => c.jobs.getJob({ id: `j${i}` }));
    await until(() => entered === 50, 5_000, "50 calls in the handler");
    expect(t.server.inFlight()).toBe(50);

    const started = Date.now();
    const stopped = t.server.stop(10_000);
    expect(await checkHealth(t.address, "", 2_000)).toBe("NOT_SERVING");
    const late = await c.jobs.getJob({ id: "late" }).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(DispatcherError);
    expect((late as DispatcherError).code).toBe(status.UNAVAILABLE);
    expect((late as DispatcherError).errorInfo?.reason).toBe("SHUTTING_DOWN");

    const results = await Promise.allSettled(calls);
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
    expect(results.map((r) => (r.status === "fulfilled" ? r.value.job?.id : "")).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `j${i}`).sort());
    await stopped;
    expect(finished).toBe(50);
    expect(entered).toBe(50);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(t.requests.filter((r) => r.code === "OK")).toHaveLength(50);
    expect(t.requests.filter((r) => r.code === "UNAVAILABLE")).toHaveLength(1);
    // Nothing listens any more.
    await expect(checkHealth(t.address, "", 1_000)).rejects.toBeInstanceOf(DispatcherError);
  });

  it("aborts the calls still running when the grace period is over: their signals fire and callers get UNAVAILABLE", async () => {
    const reasons: unknown[] = [];
    const jobs = testJobService({
      getJob: (_req, ctx) =>
        new Promise((_resolve, reject) => {
          ctx.signal.addEventListener("abort", () => {
            reasons.push(ctx.signal.reason);
            reject(new Error("handler gave up"));
          });
        }),
    });
    t = await startTestServer({ services: [jobs] });
    const c = client(t.address);
    const calls = Array.from({ length: 3 }, (_, i) => c.jobs.getJob({ id: `j${i}` }).catch((e: unknown) => e));
    await until(() => t?.server.inFlight() === 3, 5_000, "3 calls in flight");
    const started = Date.now();
    await t.server.stop(300);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(3_000);
    for (const err of await Promise.all(calls)) expect((err as DispatcherError).code).toBe(status.UNAVAILABLE);
    expect(reasons).toHaveLength(3);
    for (const r of reasons) expect(r).toBeInstanceOf(UnavailableError);
  });

  it("cancels server streams as soon as a stop begins instead of waiting out the grace period", async () => {
    let reason: unknown;
    const jobs = testJobService({
      watchJob: async (req, ctx) => {
        await ctx.send({ job: Job.fromPartial({ id: req.id }) });
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
        reason = ctx.signal.reason;
      },
    });
    t = await startTestServer({ services: [jobs] });
    const c = client(t.address);
    const seen: string[] = [];
    let stopped: Promise<void> | undefined;
    const err = await (async () => {
      for await (const m of c.jobs.watchJob({ id: "w1" })) {
        seen.push(m.job?.id ?? "");
        stopped = t?.server.stop(20_000);
      }
    })().catch((e: unknown) => e);
    const started = Date.now();
    await stopped;
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(seen).toEqual(["w1"]);
    expect((err as DispatcherError).code).toBe(status.UNAVAILABLE);
    expect(reason).toBeInstanceOf(UnavailableError);
  });

  it("fails to start with an error naming the port when the port is taken", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as { port: number }).port;
    try {
      await expect(startTestServer({ server: { port } })).rejects.toThrow(new RegExp(`127\\.0\\.0\\.1:${port}.*in use`));
    } finally {
      blocker.close();
    }
  });
});
