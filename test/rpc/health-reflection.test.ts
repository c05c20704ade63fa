// grpc.health.v1 (Check and Watch, open to all) and reflection (served services only; behind authentication in every
// mode; on by default in development, off by default in production).
import { createRequire } from "node:module";
import { afterEach, describe, expect, it } from "vitest";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { credentials, loadPackageDefinition, Metadata, status, type Client, type ClientDuplexStream, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { checkHealth, createDispatcherClients } from "../../src/client/index.js";
import { createSystemService } from "../../src/system/service.js";
import { systemHandlers } from "../../src/system/handlers.js";
import { startTestServer, testJobService, type TestServer } from "./fixtures.js";

const require = createRequire(import.meta.url);
const REFLECTION_PROTO = require.resolve("@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto");

interface ReflectionResponse {
  listServicesResponse?: { service: Array<{ name: string }> };
  fileDescriptorResponse?: { fileDescriptorProto: number[][] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

type ReflectionClient = Client & { ServerReflectionInfo(metadata: Metadata): ClientDuplexStream<Record<string, unknown>, ReflectionResponse> };

/** One request on a ServerReflectionInfo stream, through a reflection client built from the reflection proto. */
async function reflect(address: string, request: Record<string, unknown>, token?: string): Promise<ReflectionResponse> {
  const pkg = loadPackageDefinition(loadSync(REFLECTION_PROTO, { longs: String, enums: String, bytes: Array, defaults: true, oneofs: true })) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => ReflectionClient } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, credentials.createInsecure());
  const metadata = new Metadata();
  if (token) metadata.set("authorization", `Bearer ${token}`);
  try {
    return await new Promise<ReflectionResponse>((resolve, reject) => {
      const call = client.ServerReflectionInfo(metadata);
      call.on("data", (r: ReflectionResponse) => {
        resolve(r);
        call.end();
      });
      call.on("error", (e: ServiceError) => reject(e));
      call.write({ host: "", ...request });
    });
  } finally {
    client.close();
  }
}

const system = () => systemHandlers(createSystemService({ roles: ["dispatcher"] }));

describe("health", () => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.stop();
    t = undefined;
  });

  it("Check: SERVING for the server and each served service, SERVICE_UNKNOWN otherwise, without credentials", async () => {
    t = await startTestServer();
    expect(await checkHealth(t.address)).toBe("SERVING");
    expect(await checkHealth(t.address, "dispatcher.v1.SystemService")).toBe("SERVING");
    expect(await checkHealth(t.address, "dispatcher.v1.JobService")).toBe("SERVING");
    expect(await checkHealth(t.address, "km.v1.KeyManagementService")).toBe("SERVICE_UNKNOWN");
  });

  it("Watch: SERVING, then NOT_SERVING as soon as a stop begins, then the stream ends", async () => {
    t = await startTestServer();
    const c = createDispatcherClients({ address: t.address, retry: false });
    const seen: string[] = [];
    let stopped: Promise<void> | undefined;
    for await (const s of c.health.watch("dispatcher.v1.JobService")) {
      seen.push(s);
      if (s === "SERVING") stopped = t.server.stop(1_000);
    }
    await stopped;
    c.close();
    expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
  });

  it("checkHealth throws UNAVAILABLE when nothing listens", async () => {
    t = await startTestServer();
    const address = t.address;
    await t.stop();
    t = undefined;
    await expect(checkHealth(address, "", 1_000)).rejects.toMatchObject({ code: expect.any(Number) });
    const err = await checkHealth(address, "", 1_000).catch((e: { code: number }) => e);
    expect([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]).toContain((err as { code: number }).code);
  });
});

describe("reflection", () => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.stop();
    t = undefined;
  });

  it("development: UNAUTHENTICATED without credentials; lists exactly the served services plus health with a key", async () => {
    t = await startTestServer({ services: [system()] });
    await expect(reflect(t.address, { listServices: "*" })).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    const r = await reflect(t.address, { listServices: "*" }, "reader-token");
    expect(r.listServicesResponse?.service.map((s) => s.name).sort()).toEqual(["dispatcher.v1.SystemService", "grpc.health.v1.Health"]);
  });

  it("development: serves the file descriptor of a served service", async () => {
    t = await startTestServer({ services: [system(), testJobService()] });
    const r = await reflect(t.address, { fileContainingSymbol: "dispatcher.v1.JobService" }, "reader-token");
    const files = (r.fileDescriptorResponse?.fileDescriptorProto ?? []).map((b) => fromBinary(FileDescriptorProtoSchema, Uint8Array.from(b)));
    const jobs = files.find((f) => f.service.some((s) => s.name === "JobService"));
    expect(jobs?.name).toBe("dispatcher/v1/jobs.proto");
    expect(jobs?.service[0]?.method.map((m) => m.name)).toContain("WatchJob");
    // Self-contained, as grpcurl needs: every import of every returned file is returned too.
    expect(jobs?.dependency).toContain("google/protobuf/timestamp.proto");
    const names = new Set(files.map((f) => f.name));
    expect(files.flatMap((f) => f.dependency).filter((d) => !names.has(d))).toEqual([]);
  });

  it("production: off unless enabled", async () => {
    t = await startTestServer({ mode: "production", server: { reflection: false } });
    await expect(reflect(t.address, { listServices: "*" }, "admin-token")).rejects.toMatchObject({ code: status.UNIMPLEMENTED });
  });

  it("production, enabled: UNAUTHENTICATED without credentials, PERMISSION_DENIED without system.read, listed with them", async () => {
    t = await startTestServer({ mode: "production", server: { reflection: true } });
    await expect(reflect(t.address, { listServices: "*" })).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await expect(reflect(t.address, { listServices: "*" }, "norole-token")).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    const r = await reflect(t.address, { listServices: "*" }, "reader-token");
    expect(r.listServicesResponse?.service.map((s) => s.name).sort()).toEqual(["dispatcher.v1.JobService", "dispatcher.v1.SystemService", "grpc.health.v1.Health"]);
  });
});
