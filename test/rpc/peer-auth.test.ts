// The peer certificate read once per connection: each connection keeps its own (another client certificate is read
// afresh), a reconnection is read again, and grpc-js's internal shape that the cache relies on is still there.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, Server, ServerCredentials, credentials, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PeerAuth } from "../../src/iam/principal.js";
import { certificateIdentity } from "../../src/km/identity.js";
import { devPaths, ensureDevCerts } from "../../src/km/dev-files.js";
import { connectionOf, peerAuthOf } from "../../src/rpc/peer-auth.js";

const PATH = "/test.Who/Who";
const raw = (b: Buffer): Buffer => b;

describe("peer authentication per connection", () => {
  const dir = mkdtempSync(join(tmpdir(), "peer-auth-"));
  const paths = devPaths(dir);
  const server = new Server();
  /** getAuthContext() calls made by the server, i.e. certificates parsed. */
  let parsed = 0;
  let port = 0;
  const seen: { connection: object | undefined; auth: Readonly<PeerAuth> }[] = [];

  beforeAll(async () => {
    ensureDevCerts(dir);
    server.register(
      PATH,
      (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        const counted = { getAuthContext: () => (parsed++, call.getAuthContext() as PeerAuth), call: (call as unknown as { call: unknown }).call };
        const auth = peerAuthOf(counted);
        seen.push({ connection: connectionOf(call), auth });
        callback(null, Buffer.from(certificateIdentity(auth.sslPeerCertificate) ?? "-"));
      },
      raw,
      raw,
      "unary",
    );
    const creds = ServerCredentials.createSsl(readFileSync(paths.ca), [{ cert_chain: readFileSync(paths.serverCert), private_key: readFileSync(paths.serverKey) }], true);
    port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", creds, (err, p) => (err ? reject(err) : resolve(p))));
  });

  afterAll(() => {
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  const client = (identity: string): Client =>
    new Client(`127.0.0.1:${port}`, credentials.createSsl(readFileSync(paths.ca), readFileSync(paths.clientKey(identity)), readFileSync(paths.clientCert(identity))), {
      "grpc.ssl_target_name_override": "localhost",
      "grpc.default_authority": "localhost",
    });
  const who = (c: Client): Promise<string> =>
    new Promise((resolve, reject) => c.makeUnaryRequest(PATH, raw, raw, Buffer.alloc(0), (err, res) => (err || !res ? reject(err ?? new Error("no answer")) : resolve(res.toString()))));

  it("finds the connection of a call in the grpc-js installed (else every call would parse the certificate)", async () => {
    const c = client("worker");
    try {
      await who(c);
      expect(seen.at(-1)?.connection).toBeDefined();
    } finally {
      c.close();
    }
  });

  it("parses each connection's certificate once, keeps connections apart, and reads a new connection afresh", async () => {
    const worker = client("worker");
    const dispatcher = client("dispatcher");
    try {
      const before = parsed;
      const answers = await Promise.all([who(worker), who(dispatcher), who(worker), who(dispatcher), who(worker)]);
      expect(answers).toEqual(["worker", "dispatcher", "worker", "dispatcher", "worker"]);
      for (let i = 0; i < 20; i++) expect(await who(i % 2 ? worker : dispatcher)).toBe(i % 2 ? "worker" : "dispatcher");
      expect(parsed - before).toBe(2);
    } finally {
      worker.close();
      dispatcher.close();
    }
    // A new connection, here with another certificate: read again, not served from a closed connection's entry.
    const admin = client("admin");
    try {
      const before = parsed;
      expect(await who(admin)).toBe("admin");
      expect(await who(admin)).toBe("admin");
      expect(parsed - before).toBe(1);
      expect(Object.isFrozen(seen.at(-1)?.auth)).toBe(true);
    } finally {
      admin.close();
    }
  });

  it("falls back to reading every call when the call does not show its connection", () => {
    let calls = 0;
    const opaque = { getAuthContext: (): PeerAuth => (calls++, { transportSecurityType: "ssl" }) };
    peerAuthOf(opaque);
    peerAuthOf(opaque);
    expect(connectionOf(opaque)).toBeUndefined();
    expect(calls).toBe(2);
  });
});
