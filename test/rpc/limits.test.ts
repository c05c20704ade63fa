// Per-principal limits: the token bucket and the concurrency caps alone (a fake clock), then over a real server — a
// principal over its rate or its stream cap gets RESOURCE_EXHAUSTED with RetryInfo while another is served as before.
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResourceExhaustedError } from "../../src/errors.js";
import { PrincipalLimits } from "../../src/rpc/limits.js";
import { decodeStatusDetails } from "../../src/rpc/status.js";
import { insecureClient, startTestServer, testJobService, type TestServer } from "./fixtures.js";
import { createSystemService } from "../../src/system/service.js";
import { systemHandlers } from "../../src/system/handlers.js";

const user = (id: string) => ({ id, kind: "user" as const });

function refusal(fn: () => unknown): ResourceExhaustedError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ResourceExhaustedError);
    return err as ResourceExhaustedError;
  }
  throw new Error("expected a refusal");
}

describe("PrincipalLimits", () => {
  it("lets a burst through, then refuses with the time until the next token, and refills with time", () => {
    let now = 0;
    const limits = new PrincipalLimits({ ratePerSecond: 10, burst: 3, maxConcurrentCalls: 0, maxOpenStreams: 0 }, () => now);
    for (let i = 0; i < 3; i++) limits.admit(user("a"), false)();
    const err = refusal(() => limits.admit(user("a"), false));
    expect(err).toMatchObject({ reason: "RATE_LIMITED", retryAfterMs: 100 });
    now += 50;
    expect(refusal(() => limits.admit(user("a"), false)).retryAfterMs).toBeCloseTo(50, 5);
    now += 50;
    expect(() => limits.admit(user("a"), false)()).not.toThrow();
    // Another principal has its own bucket; services are not limited.
    for (let i = 0; i < 3; i++) limits.admit(user("b"), false)();
    for (let i = 0; i < 100; i++) limits.admit({ id: "svc", kind: "service" }, false)();
  });

  it("caps calls in flight and open streams per principal, and gives the slot back once", () => {
    const limits = new PrincipalLimits({ ratePerSecond: 0, burst: 1, maxConcurrentCalls: 2, maxOpenStreams: 1 });
    const r1 = limits.admit(user("a"), false);
    limits.admit(user("a"), false);
    expect(refusal(() => limits.admit(user("a"), false))).toMatchObject({ reason: "TOO_MANY_CONCURRENT_CALLS", retryAfterMs: 100 });
    limits.admit(user("b"), false);
    const s1 = limits.admit(user("a"), true);
    expect(refusal(() => limits.admit(user("a"), true))).toMatchObject({ reason: "TOO_MANY_STREAMS", retryAfterMs: 1000 });
    r1();
    r1();
    limits.admit(user("a"), false);
    expect(refusal(() => limits.admit(user("a"), false)).reason).toBe("TOO_MANY_CONCURRENT_CALLS");
    s1();
    expect(() => limits.admit(user("a"), true)).not.toThrow();
  });

  it("forgets idle principals once it remembers many, and keeps the busy ones", () => {
    let now = 0;
    const limits = new PrincipalLimits({ ratePerSecond: 1000, burst: 1, maxConcurrentCalls: 10, maxOpenStreams: 10 }, () => now);
    const busy = limits.admit(user("busy"), true);
    for (let i = 0; i < 10_000; i++) limits.admit(user(`u${i}`), false)();
    now += 10_000;
    limits.admit(user("late"), false)();
    expect(limits.size).toBe(2);
    busy();
  });
});

describe("limits over a real server", () => {
  let t: TestServer;
  const passthrough = (b: Buffer): Buffer => b;

  beforeAll(async () => {
    const jobs = testJobService({
      watchJob: (_req, ctx) => new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true })),
    });
    t = await startTestServer({
      services: [systemHandlers(createSystemService({ roles: ["dispatcher"] })), jobs],
      server: { rateLimitPerSecond: 2, rateLimitBurst: 5, maxOpenStreamsPerPrincipal: 1 },
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const client = insecureClient;
  function whoAmI(token: string): Promise<ServiceError | null> {
    const c = client(t.address);
    const md = new Metadata();
    md.set("authorization", `Bearer ${token}`);
    return new Promise((resolve) =>
      c.makeUnaryRequest("/dispatcher.v1.SystemService/WhoAmI", passthrough, passthrough, Buffer.alloc(0), md, { deadline: Date.now() + 10_000 }, (err) => {
        c.close();
        resolve(err);
      }),
    );
  }

  it("answers a principal over its rate RESOURCE_EXHAUSTED with RetryInfo, while another is served", async () => {
    const flood = await Promise.all(Array.from({ length: 30 }, () => whoAmI("reader-token")));
    const refused = flood.filter((e) => e?.code === status.RESOURCE_EXHAUSTED);
    expect(refused.length).toBeGreaterThan(0);
    expect(flood.filter((e) => e === null).length).toBeGreaterThanOrEqual(5);
    const details = decodeStatusDetails(refused[0]?.metadata ?? new Metadata());
    expect(details?.errorInfo?.reason).toBe("RATE_LIMITED");
    expect(details?.retryDelayMs).toBeGreaterThan(0);
    expect(details?.retryDelayMs).toBeLessThanOrEqual(500);
    expect(await whoAmI("operator-token")).toBeNull();
    expect(t.requests.filter((r) => r.code === "RESOURCE_EXHAUSTED" && r.principal === "u-read").length).toBe(refused.length);
  });

  it("caps open WatchJob streams per principal: a second is refused with RetryInfo, another principal's opens", async () => {
    const open = (token: string) => {
      const c = client(t.address);
      const md = new Metadata();
      md.set("authorization", `Bearer ${token}`);
      const call = c.makeServerStreamRequest("/dispatcher.v1.JobService/WatchJob", passthrough, passthrough, Buffer.alloc(0), md, {});
      const ended = new Promise<ServiceError | null>((resolve) => {
        call.on("data", () => undefined);
        call.on("error", (e: ServiceError) => resolve(e));
        call.on("end", () => resolve(null));
      });
      return { call, ended, close: () => c.close() };
    };
    const first = open("admin-token");
    await new Promise((r) => setTimeout(r, 300));
    const second = open("admin-token");
    const err = await second.ended;
    expect(err?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(decodeStatusDetails(err?.metadata ?? new Metadata())).toMatchObject({ errorInfo: { reason: "TOO_MANY_STREAMS" }, retryDelayMs: 1000 });
    const other = open("operator-token");
    const raced = await Promise.race([other.ended, new Promise((r) => setTimeout(() => r("still open"), 500))]);
    expect(raced).toBe("still open");
    first.call.cancel();
    await first.ended;
    await new Promise((r) => setTimeout(r, 200));
    const third = open("admin-token");
    expect(await Promise.race([third.ended, new Promise((r) => setTimeout(() => r("still open"), 500))])).toBe("still open");
    for (const s of [other, third]) s.call.cancel();
    await Promise.all([other.ended, third.ended]);
    for (const s of [first, second, other, third]) s.close();
  });
});
