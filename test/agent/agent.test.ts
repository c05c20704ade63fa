// The agent program in-process: it registers through the bridge, answers the dispatcher's credential alone, and runs
// commands that a dispatcher caller starts as agent.run_script jobs (executed by a real worker).
import { credentials, Metadata, status as Code, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAgent, type RunningAgent } from "../../src/guest/program.js";
import { issueJoinToken } from "../../src/agent/join-tokens.js";
import { deriveAgentCredential } from "../../src/agent/secrets.js";
import { loadConfig } from "../../src/config.js";
import { AgentServiceClient, type CollectMetricsResponse } from "../../src/gen/proto/agent/v1/agent.js";
import { ServerAgentServiceClient, type RunServerScriptRequest } from "../../src/gen/proto/dispatcher/v1/agents.js";
import { startWorker, type RunningWorker } from "../../src/jobs/worker.js";
import { openAgentHarness, quiet, type AgentHarness } from "./support.js";

let a: AgentHarness;
let worker: RunningWorker;
let agent: RunningAgent;
let serverId: string;
let key: Buffer;

beforeAll(async () => {
  a = await openAgentHarness("agent_run");
  key = Buffer.from(a.h.config.agent.credentialKey, "base64");
  worker = await startWorker({ resources: a.h.resources("w1"), catalog: a.h.catalog });
  serverId = await a.newServer();
  const base = loadConfig({}, "");
  const joinToken = await issueJoinToken(a.h.sql, serverId, 60_000);
  agent = await startAgent({
    config: { mode: "development", server: base.server, agent: { ...base.agent, bridgeUrl: a.bridgeUrl, joinToken, bind: "127.0.0.1", port: 0, address: "127.0.0.1", plaintext: true } },
    log: quiet(),
    version: "9.9.9",
  });
}, 60_000);

afterAll(async () => {
  await agent?.stop(500);
  await worker?.stop(2_000);
  await a?.close();
});

function agentCall(token: string | null): Promise<ServiceError | null> {
  const client = new AgentServiceClient(`127.0.0.1:${agent.port}`, credentials.createInsecure());
  const md = new Metadata();
  if (token !== null) md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) => {
    client.getStatus({}, md, { deadline: Date.now() + 5_000 }, (err) => {
      client.close();
      resolve(err);
    });
  });
}

function runServerScript(token: string, req: Partial<RunServerScriptRequest>) {
  const client = new ServerAgentServiceClient(a.server.address, credentials.createInsecure());
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  const full: RunServerScriptRequest = { serverId, command: "", args: [], env: {}, idempotencyKey: "", ...req };
  return new Promise<string>((resolve, reject) => {
    client.runServerScript(full, md, { deadline: Date.now() + 5_000 }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res.job?.id ?? "");
    });
  });
}

async function runToEnd(req: Partial<RunServerScriptRequest>): Promise<Record<string, unknown>> {
  const jobId = await runServerScript(a.tokens.operator, req);
  const row = await a.h.waitForState(jobId, ["SUCCEEDED", "FAILED"], 20_000);
  expect(row.state, JSON.stringify(row.errorMessage)).toBe("SUCCEEDED");
  return (typeof row.result === "string" ? JSON.parse(row.result) : row.result) as Record<string, unknown>;
}

describe("the agent", () => {
  it("registered through the bridge as the agent of its server", async () => {
    expect(agent.serverId).toBe(serverId);
    const rows = await a.h.sql.query<{ id: string; port: number }>`SELECT id, port FROM agents WHERE server_id = ${serverId}`;
    expect(rows).toEqual([{ id: agent.agentId, port: agent.port }]);
  });

  it("answers the dispatcher's credential and refuses everyone else", async () => {
    expect(await agentCall(deriveAgentCredential(key, agent.agentId))).toBeNull();
    expect((await agentCall(null))?.code).toBe(Code.UNAUTHENTICATED);
    expect((await agentCall("not-the-credential"))?.code).toBe(Code.UNAUTHENTICATED);
    expect((await agentCall(a.tokens.operator))?.code).toBe(Code.UNAUTHENTICATED);
    // Another agent's credential (same key, another agent id) does not act for this one.
    expect((await agentCall(deriveAgentCredential(key, "01JDQ3Z5K8W8G4QF2Q6N2D7M9T")))?.code).toBe(Code.UNAUTHENTICATED);
    // The right agent id under another key is not the dispatcher either.
    expect((await agentCall(deriveAgentCredential(Buffer.alloc(32, 7), agent.agentId)))?.code).toBe(Code.UNAUTHENTICATED);
  });
});

describe("RunServerScript → agent.run_script job", () => {
  it("runs echo hi: exit 0 and hi in the job's result", async () => {
    const r = await runToEnd({ command: "echo", args: ["hi"] });
    expect(r).toMatchObject({ agentId: agent.agentId, exitCode: 0, stdout: "hi\n", stderr: "", timedOut: false, stdoutTruncated: false });
  });

  it("reports a failing command's exit code and stderr", async () => {
    const r = await runToEnd({ command: "sh", args: ["-c", "echo oops >&2; exit 3"] });
    expect(r).toMatchObject({ exitCode: 3, stdout: "", stderr: "oops\n" });
  });

  it("gives scripts the request's environment and none of the agent's", async () => {
    const r = await runToEnd({ command: "env", env: { GREETING: "hello" } });
    expect(r.stdout).toContain("GREETING=hello");
    expect(r.stdout).not.toContain("DISPATCHER_");
  });

  it("kills a script at its timeout", async () => {
    const r = await runToEnd({ command: "sleep", args: ["20"], timeout: { seconds: "0", nanos: 300_000_000 } });
    expect(r).toMatchObject({ timedOut: true, exitCode: 137 });
    expect(r.durationMs as number).toBeLessThan(5_000);
  });

  it("caps the output kept in the result", async () => {
    const r = await runToEnd({ command: "head", args: ["-c", "200000", "/dev/zero"] });
    expect(r.stdoutTruncated).toBe(true);
    expect((r.stdout as string).length).toBe(64 * 1024);
  });

  it("returns the same job for the same idempotency key", async () => {
    const first = await runServerScript(a.tokens.operator, { command: "true", idempotencyKey: "k-1" });
    expect(await runServerScript(a.tokens.operator, { command: "true", idempotencyKey: "k-1" })).toBe(first);
  });

  it("hides servers outside the caller's accounts and refuses bad requests", async () => {
    await expect(runServerScript(a.tokens.stranger, { command: "echo" })).rejects.toMatchObject({ code: Code.NOT_FOUND });
    await expect(runServerScript(a.tokens.operator, { command: "" })).rejects.toMatchObject({ code: Code.INVALID_ARGUMENT });
    const noAgent = await a.newServer();
    await expect(runServerScript(a.tokens.operator, { serverId: noAgent, command: "echo" })).rejects.toMatchObject({ code: Code.FAILED_PRECONDITION });
  });
});

describe("the agent's own calls", () => {
  const client = () => new AgentServiceClient(`127.0.0.1:${agent.port}`, credentials.createInsecure());
  const auth = (): Metadata => {
    const md = new Metadata();
    md.set("authorization", `Bearer ${deriveAgentCredential(key, agent.agentId)}`);
    return md;
  };

  it("collects metrics of the guest", async () => {
    const c = client();
    const m = await new Promise<CollectMetricsResponse>((resolve, reject) => c.collectMetrics({}, auth(), { deadline: Date.now() + 5_000 }, (err, res) => (err ? reject(err) : resolve(res))));
    c.close();
    expect(Number(m.memoryTotalBytes)).toBeGreaterThan(0);
    expect(Number(m.memoryUsedBytes)).toBeGreaterThan(0);
    expect(Number(m.diskTotalBytes)).toBeGreaterThanOrEqual(Number(m.diskUsedBytes));
    expect(m.cpuPercent).toBeGreaterThanOrEqual(0);
    expect(m.cpuPercent).toBeLessThanOrEqual(100);
    expect(Number(m.uptime?.seconds)).toBeGreaterThan(0);
  });

  it("stops when the dispatcher asks it to shut down (last: the agent is gone afterwards)", async () => {
    const c = client();
    await new Promise<void>((resolve, reject) => c.shutdown({ reason: "test" }, auth(), { deadline: Date.now() + 5_000 }, (err) => (err ? reject(err) : resolve())));
    c.close();
    expect(await agent.shutdown).toBe("test");
    expect((await agentCall(deriveAgentCredential(key, agent.agentId)))?.code).toBe(Code.UNAVAILABLE);
  });
});
