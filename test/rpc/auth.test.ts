// Default deny: every method of every served service refuses callers without valid credentials, every generated
// method has a permission, a method missing from the table is refused, and roles grant what they promise.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status, type Client, type MethodDefinition, type ServiceDefinition } from "@grpc/grpc-js";
import { createDispatcherClients, type DispatcherError } from "../../src/client/index.js";
import { type WhoAmIResponse, PrincipalKind } from "../../src/gen/proto/dispatcher/v1/system.js";
import { defineService, unary, type RpcService } from "../../src/rpc/adapter.js";
import { METHOD_PERMISSIONS, PUBLIC, roleGrants } from "../../src/iam/permissions.js";
import { packageVersion, createSystemService } from "../../src/system/service.js";
import { systemHandlers } from "../../src/system/handlers.js";
import { insecureClient, rawCall, startTestServer, testJobService, type TestServer } from "./fixtures.js";

const GEN = join(import.meta.dirname, "../../src/gen/proto");

/** Every service definition ts-proto generated from proto/ (found by shape, so new services are covered). */
async function generatedServices(): Promise<Map<string, ServiceDefinition>> {
  const out = new Map<string, ServiceDefinition>();
  const files = readdirSync(GEN, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
  for (const file of files) {
    const mod = (await import(pathToFileURL(join(GEN, file)).href)) as Record<string, unknown>;
    for (const [name, value] of Object.entries(mod)) {
      if (name.endsWith("Service") && value && typeof value === "object" && Object.values(value).every((m) => typeof (m as MethodDefinition<unknown, unknown>).path === "string")) {
        out.set(name, value as ServiceDefinition);
      }
    }
  }
  return out;
}

const methodsOf = (services: RpcService[]): Array<MethodDefinition<unknown, unknown>> => services.flatMap((s) => Object.values(s.definition) as Array<MethodDefinition<unknown, unknown>>);

describe("the permission table", () => {
  it("names every method of every generated service, and only health is public", async () => {
    const services = await generatedServices();
    expect([...services.keys()]).toEqual(expect.arrayContaining(["SystemServiceService", "JobServiceService", "KeyManagementServiceService", "AgentServiceService"]));
    const missing: string[] = [];
    for (const definition of services.values()) {
      for (const method of Object.values(definition)) {
        if (!Object.hasOwn(METHOD_PERMISSIONS, method.path)) missing.push(method.path);
        else expect(METHOD_PERMISSIONS[method.path], method.path).not.toBe(PUBLIC);
      }
    }
    expect(missing).toEqual([]);
    const publicMethods = Object.entries(METHOD_PERMISSIONS).filter(([, p]) => p === PUBLIC).map(([m]) => m);
    expect(publicMethods.every((m) => m.startsWith("/grpc.health.v1.Health/"))).toBe(true);
  });

  it("grants admin everything, operator all but admin.*, reader only *.read, unknown roles nothing", () => {
    expect(roleGrants("admin", "admin.keys")).toBe(true);
    expect(roleGrants("operator", "jobs.cancel")).toBe(true);
    expect(roleGrants("operator", "admin.diagnostics")).toBe(false);
    expect(roleGrants("reader", "jobs.read")).toBe(true);
    expect(roleGrants("reader", "jobs.cancel")).toBe(false);
    expect(roleGrants("superuser", "jobs.read")).toBe(false);
  });
});

describe("authentication and authorization over a real server", () => {
  let t: TestServer;
  let raw: Client;
  let handlerRuns = 0;
  const unlisted = {
    doIt: {
      path: "/test.v1.UnlistedService/DoIt" as const,
      requestStream: false as const,
      responseStream: false as const,
      requestSerialize: (v: Buffer) => v,
      requestDeserialize: (v: Buffer) => v,
      responseSerialize: (v: Buffer) => v,
      responseDeserialize: (v: Buffer) => v,
    },
  };
  const served: RpcService[] = [
    systemHandlers(createSystemService({ roles: ["dispatcher", "worker"] })),
    testJobService({ cancelJob: async () => ({}), runDiagnosticJob: async () => ({}), getJob: async () => ({}) }),
    defineService(unlisted, {
      doIt: unary(unlisted.doIt, async () => {
        handlerRuns++;
        return Buffer.alloc(0);
      }),
    }),
  ];

  beforeAll(async () => {
    t = await startTestServer({ services: served });
    raw = insecureClient(t.address);
  });

  afterAll(async () => {
    raw.close();
    await t.stop();
  });

  it("answers UNAUTHENTICATED on every method of every served service without credentials or with a bad token", async () => {
    const methods = methodsOf(served);
    expect(methods.length).toBeGreaterThanOrEqual(10);
    for (const token of [undefined, "wrong-token"]) {
      for (const m of methods) {
        const err = await rawCall(raw, m.path, m.responseStream, token);
        expect(err?.code, `${m.path} with ${token ?? "no token"}`).toBe(status.UNAUTHENTICATED);
      }
    }
    expect(handlerRuns).toBe(0);
  });

  it("refuses a malformed authorization header", async () => {
    const c = createDispatcherClients({ address: t.address, retry: false });
    try {
      const err = await c.system.whoAmI({}, { metadata: { authorization: "Basic YWRtaW4tdG9rZW4=" } }).catch((e: unknown) => e);
      expect((err as DispatcherError).code).toBe(status.UNAUTHENTICATED);
      expect((err as DispatcherError).errorInfo?.reason).toBe("UNAUTHENTICATED");
    } finally {
      c.close();
    }
  });

  it("denies a method missing from the permission table, even to an admin, without running it", async () => {
    const err = await rawCall(raw, unlisted.doIt.path, false, "admin-token");
    expect(err?.code).toBe(status.PERMISSION_DENIED);
    expect(handlerRuns).toBe(0);
    expect(t.logLines.some((l) => l.level === "error" && l.method === unlisted.doIt.path)).toBe(true);
  });

  it("applies the roles: reader reads, operator cancels but may not run diagnostics, admin may", async () => {
    const as = (token: string) => createDispatcherClients({ address: t.address, token, retry: false });
    const reader = as("reader-token");
    const operator = as("operator-token");
    const admin = as("admin-token");
    const nobody = as("norole-token");
    try {
      await expect(reader.jobs.getJob({ id: "j" })).resolves.toBeDefined();
      await expect(reader.jobs.cancelJob({ id: "j" })).rejects.toMatchObject({ code: status.PERMISSION_DENIED, errorInfo: { metadata: { permission: "jobs.cancel" } } });
      await expect(operator.jobs.cancelJob({ id: "j" })).resolves.toBeDefined();
      await expect(operator.jobs.runDiagnosticJob({})).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
      await expect(admin.jobs.runDiagnosticJob({})).resolves.toBeDefined();
      await expect(nobody.system.whoAmI({})).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    } finally {
      for (const c of [reader, operator, admin, nobody]) c.close();
    }
  });

  it("SystemService tells the caller who they are and what answered", async () => {
    const c = createDispatcherClients({ address: t.address, token: "worker-token", retry: false });
    try {
      const me: WhoAmIResponse = await c.system.whoAmI();
      expect(me).toEqual({ principalId: "svc-worker", kind: PrincipalKind.PRINCIPAL_KIND_SERVICE, roles: ["operator"], displayName: "worker" });
      const info = await c.system.getServerInfo();
      expect(info.version).toBe(packageVersion());
      expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(info.roles).toEqual(["dispatcher", "worker"]);
      expect(info.instanceId).not.toBe("");
      expect(info.startTime?.getTime()).toBeLessThanOrEqual(Date.now());
    } finally {
      c.close();
    }
  });
});
