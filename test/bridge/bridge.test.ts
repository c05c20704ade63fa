// The gRPC-Web bridge of a real `dispatcher start`, called by a third-party gRPC-Web client (connect) and by raw
// HTTP/1.1: the same answers as gRPC, WatchJob streaming as it happens, rich errors, authentication, -text, CORS,
// size limits, malformed input, deadlines, client cancellation, health, and a graceful stop.
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { GetServerInfoRequest, GetServerInfoResponse } from "../../src/gen/proto/dispatcher/v1/system.js";
import { DiagnosticOutcome, GetJobRequest, JobState, WatchJobRequest } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { readRequestLog } from "../cli/request-log.js";
import { bootstrapToken, createTestEnv, killStrayDispatchers, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";
import { frame, message, parseFrames, rawPost, webClient } from "./support.js";
import { sleep, until } from "../support/poll.js";

const ORIGIN = "https://console.example.test";
const LIMIT = 64 * 1024;
const SYSTEM = "dispatcher.v1.SystemService";
const JOBS = "dispatcher.v1.JobService";
const MISSING_JOB = "01JDQ3Z5K8W8G4QF2Q6N2D7M9T";

let t: TestEnv;
let p: DispatcherProcess;
let token: string;
let base: string;
let grpc: DispatcherClients;

async function connectError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

const grpcWeb = (extra: Record<string, string> = {}) => ({ "content-type": "application/grpc-web+proto", "x-grpc-web": "1", authorization: `Bearer ${token}`, ...extra });

beforeAll(async () => {
  t = await createTestEnv({ label: "bridge", env: { DISPATCHER_BRIDGE_CORS_ORIGINS: ORIGIN, DISPATCHER_BRIDGE_MAX_REQUEST_BYTES: String(LIMIT), DISPATCHER_SERVER_SHUTDOWN_GRACE_MS: "3000" } });
  p = await startDispatcher(t, ["start"], { timeoutMs: 60_000 });
  token = bootstrapToken(p) ?? "";
  base = `http://127.0.0.1:${t.ports.bridge}`;
  grpc = createDispatcherClients({ address: t.address, token, retry: false });
  // The bridge listens right after the gRPC server reports SERVING.
  for (let i = 0; i < 50; i++) {
    if (await rawPost(`${base}/grpc.health.v1.Health/Check`, frame(new Uint8Array()), grpcWeb()).then(() => true, () => false)) break;
    await sleep(100);
  }
});

afterAll(async () => {
  grpc?.close();
  await killStrayDispatchers();
  await t?.cleanup();
});

describe("gRPC-Web bridge", () => {
  it("answers unary calls as the gRPC server does, with the caller's identity", async () => {
    const system = webClient(base, SYSTEM, token);
    const [web, direct] = await Promise.all([system.getServerInfo!({}), grpc.system.getServerInfo({})]);
    expect(web.version).toBe(direct.version);
    expect(web.roles).toEqual(direct.roles);
    expect(web.instanceId).toBe(direct.instanceId);
    const who = await system.whoAmI!({});
    expect(who.principalId).toBe((await grpc.system.whoAmI({})).principalId);
    expect(who.roles).toContain("admin");
  });

  it("streams WatchJob message by message, the same messages as over gRPC", async () => {
    const jobs = webClient(base, JOBS, token);
    const run = await jobs.runDiagnosticJob!({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED, sleep: { seconds: 1n, nanos: 200_000_000 } });
    const id = run.job.id as string;
    const direct = (async () => {
      const out: Array<[number, string]> = [];
      for await (const m of grpc.jobs.watchJob({ id }, { deadlineMs: 20_000 })) if (m.event) out.push([Number(m.event.sequence), m.event.type]);
      return out;
    })();
    const arrivals: number[] = [];
    const web: Array<[number, string]> = [];
    let last: { state: number } | undefined;
    for await (const m of jobs.watchJob!({ id }, { timeoutMs: 20_000 }) as AsyncIterable<{ event?: { sequence: bigint; type: string }; job?: { state: number } }>) {
      arrivals.push(Date.now());
      if (m.event) web.push([Number(m.event.sequence), m.event.type]);
      last = m.job;
    }
    expect(last?.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    expect(web.length).toBeGreaterThanOrEqual(3);
    expect(web.at(-1)?.[1]).toBe("succeeded");
    expect(web.map(([seq]) => seq)).toEqual(web.map((_, i) => (web[0]?.[0] as number) + i));
    // Each watch begins with the job as it stands when it opened; from then on both saw the same events.
    const from = Math.max(web[0]?.[0] ?? 0, (await direct)[0]?.[0] ?? 0);
    expect(web.filter(([seq]) => seq >= from)).toEqual((await direct).filter(([seq]) => seq >= from));
    // Incremental: the first update arrived while the job still slept, not all at the end.
    expect((arrivals.at(-1) as number) - (arrivals[0] as number)).toBeGreaterThan(800);
  });

  it("carries rich errors: INVALID_ARGUMENT with field violations, NOT_FOUND with ErrorInfo", async () => {
    const jobs = webClient(base, JOBS, token);
    const bad = await connectError(jobs.getJob!({ id: "" }));
    expect(bad.code).toBe(Code.InvalidArgument);
    const violations = bad.findDetails(message("google.rpc.BadRequest")) as unknown as Array<{ fieldViolations: Array<{ field: string }> }>;
    expect(violations.flatMap((v) => v.fieldViolations.map((f) => f.field))).toEqual(["id"]);
    const missing = await connectError(jobs.getJob!({ id: MISSING_JOB }));
    expect(missing.code).toBe(Code.NotFound);
    const direct = await grpc.jobs.getJob({ id: MISSING_JOB }).then(() => new Error("found"), (err: Error) => err);
    expect(missing.rawMessage).toBe(`job "${MISSING_JOB}" not found`);
    expect(direct.message).toContain(missing.rawMessage);
    const info = missing.findDetails(message("google.rpc.ErrorInfo")) as unknown as Array<{ reason: string; domain: string }>;
    expect(info[0]?.domain).toBe("dispatcher.v1");
  });

  it("without a token the call is UNAUTHENTICATED, as over gRPC; health needs none", async () => {
    const err = await connectError(webClient(base, SYSTEM).getServerInfo!({}));
    expect(err.code).toBe(Code.Unauthenticated);
    const health = await rawPost(`${base}/grpc.health.v1.Health/Check`, frame(new Uint8Array()), { "content-type": "application/grpc-web" });
    const { messages, trailers } = parseFrames(health.body);
    expect(trailers["grpc-status"]).toBe("0");
    expect([...(messages[0] ?? [])]).toEqual([0x08, 0x01]); // status: SERVING
  });

  it("speaks grpc-web-text (base64), in a body sent in separately padded pieces", async () => {
    const bytes = frame(GetServerInfoRequest.encode({}).finish());
    const body = bytes.subarray(0, 2).toString("base64") + bytes.subarray(2).toString("base64");
    const reply = await rawPost(`${base}/${SYSTEM}/GetServerInfo`, body, grpcWeb({ "content-type": "application/grpc-web-text", accept: "application/grpc-web-text" }));
    expect(reply.status).toBe(200);
    expect(reply.headers["content-type"]).toBe("application/grpc-web-text+proto");
    const { messages, trailers } = parseFrames(Buffer.from(reply.body.toString("latin1"), "base64"));
    expect(trailers["grpc-status"]).toBe("0");
    expect(GetServerInfoResponse.decode(messages[0] as Buffer).version).toBe((await grpc.system.getServerInfo({})).version);
  });

  it("answers CORS preflights for the configured origin only, and exposes the status headers to it", async () => {
    const ask = (origin: string) =>
      rawPost(`${base}/${SYSTEM}/GetServerInfo`, "", { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type,x-grpc-web" }, "OPTIONS");
    const ok = await ask(ORIGIN);
    expect(ok.status).toBe(204);
    expect(ok.headers["access-control-allow-origin"]).toBe(ORIGIN);
    expect(ok.headers["access-control-allow-methods"]).toContain("POST");
    expect(ok.headers["access-control-allow-headers"]).toContain("authorization");
    const other = await ask("https://evil.example.test");
    expect(other.status).toBe(403);
    expect(other.headers["access-control-allow-origin"]).toBeUndefined();
    const call = await rawPost(`${base}/${SYSTEM}/GetServerInfo`, frame(new Uint8Array()), grpcWeb({ origin: ORIGIN }));
    expect(call.headers["access-control-allow-origin"]).toBe(ORIGIN);
    expect(call.headers["access-control-expose-headers"]).toContain("grpc-status-details-bin");
  });

  it("refuses oversized requests with RESOURCE_EXHAUSTED and malformed ones with INVALID_ARGUMENT, and keeps serving", async () => {
    const big = await connectError(webClient(base, JOBS, token).getJob!({ id: "x".repeat(LIMIT + 10) }));
    expect(big.code).toBe(Code.ResourceExhausted);
    const url = `${base}/${JOBS}/GetJob`;
    const truncated = await rawPost(url, frame(GetJobRequest.encode({ id: MISSING_JOB }).finish()).subarray(0, 10), grpcWeb());
    expect(truncated.status).toBe(200);
    expect(truncated.headers["grpc-status"]).toBe(String(Code.InvalidArgument));
    const two = Buffer.concat([frame(new Uint8Array()), frame(new Uint8Array())]);
    expect((await rawPost(url, two, grpcWeb())).headers["grpc-status"]).toBe(String(Code.InvalidArgument));
    expect((await rawPost(url, "%%%not base64", grpcWeb({ "content-type": "application/grpc-web-text" }))).headers["grpc-status"]).toBe(String(Code.InvalidArgument));
    expect((await rawPost(url, frame(new Uint8Array()), grpcWeb({ "grpc-timeout": "soon" }))).headers["grpc-status"]).toBe(String(Code.InvalidArgument));
    expect((await rawPost(`${base}/${JOBS}/NoSuchMethod`, frame(new Uint8Array()), grpcWeb())).headers["grpc-status"]).toBe(String(Code.Unimplemented));
    expect((await rawPost(url, "{}", { "content-type": "application/json" })).status).toBe(415);
    expect((await webClient(base, SYSTEM, token).getServerInfo!({})).version).toBeTruthy();
  });

  it("honours grpc-timeout and cancels the forwarded call when the client goes away", async () => {
    const jobs = webClient(base, JOBS, token);
    const run = await jobs.runDiagnosticJob!({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED, sleep: { seconds: 30n, nanos: 0 } });
    // The deadline as the bridge receives it (no client-side timer racing it): the gRPC server ends the call.
    const started = Date.now();
    const late = await rawPost(`${base}/${JOBS}/WatchJob`, frame(WatchJobRequest.encode({ id: run.job.id }).finish()), grpcWeb({ "grpc-timeout": "400m" }));
    expect(parseFrames(late.body).trailers["grpc-status"]).toBe(String(Code.DeadlineExceeded));
    expect(Date.now() - started).toBeLessThan(5_000);
    const gone = new AbortController();
    const watching = (async () => {
      for await (const _ of jobs.watchJob!({ id: run.job.id }, { signal: gone.signal }) as AsyncIterable<unknown>) gone.abort();
    })().catch(() => undefined);
    await watching;
    // The gRPC server saw the forwarded WatchJob cancelled (its request-log line), the bridge its own line.
    const watchLines = () => readRequestLog(t.logDir).filter((l) => l.method === `/${JOBS}/WatchJob`);
    await until(() => watchLines().some((l) => l.code === "CANCELLED" && !l.peer.startsWith("grpc-web:")), 5_000, "the server's CANCELLED WatchJob line").catch(() => undefined);
    const lines = watchLines();
    expect(lines.filter((l) => !l.peer.startsWith("grpc-web:")).map((l) => l.code)).toContain("CANCELLED");
    expect(lines.filter((l) => l.peer.startsWith("grpc-web:")).map((l) => l.code)).toEqual(expect.arrayContaining(["DEADLINE_EXCEEDED", "CANCELLED"]));
    await grpc.jobs.cancelJob({ id: run.job.id as string });
  });

  it("stops with the role: an open WatchJob ends UNAVAILABLE and the process exits 0", async () => {
    const jobs = webClient(base, JOBS, token);
    const run = await jobs.runDiagnosticJob!({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED, sleep: { seconds: 30n, nanos: 0 } });
    let first: () => void = () => undefined;
    const opened = new Promise<void>((r) => (first = r));
    const watch = connectError((async () => {
      for await (const _ of jobs.watchJob!({ id: run.job.id }) as AsyncIterable<unknown>) first();
    })());
    await opened;
    const exit = await p.stop("SIGTERM");
    expect((await watch).code).toBe(Code.Unavailable);
    expect(exit.code, p.output()).toBe(0);
    expect(p.stdout).toContain("gRPC-Web bridge stopped");
  });
});
