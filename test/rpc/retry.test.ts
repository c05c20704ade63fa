// Client retries: the channel's service config, built from the protos' idempotency_level, retries an idempotent
// method on UNAVAILABLE; a mutating call whose request carries an idempotency key is retried by the client with that
// key (generated when the caller gave none); a mutating call without one never (attempts and keys seen on the server).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status } from "@grpc/grpc-js";
import { createDispatcherClients, type DispatcherError, idempotentMethods, retryServiceConfig, type DispatcherClients } from "../../src/client/index.js";
import { loadDescriptorSet } from "../../src/client/service-config.js";
import { UnavailableError } from "../../src/errors.js";
import { SystemServiceService } from "../../src/gen/proto/dispatcher/v1/system.js";
import { UserServiceService } from "../../src/gen/proto/dispatcher/v1/iam.js";
import { defineService, unary } from "../../src/rpc/adapter.js";
import { startTestServer, testJobService, type TestServer } from "./fixtures.js";

describe("idempotent methods from the descriptor set", () => {
  it("lists NO_SIDE_EFFECTS and IDEMPOTENT methods only", () => {
    const names = idempotentMethods(loadDescriptorSet()).map((m) => `${m.service}/${m.method}`);
    expect(names).toEqual(expect.arrayContaining(["dispatcher.v1.SystemService/GetServerInfo", "dispatcher.v1.JobService/GetJob", "dispatcher.v1.JobService/WatchJob", "dispatcher.v1.JobService/CancelJob", "km.v1.KeyManagementService/DeleteCredential"]));
    for (const unsafe of ["dispatcher.v1.JobService/RetryJob", "dispatcher.v1.JobService/RunDiagnosticJob", "km.v1.KeyManagementService/StoreCredential", "agent.v1.AgentService/RunScript"]) expect(names).not.toContain(unsafe);
  });

  it("builds a service config retrying UNAVAILABLE only", () => {
    const config = JSON.parse(retryServiceConfig([{ service: "a.v1.S", method: "M" }], { maxAttempts: 3, initialBackoffMs: 50, maxBackoffMs: 500, backoffMultiplier: 2 })) as { methodConfig: Array<{ retryPolicy: Record<string, unknown> }> };
    expect(config.methodConfig[0]?.retryPolicy).toEqual({ maxAttempts: 3, initialBackoff: "0.050s", maxBackoff: "0.500s", backoffMultiplier: 2, retryableStatusCodes: ["UNAVAILABLE"] });
  });
});

describe("client retries over a real server", () => {
  let t: TestServer;
  let c: DispatcherClients;
  const attempts = new Map<string, number>();
  const keys: string[] = [];
  const count = (key: string): number => {
    const n = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, n);
    return n;
  };
  /** Fails with UNAVAILABLE until the given attempt. */
  const flaky = (key: string, succeedOn: number) => {
    if (count(key) < succeedOn) throw new UnavailableError("database unreachable");
  };

  beforeAll(async () => {
    const system = defineService(SystemServiceService, {
      getServerInfo: unary(SystemServiceService.getServerInfo, async () => {
        flaky("getServerInfo", 3);
        return { version: "1", roles: [], startTime: new Date(), instanceId: "i" };
      }),
      whoAmI: unary(SystemServiceService.whoAmI, async () => {
        count("whoAmI");
        throw new Error("boom");
      }),
    });
    const users = defineService(UserServiceService, {
      createUser: unary(UserServiceService.createUser, async () => {
        flaky("createUser", 3);
        return {};
      }),
      getUser: unary(UserServiceService.getUser, async () => ({})),
      listUsers: unary(UserServiceService.listUsers, async () => ({ users: [], nextPageToken: "" })),
      updateUser: unary(UserServiceService.updateUser, async () => ({})),
      deleteUser: unary(UserServiceService.deleteUser, async () => ({})),
    });
    const jobs = testJobService({
      retryJob: async (req) => {
        keys.push(req.idempotencyKey);
        flaky("retryJob", 3);
        return {};
      },
      runDiagnosticJob: async (req) => {
        keys.push(req.idempotencyKey);
        flaky("runDiagnosticJob", 99);
        return {};
      },
      cancelJob: async () => {
        flaky("cancelJob", 2);
        return {};
      },
      getJob: async () => {
        flaky("getJob", 99);
        return {};
      },
    });
    t = await startTestServer({ services: [system, jobs, users] });
    c = createDispatcherClients({ address: t.address, token: "admin-token", retry: { initialBackoffMs: 10, maxBackoffMs: 20 } });
  });

  afterAll(async () => {
    c.close();
    await t.stop();
  });

  it("retries an idempotent (NO_SIDE_EFFECTS) method on UNAVAILABLE until it succeeds", async () => {
    await expect(c.system.getServerInfo()).resolves.toMatchObject({ version: "1" });
    expect(attempts.get("getServerInfo")).toBe(3);
  });

  it("retries an IDEMPOTENT method too", async () => {
    await expect(c.jobs.cancelJob({ id: "j" })).resolves.toBeDefined();
    expect(attempts.get("cancelJob")).toBe(2);
  });

  it("never retries a mutating method without an idempotency key", async () => {
    const err = await c.users.createUser({ email: "a@example.com" }).catch((e: unknown) => e);
    expect((err as DispatcherError).code).toBe(status.UNAVAILABLE);
    expect(attempts.get("createUser")).toBe(1);
  });

  it("generates an idempotency key when none is given and retries with the same key until it succeeds", async () => {
    keys.length = 0;
    await expect(c.jobs.retryJob({ id: "j" })).resolves.toBeDefined();
    expect(attempts.get("retryJob")).toBe(3);
    expect(keys).toHaveLength(3);
    expect(keys[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(new Set(keys).size).toBe(1);
    keys.length = 0;
    attempts.delete("retryJob");
    await c.jobs.retryJob({ id: "j" });
    expect(keys[0]).not.toBe(undefined);
    expect(new Set(keys).size).toBe(1);
  });

  it("keeps the caller's key, gives up after maxAttempts, and stops at the deadline", async () => {
    keys.length = 0;
    await expect(c.jobs.runDiagnosticJob({ idempotencyKey: "mine" })).rejects.toMatchObject({ code: status.UNAVAILABLE });
    expect(attempts.get("runDiagnosticJob")).toBe(4);
    expect(keys).toEqual(["mine", "mine", "mine", "mine"]);
    const slow = createDispatcherClients({ address: t.address, token: "admin-token", retry: { maxAttempts: 1_000, initialBackoffMs: 50, maxBackoffMs: 50 } });
    try {
      attempts.delete("runDiagnosticJob");
      const started = Date.now();
      // The last attempt's UNAVAILABLE, or DEADLINE_EXCEEDED when the deadline falls inside an attempt (a busy machine).
      const err = (await slow.jobs.runDiagnosticJob({ idempotencyKey: "mine" }, { deadlineMs: 600 }).catch((e: unknown) => e)) as { code?: number };
      expect([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]).toContain(err.code);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(attempts.get("runDiagnosticJob")).toBeGreaterThan(2);
      expect(attempts.get("runDiagnosticJob")).toBeLessThan(1_000);
    } finally {
      slow.close();
    }
  });

  it("gives up after maxAttempts and does not retry other codes", async () => {
    await expect(c.jobs.getJob({ id: "j" })).rejects.toMatchObject({ code: status.UNAVAILABLE });
    expect(attempts.get("getJob")).toBe(4);
    await expect(c.system.whoAmI()).rejects.toMatchObject({ code: status.INTERNAL });
    expect(attempts.get("whoAmI")).toBe(1);
  });

  it("does not retry at all with retry: false", async () => {
    const noRetry = createDispatcherClients({ address: t.address, token: "operator-token", retry: false });
    try {
      attempts.delete("getServerInfo");
      await expect(noRetry.system.getServerInfo()).rejects.toMatchObject({ code: status.UNAVAILABLE });
      expect(attempts.get("getServerInfo")).toBe(1);
    } finally {
      noRetry.close();
    }
  });
});
