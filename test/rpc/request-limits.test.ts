// Per-method request size limits over a real server: a body over its method's limit answers RESOURCE_EXHAUSTED
// (ErrorInfo REQUEST_TOO_LARGE, the limit named) at once, before authentication and without being decoded, and is in
// the request log; a body within the limit is served; overrides and the built-in table choose each method's limit.
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { SystemServiceService, WhoAmIRequest } from "../../src/gen/proto/dispatcher/v1/system.js";
import { type RpcService } from "../../src/rpc/adapter.js";
import { METHOD_MAX_REQUEST_BYTES, requestLimits } from "../../src/rpc/request-limits.js";
import { decodeStatusDetails } from "../../src/rpc/status.js";
import { createSystemService } from "../../src/system/service.js";
import { systemHandlers } from "../../src/system/handlers.js";
import { startTestServer, testJobService, type TestServer } from "./fixtures.js";

const WHO_AM_I = "/dispatcher.v1.SystemService/WhoAmI";
const GET_JOB = "/dispatcher.v1.JobService/GetJob";
let decoded = 0;
let s: TestServer;
let client: Client;

/** SystemService whose WhoAmI decoder counts the bodies it decodes. */
function countingSystem(): RpcService {
  const service = systemHandlers(createSystemService({ roles: ["dispatcher"] }));
  const who = SystemServiceService.whoAmI;
  const definition = { ...SystemServiceService, whoAmI: { ...who, requestDeserialize: (b: Buffer) => (decoded++, WhoAmIRequest.decode(b)) } };
  return { ...service, definition };
}

beforeAll(async () => {
  s = await startTestServer({ services: [countingSystem(), testJobService()], server: { maxRequestBytes: 1024, maxRequestBytesByMethod: { "JobService/GetJob": 64 * 1024 } } });
  client = new Client(s.address, credentials.createInsecure());
});
afterAll(async () => {
  client?.close();
  await s?.stop();
});

/** A WhoAmI/GetJob body of `n` bytes that decodes: unknown field 15 (length-delimited) filled with zeros. */
function body(n: number): Buffer {
  const varint = (v: number): number[] => (v < 0x80 ? [v] : [0x80 | (v & 0x7f), ...varint(v >>> 7)]);
  // The tag, then a length whose own size depends on it: take the length that makes the whole n bytes.
  for (let len = n - 2; len > 0; len--) if (1 + varint(len).length + len === n) return Buffer.concat([Buffer.from([0x7a, ...varint(len)]), Buffer.alloc(len)]);
  throw new Error(`no body of ${n} bytes`);
}

function call(path: string, bytes: Buffer, token?: string): Promise<{ err: ServiceError | null; ms: number }> {
  const md = new Metadata();
  if (token) md.set("authorization", `Bearer ${token}`);
  const t = performance.now();
  const passthrough = (b: Buffer): Buffer => b;
  return new Promise((resolve) => client.makeUnaryRequest(path, passthrough, passthrough, bytes, md, { deadline: Date.now() + 10_000 }, (err) => resolve({ err, ms: performance.now() - t })));
}

describe("per-method request size limits", () => {
  it("refuses a body over its method's limit with RESOURCE_EXHAUSTED at once, undecoded, and logs it", async () => {
    const before = decoded;
    const { err, ms } = await call(WHO_AM_I, body(1025), "reader-token");
    expect(err?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err?.details).toMatch(/1025 bytes exceeds this method's limit of 1024 bytes/);
    expect(decodeStatusDetails(err?.metadata ?? new Metadata())?.errorInfo).toMatchObject({ reason: "REQUEST_TOO_LARGE", metadata: { limitBytes: "1024" } });
    expect(ms).toBeLessThan(2_000);
    expect(decoded).toBe(before);
    expect(s.requests.at(-1)).toMatchObject({ method: WHO_AM_I, code: "RESOURCE_EXHAUSTED" });
  });

  it("serves a body within the limit (decoded once)", async () => {
    const before = decoded;
    const { err } = await call(WHO_AM_I, body(1024), "reader-token");
    expect(err).toBeNull();
    expect(decoded).toBe(before + 1);
  });

  it("refuses an oversized body before authentication, as oversized metadata", async () => {
    expect((await call(WHO_AM_I, body(4096))).err?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await call(WHO_AM_I, body(100))).err?.code).toBe(status.UNAUTHENTICATED);
  });

  it("applies a configured override to its method only", async () => {
    expect((await call(GET_JOB, body(32 * 1024), "reader-token")).err?.code).toBe(status.NOT_FOUND);
    expect((await call(GET_JOB, body(64 * 1024 + 1), "reader-token")).err?.code).toBe(status.RESOURCE_EXHAUSTED);
  });

  it("chooses each method's limit: override, then the built-in table, then the default, never above maxMessageBytes", () => {
    const base = loadConfig({}, "").server;
    expect(base.maxRequestBytes).toBe(256 * 1024);
    const limitOf = requestLimits(base);
    expect(limitOf(WHO_AM_I)).toBe(256 * 1024);
    expect(limitOf("/dispatcher.v1.ServerAgentService/RunServerScript")).toBe(METHOD_MAX_REQUEST_BYTES["/dispatcher.v1.ServerAgentService/RunServerScript"]);
    const env = loadConfig({ DISPATCHER_SERVER_MAX_REQUEST_BYTES_BY_METHOD: "SystemService/WhoAmI=2048, /dispatcher.v1.ServerAgentService/RunServerScript=99999999" }, "").server;
    const tuned = requestLimits(env);
    expect(tuned(WHO_AM_I)).toBe(2048);
    expect(tuned("/dispatcher.v1.ServerAgentService/RunServerScript")).toBe(env.maxMessageBytes);
    expect(tuned(GET_JOB)).toBe(256 * 1024);
    expect(() => loadConfig({ DISPATCHER_SERVER_MAX_REQUEST_BYTES_BY_METHOD: "WhoAmI=12" }, "")).toThrow(/maxRequestBytesByMethod/);
  });
});
