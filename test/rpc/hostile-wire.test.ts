// Hostile bytes on the wire: a request body that is not protobuf answers INVALID_ARGUMENT with ErrorInfo and reaches the
// request log like any call; an oversized authorization header is refused at once (never left hanging to the caller's
// deadline), and the server keeps serving the next caller.
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeStatusDetails } from "../../src/rpc/status.js";
import { insecureClient, startTestServer, type TestServer } from "./fixtures.js";

let t: TestServer;

beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t?.stop();
});

const passthrough = (b: Buffer): Buffer => b;

/** One unary call of `path` with these raw bytes and this authorization value; resolves with its error and duration. */
function call(path: string, body: Buffer, authorization: string, deadlineMs = 10_000): Promise<{ err: ServiceError | null; ms: number }> {
  const client = insecureClient(t.address);
  const metadata = new Metadata();
  metadata.set("authorization", authorization);
  const started = Date.now();
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, passthrough, passthrough, body, metadata, { deadline: Date.now() + deadlineMs }, (err) => {
      client.close();
      resolve({ err, ms: Date.now() - started });
    });
  });
}

// Field 1 (id, a string) with a length that runs past the end of the message: no protobuf decoder accepts it.
const TRUNCATED = Buffer.from([0x0a, 0x7f, 0x41, 0x42]);

describe("undecodable request bodies", () => {
  it("answer INVALID_ARGUMENT with ErrorInfo, and appear in the request log with their caller", async () => {
    const before = t.requests.length;
    const { err } = await call("/dispatcher.v1.JobService/GetJob", TRUNCATED, "Bearer reader-token");
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(decodeStatusDetails(err?.metadata ?? new Metadata())?.errorInfo).toMatchObject({ reason: "MALFORMED_REQUEST", domain: "dispatcher.v1" });
    const logged = t.requests.slice(before).find((r) => r.method === "/dispatcher.v1.JobService/GetJob");
    expect(logged).toMatchObject({ code: "INVALID_ARGUMENT", principal: "u-read" });
  });

  it("still ask for credentials first: without them the answer is UNAUTHENTICATED", async () => {
    const { err } = await call("/dispatcher.v1.JobService/GetJob", TRUNCATED, "Bearer nobody");
    expect(err?.code).toBe(status.UNAUTHENTICATED);
  });

  it("do the same on a server stream (WatchJob)", async () => {
    const client = insecureClient(t.address);
    const metadata = new Metadata();
    metadata.set("authorization", "Bearer reader-token");
    const err = await new Promise<ServiceError | null>((resolve) => {
      const s = client.makeServerStreamRequest("/dispatcher.v1.JobService/WatchJob", passthrough, passthrough, TRUNCATED, metadata, { deadline: Date.now() + 10_000 });
      s.on("data", () => undefined);
      s.on("error", (e: ServiceError) => resolve(e));
      s.on("end", () => resolve(null));
    });
    client.close();
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
  });
});

describe("oversized metadata", () => {
  for (const kb of [17, 40]) {
    it(`answers a ${kb} KB authorization header RESOURCE_EXHAUSTED with ErrorInfo at once, before looking the key up`, async () => {
      const before = t.requests.length;
      const { err, ms } = await call("/dispatcher.v1.SystemService/WhoAmI", Buffer.alloc(0), `Bearer ${"A".repeat(kb * 1024)}`);
      expect(err?.code, err?.message).toBe(status.RESOURCE_EXHAUSTED);
      expect(decodeStatusDetails(err?.metadata ?? new Metadata())?.errorInfo).toMatchObject({ reason: "METADATA_TOO_LARGE", metadata: { limitBytes: String(16 * 1024) } });
      expect(ms).toBeLessThan(3_000);
      expect(t.requests.slice(before).find((r) => r.method === "/dispatcher.v1.SystemService/WhoAmI")).toMatchObject({ code: "RESOURCE_EXHAUSTED", principal: "-" });
    });
  }

  for (const kb of [100, 300]) {
    // One header over 64 KiB is beyond what the HTTP/2 layer decodes: it refuses the connection there and then.
    it(`refuses a ${kb} KB authorization header at once, and serves the next caller`, async () => {
      const { err, ms } = await call("/dispatcher.v1.SystemService/WhoAmI", Buffer.alloc(0), `Bearer ${"A".repeat(kb * 1024)}`);
      expect(err, "refused").not.toBeNull();
      expect(err?.code, err?.message).not.toBe(status.DEADLINE_EXCEEDED);
      expect(ms).toBeLessThan(3_000);
      const next = await call("/dispatcher.v1.SystemService/WhoAmI", Buffer.alloc(0), "Bearer reader-token");
      expect(next.err).toBeNull();
    });
  }

  it("lets ordinary metadata through", async () => {
    const { err } = await call("/dispatcher.v1.SystemService/WhoAmI", Buffer.alloc(0), `Bearer reader-token`);
    expect(err).toBeNull();
  });
});
