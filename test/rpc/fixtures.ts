// Test fixtures for the RPC layer: fixed-token authentication, a configurable JobService, and a real server on an
// ephemeral port with its log lines and request-log entries captured.
import { Writable } from "node:stream";
import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { loadConfig, type Config } from "../../src/config.js";
import { JobServiceService } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { createLogger, type RequestLogEntry } from "../../src/log.js";
import { defineService, serverStream, unary, type RpcService, type ServerStreamHandler, type UnaryHandler } from "../../src/rpc/adapter.js";
import type { Authenticate, Principal } from "../../src/iam/principal.js";
import { createRpcServer, type RpcServer } from "../../src/rpc/server.js";
import { createSystemService } from "../../src/system/service.js";
import { systemHandlers } from "../../src/system/handlers.js";
import { NotFoundError } from "../../src/errors.js";

export const PRINCIPALS: Record<string, Principal> = {
  "admin-token": { id: "u-admin", kind: "user", roles: ["admin"], displayName: "Ada Admin" },
  "operator-token": { id: "u-oper", kind: "user", roles: ["operator"], displayName: "Otto Operator" },
  "reader-token": { id: "u-read", kind: "user", roles: ["reader"], displayName: "Rita Reader" },
  "worker-token": { id: "svc-worker", kind: "service", roles: ["operator"], displayName: "worker" },
  "norole-token": { id: "u-none", kind: "user", roles: [], displayName: "Nobody" },
};

export const fakeAuthenticate: Authenticate = async (token) => PRINCIPALS[token] ?? null;

type JobHandlers = {
  [K in keyof typeof JobServiceService]?: (typeof JobServiceService)[K]["responseStream"] extends true
    ? ServerStreamHandler<ReturnType<(typeof JobServiceService)[K]["requestDeserialize"]>, ReturnType<(typeof JobServiceService)[K]["responseDeserialize"]>>
    : UnaryHandler<ReturnType<(typeof JobServiceService)[K]["requestDeserialize"]>, ReturnType<(typeof JobServiceService)[K]["responseDeserialize"]>>;
};

/** A JobService whose methods answer NOT_FOUND unless a test gives them a handler. */
export function testJobService(handlers: JobHandlers = {}): RpcService {
  const missing = (id: string) => async (): Promise<never> => {
    throw new NotFoundError("job", id);
  };
  const J = JobServiceService;
  return defineService(J, {
    getJob: unary(J.getJob, handlers.getJob ?? (async (req) => missing(req.id)())),
    listJobs: unary(J.listJobs, handlers.listJobs ?? (async () => ({ jobs: [], nextPageToken: "" }))),
    watchJob: serverStream(J.watchJob, handlers.watchJob ?? (async (req) => missing(req.id)())),
    listJobEvents: unary(J.listJobEvents, handlers.listJobEvents ?? (async (req) => missing(req.id)())),
    cancelJob: unary(J.cancelJob, handlers.cancelJob ?? (async (req) => missing(req.id)())),
    retryJob: unary(J.retryJob, handlers.retryJob ?? (async (req) => missing(req.id)())),
    runDiagnosticJob: unary(J.runDiagnosticJob, handlers.runDiagnosticJob ?? missing("diagnostic")),
  });
}

export interface TestServer {
  server: RpcServer;
  address: string;
  config: Config;
  /** Parsed service-log lines. */
  logLines: Array<Record<string, unknown>>;
  requests: RequestLogEntry[];
  stop(graceMs?: number): Promise<void>;
}

export interface TestServerOptions {
  services?: RpcService[];
  server?: Partial<Config["server"]>;
  mode?: Config["mode"];
  authenticate?: Authenticate;
}

/** A started server on 127.0.0.1:<ephemeral> serving SystemService and a test JobService by default. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const base = loadConfig({}, "");
  const config: Config = { ...base, mode: options.mode ?? "development", server: { ...base.server, bind: "127.0.0.1", port: 0, reflection: (options.mode ?? "development") === "development", ...options.server } };
  const logLines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const log = createLogger({ level: "debug", destination });
  const requests: RequestLogEntry[] = [];
  const services = options.services ?? [systemHandlers(createSystemService({ roles: ["dispatcher"] })), testJobService()];
  const server = createRpcServer({ config, log, requestLog: { write: (e) => void requests.push(e) }, authenticate: options.authenticate ?? fakeAuthenticate, services });
  const port = await server.start();
  return { server, address: `127.0.0.1:${port}`, config, logLines, requests, stop: (graceMs = 2_000) => server.stop(graceMs) };
}

/** A raw grpc-js call of any method with an empty request body: for tests that enumerate methods. */
export function rawCall(client: Client, path: string, responseStream: boolean, token?: string): Promise<ServiceError | null> {
  const metadata = new Metadata();
  if (token) metadata.set("authorization", `Bearer ${token}`);
  const passthrough = (b: Buffer): Buffer => b;
  const options = { deadline: Date.now() + 5_000 };
  return new Promise((resolve) => {
    if (!responseStream) {
      client.makeUnaryRequest(path, passthrough, passthrough, Buffer.alloc(0), metadata, options, (err) => resolve(err));
      return;
    }
    const call = client.makeServerStreamRequest(path, passthrough, passthrough, Buffer.alloc(0), metadata, options);
    call.on("data", () => undefined);
    call.on("error", (err: ServiceError) => resolve(err));
    call.on("end", () => resolve(null));
  });
}

export function insecureClient(address: string): Client {
  return new Client(address, credentials.createInsecure());
}

