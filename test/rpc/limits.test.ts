// Per-principal limits: the token bucket, the spreading of retry times, held refusals and the concurrency caps alone (a
// fake clock), then over a real server — a principal over its rate or its stream cap gets RESOURCE_EXHAUSTED with
// RetryInfo (held first when it keeps calling) while another is served as before.
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResourceExhaustedError } from "../../src/errors.js";
import { LimitRefusal, PrincipalLimits } from "../../src/rpc/limits.js";
import { decodeStatusDetails } from "../../src/rpc/status.js";
import { insecureClient, startTestServer, testJobService, type TestServer } from "./fixtures.js";
import { createSystemService } from "../../src/system/service.js";
import { systemHandlers } from "../../src/system/handlers.js";

const user = (id: string) => ({ id, kind: "user" as const });

function refusal(fn: () => unknown): LimitRefusal {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ResourceExhaustedError);
    expect(err).toBeInstanceOf(LimitRefusal);
    return err as LimitRefusal;
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
    // The next token is promised to the first refused call: the second is told to come back one token later.
    expect(refusal(() => limits.admit(user("a"), false)).retryAfterMs).toBeCloseTo(150, 5);
    now += 50;
    expect(() => limits.admit(user("a"), false)()).not.toThrow();
    // Another principal has its own bucket; services are not limited.
    for (let i = 0; i < 3; i++) limits.admit(user("b"), false)();
    for (let i = 0; i < 100; i++) limits.admit({ id: "svc", kind: "service" }, false)();
  });

  it("tells refused callers to come back one token apart, never later than the bucket takes to fill", () => {
    let now = 0;
    const limits = new PrincipalLimits({ ratePerSecond: 10, burst: 3, maxConcurrentCalls: 0, maxOpenStreams: 0 }, () => now);
    for (let i = 0; i < 3; i++) limits.admit(user("a"), false)();
    const waits = Array.from({ length: 14 }, () => refusal(() => limits.admit(user("a"), false)).retryAfterMs);
    // Slots 100 ms apart up to 1 s (the bucket fills in 300 ms; a second is the shortest horizon), then 1 s for all.
    expect(waits).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1000, 1000, 1000, 1000]);
    // Another principal's slots are its own.
    for (let i = 0; i < 3; i++) limits.admit(user("b"), false)();
    expect(refusal(() => limits.admit(user("b"), false)).retryAfterMs).toBe(100);
    // Once the promised times have passed, a refusal is told the plain time to the next token again.
    now += 5_000;
    for (let i = 0; i < 3; i++) limits.admit(user("a"), false)();
    expect(refusal(() => limits.admit(user("a"), false)).retryAfterMs).toBe(100);
  });

  it("holds rate refusals up to holdMs, at most maxHeld at once per principal; answering gives the slot back once", () => {
    let now = 0;
    const limits = new PrincipalLimits({ ratePerSecond: 10, burst: 1, maxConcurrentCalls: 0, maxOpenStreams: 0, holdMs: 150, maxHeld: 2 }, () => now);
    limits.admit(user("a"), false)();
    const first = refusal(() => limits.admit(user("a"), false));
    const second = refusal(() => limits.admit(user("a"), false));
    const third = refusal(() => limits.admit(user("a"), false));
    // Held for the wait or holdMs, whichever is shorter; the third is over maxHeld and is answered at once.
    expect([first.holdMs, second.holdMs, third.holdMs]).toEqual([100, 150, 0]);
    expect(limits.held).toBe(2);
    now += 100;
    const answered = first.answer();
    expect(answered).toBeInstanceOf(LimitRefusal);
    // The RetryInfo of an answer after the hold names what is left of the wait (never 0: RetryInfo is always there).
    expect(answered).toMatchObject({ reason: "RATE_LIMITED", retryAfterMs: 1 });
    first.answer();
    expect(limits.held).toBe(1);
    now += 50;
    expect(second.answer().retryAfterMs).toBeCloseTo(50, 5);
    expect(limits.held).toBe(0);
    // Concurrency refusals are never held.
    const capped = new PrincipalLimits({ ratePerSecond: 0, burst: 1, maxConcurrentCalls: 1, maxOpenStreams: 0, holdMs: 1000, maxHeld: 10 });
    capped.admit(user("a"), false);
    expect(refusal(() => capped.admit(user("a"), false)).holdMs).toBe(0);
  });

  it("samples refusals into the request log: one line per principal per second, counting the ones it stands for", () => {
    let now = 0;
    const limits = new PrincipalLimits({ ratePerSecond: 10, burst: 1, maxConcurrentCalls: 0, maxOpenStreams: 0 }, () => now);
    limits.admit(user("a"), false)();
    limits.admit(user("b"), false)();
    expect(limits.refusalsToLog("a")).toBe(1);
    expect(limits.refusalsToLog("b")).toBe(1);
    for (let i = 0; i < 5; i++) expect(limits.refusalsToLog("a")).toBe(0);
    now += 1_000;
    expect(limits.refusalsToLog("a")).toBe(6);
    expect(limits.refusalsToLog("a")).toBe(0);
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
      server: { rateLimitPerSecond: 2, rateLimitBurst: 5, rateLimitHoldMs: 0, maxOpenStreamsPerPrincipal: 1 },
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const client = insecureClient;
  function whoAmI(token: string, body = Buffer.alloc(0)): Promise<ServiceError | null> {
    const c = client(t.address);
    const md = new Metadata();
    md.set("authorization", `Bearer ${token}`);
    return new Promise((resolve) =>
      c.makeUnaryRequest("/dispatcher.v1.SystemService/WhoAmI", passthrough, passthrough, body, md, { deadline: Date.now() + 10_000 }, (err) => {
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
    const details = refused.map((e) => decodeStatusDetails(e?.metadata ?? new Metadata()));
    expect(details.every((d) => d?.errorInfo?.reason === "RATE_LIMITED" && (d.retryDelayMs ?? 0) > 0)).toBe(true);
    // Spread one token (500 ms) apart, up to the 2.5 s the bucket takes to fill.
    const delays = details.map((d) => d?.retryDelayMs ?? 0).sort((a, b) => a - b);
    expect(delays[0]).toBeLessThanOrEqual(500);
    expect(delays.at(-1)).toBeGreaterThan(1_000);
    expect(delays.at(-1)).toBeLessThanOrEqual(2_500);
    // A refused call is not decoded: a malformed body over the rate is RESOURCE_EXHAUSTED, not INVALID_ARGUMENT.
    expect((await whoAmI("reader-token", Buffer.from([0x0a, 0x7f, 0x41, 0x42])))?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(await whoAmI("operator-token")).toBeNull();
    // The request log samples the flood (a line per principal per second, with the count it stands for).
    const lines = t.requests.filter((r) => r.code === "RESOURCE_EXHAUSTED" && r.principal === "u-read");
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(3);
    expect(lines.every((l) => (l.refusals ?? 0) >= 1)).toBe(true);
    expect(lines.reduce((n, l) => n + (l.refusals ?? 0), 0)).toBeLessThanOrEqual(refused.length);
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

describe("held refusals over a real server", () => {
  let t: TestServer;
  const passthrough = (b: Buffer): Buffer => b;

  beforeAll(async () => {
    t = await startTestServer({ server: { rateLimitPerSecond: 1, rateLimitBurst: 4, rateLimitHoldMs: 2_000, rateLimitMaxHeld: 3 } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  /** WhoAmI on a client of its own: the error (null: OK), when it was answered and how long it took. */
  function timedWhoAmI(token: string, deadlineMs = 10_000): Promise<{ err: ServiceError | null; at: number; ms: number }> {
    const c = insecureClient(t.address);
    const md = new Metadata();
    md.set("authorization", `Bearer ${token}`);
    const start = performance.now();
    return new Promise((resolve) =>
      c.makeUnaryRequest("/dispatcher.v1.SystemService/WhoAmI", passthrough, passthrough, Buffer.alloc(0), md, { deadline: Date.now() + deadlineMs }, (err) => {
        c.close();
        const at = performance.now();
        resolve({ err, at, ms: at - start });
      }),
    );
  }

  it("holds a caller's refusals (at most rateLimitMaxHeld), answers them RESOURCE_EXHAUSTED with RetryInfo, and serves another principal meanwhile", async () => {
    expect((await Promise.all(Array.from({ length: 4 }, () => timedWhoAmI("reader-token")))).map((r) => r.err)).toEqual([null, null, null, null]);
    const flood = Array.from({ length: 6 }, () => timedWhoAmI("reader-token"));
    await new Promise((r) => setTimeout(r, 100));
    const other = await timedWhoAmI("operator-token");
    const refused = await Promise.all(flood);
    expect(refused.every((r) => r.err?.code === status.RESOURCE_EXHAUSTED && (decodeStatusDetails(r.err.metadata)?.retryDelayMs ?? 0) > 0)).toBe(true);
    // Turns a second apart (less what refilled meanwhile), up to the 4 s the bucket takes to fill: three held (up to
    // 1, 2 and 2 s), three answered at once.
    const held = refused.filter((r) => r.ms >= 450);
    expect(held.length).toBe(3);
    expect(other.err).toBeNull();
    expect(other.at).toBeLessThan(Math.min(...held.map((r) => r.at)));
  });

  it("answers a held refusal within half the time left before the caller's deadline, as RESOURCE_EXHAUSTED", async () => {
    await Promise.all(Array.from({ length: 4 }, () => timedWhoAmI("admin-token")));
    const r = await timedWhoAmI("admin-token", 600);
    expect(r.err?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(decodeStatusDetails(r.err?.metadata ?? new Metadata())?.retryDelayMs).toBeGreaterThan(0);
    expect(r.ms).toBeGreaterThanOrEqual(200);
    expect(r.ms).toBeLessThan(600);
  });

  it("gives a cancelled call's held slot back", async () => {
    const c = insecureClient(t.address);
    const md = new Metadata();
    md.set("authorization", `Bearer norole-token`);
    // A principal without the method's permission is limited all the same: limits apply before authorization.
    expect((await Promise.all(Array.from({ length: 4 }, () => timedWhoAmI("norole-token")))).map((r) => r.err?.code)).toEqual(Array(4).fill(status.PERMISSION_DENIED));
    // Held up to 1, 2 and 2 s: all three slots are taken.
    const calls = Array.from({ length: 3 }, () => c.makeUnaryRequest("/dispatcher.v1.SystemService/WhoAmI", passthrough, passthrough, Buffer.alloc(0), md, { deadline: Date.now() + 10_000 }, () => undefined));
    await new Promise((r) => setTimeout(r, 200));
    for (const call of calls) call.cancel();
    await new Promise((r) => setTimeout(r, 100));
    // Were the slots still taken, the next refusal would be answered at once (a token refilled meanwhile may admit
    // one call first: then the next is refused).
    let r = await timedWhoAmI("norole-token");
    if (r.err?.code === status.PERMISSION_DENIED) r = await timedWhoAmI("norole-token");
    expect(r.err?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(r.ms).toBeGreaterThanOrEqual(450);
    c.close();
  });
});
