// Mutual TLS on the agent channel, with a TCP proxy recording the dispatcher↔agent traffic: no script, output or
// credential crosses in clear; the recorded bytes replayed run nothing; another agent's certificate is refused both
// ways; certificates renew (a new key each time) with no command failing, also after one expired; a restarted agent on
// a new port tells the dispatcher at once; a terminated server's agent is revoked.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, Metadata, status as Code, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAgentClient } from "../../src/agent/agent-client.js";
import { createAgentChannels, type AgentChannels } from "../../src/agent/agent-channels.js";
import { buildCatalog } from "../../src/app/catalog.js";
import { agentConnector } from "../../src/agent/connect.js";
import { agentEndpointRules } from "../../src/agent/endpoints.js";
import { startAgentPinger } from "../../src/agent/pinger.js";
import type { Loop } from "../../src/monitor/loop.js";
import { GrpcWebError, grpcWebUnary } from "../../src/guest/grpc-web.js";
import { RENEW_PATH } from "../../src/guest/register.js";
import { newKeyAndRequest } from "../../src/pki/csr.js";
import { RENEWAL_TOKEN_MARKER, signRenewal } from "../../src/pki/renewal.js";
import { createPrivateKey } from "node:crypto";
import { issueJoinToken } from "../../src/agent/join-tokens.js";
import { findAgentByServer } from "../../src/agent/repository.js";
import { loadConfig } from "../../src/config.js";
import { AgentServiceClient } from "../../src/gen/proto/agent/v1/agent.js";
import { RenewAgentRequest, RenewAgentResponse, ServerAgentServiceClient, type RunServerScriptRequest } from "../../src/gen/proto/dispatcher/v1/agents.js";
import { startAgent, type RunningAgent } from "../../src/guest/program.js";
import { startWorker, type RunningWorker } from "../../src/jobs/worker.js";
import { until } from "../support/poll.js";
import { openAgentHarness, quiet, type AgentHarness } from "./support.js";

interface Recorder {
  port: number;
  toAgent: Buffer[];
  toDispatcher: Buffer[];
  server: Server;
}

/** A TCP proxy to 127.0.0.1:target that keeps every byte in each direction. */
async function recordingProxy(target: number): Promise<Recorder> {
  const r: Recorder = { port: 0, toAgent: [], toDispatcher: [], server: createServer() };
  r.server.on("connection", (client: Socket) => {
    const upstream = connect(target, "127.0.0.1");
    client.on("data", (d: Buffer) => (r.toAgent.push(d), upstream.write(d)));
    upstream.on("data", (d: Buffer) => (r.toDispatcher.push(d), client.write(d)));
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => r.server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  r.port = (r.server.address() as { port: number }).port;
  return r;
}

let a: AgentHarness;
let worker: RunningWorker;
/** The worker keeps its channels to agents, as the worker role does: renewals and new ports must not reuse a stale one. */
let agentChannels: AgentChannels;
let pinger: Loop | undefined;
let dir: string;
const agents: RunningAgent[] = [];
const servers: Server[] = [];

beforeAll(async () => {
  a = await openAgentHarness("agent_tls", { plaintext: false, certificateTtlMs: 3_600_000, pingIntervalMs: 200, maxMissedPings: 2 });
  agentChannels = createAgentChannels({ idleMs: 60_000, maxChannels: 100 });
  worker = await startWorker({ resources: a.h.resources("w1"), catalog: buildCatalog({ agentChannels }) });
  dir = mkdtempSync(join(tmpdir(), "agent-tls-"));
  pinger = startAgentPinger({ sql: a.h.sql, log: quiet(), connect: agentConnector(a.h.config), endpoints: agentEndpointRules(a.h.config), pingIntervalMs: 1_000, maxMissedPings: 2 });
}, 60_000);

afterAll(async () => {
  await pinger?.stop(500);
  for (const s of agents) await s.stop(200).catch(() => undefined);
  for (const s of servers) s.close();
  await worker?.stop(2_000);
  agentChannels?.close();
  await a?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function launchAgent(serverId: string, opts: { stateDir?: string; port?: number; joinToken?: string } = {}): Promise<RunningAgent> {
  const base = loadConfig({}, "");
  const joinToken = opts.joinToken ?? (await issueJoinToken(a.h.sql, serverId, 60_000));
  const agent = await startAgent({
    config: { mode: "development", server: base.server, agent: { ...base.agent, bridgeUrl: a.bridgeUrl, joinToken, bind: "127.0.0.1", port: opts.port ?? 0, address: "127.0.0.1", stateDir: opts.stateDir ?? "", plaintext: false } },
    log: quiet(),
    version: "1.0.0",
    backoff: { initialMs: 100, maxMs: 500 },
  });
  agents.push(agent);
  return agent;
}

function runScript(serverId: string, req: Partial<RunServerScriptRequest>): Promise<string> {
  const client = new ServerAgentServiceClient(a.server.address, credentials.createInsecure());
  const md = new Metadata();
  md.set("authorization", `Bearer ${a.tokens.operator}`);
  const full: RunServerScriptRequest = { serverId, command: "", args: [], env: {}, idempotencyKey: "", ...req };
  return new Promise((resolve, reject) =>
    client.runServerScript(full, md, { deadline: Date.now() + 5_000 }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res.job?.id ?? "");
    }),
  );
}

async function runToEnd(serverId: string, req: Partial<RunServerScriptRequest>): Promise<{ state: string; attempt: number; result: Record<string, unknown> }> {
  const row = await a.h.waitForState(await runScript(serverId, req), ["SUCCEEDED", "FAILED"], 30_000);
  return { state: row.state, attempt: row.attempt, result: (typeof row.result === "string" ? JSON.parse(row.result) : row.result) as Record<string, unknown> };
}

const agentRow = async (serverId: string) => {
  const row = await findAgentByServer(a.h.sql, serverId);
  if (!row) throw new Error(`no agent for ${serverId}`);
  return row;
};

/** A call to an agent's port presenting `identity` (key and certificate PEM) as client certificate, or none. */
function callWith(port: number, caPem: string, identity: { keyPem: string; certPem: string } | null): Promise<ServiceError | null> {
  const creds = identity ? credentials.createSsl(Buffer.from(caPem), Buffer.from(identity.keyPem), Buffer.from(identity.certPem), { checkServerIdentity: () => undefined }) : credentials.createSsl(Buffer.from(caPem), null, null, { checkServerIdentity: () => undefined });
  const client = new AgentServiceClient(`127.0.0.1:${port}`, creds, { "grpc.ssl_target_name_override": "agent" });
  return new Promise((resolve) =>
    client.getStatus({}, new Metadata(), { deadline: Date.now() + 5_000 }, (err) => {
      client.close();
      resolve(err);
    }),
  );
}

const stateOf = (stateDir: string) => JSON.parse(readFileSync(join(stateDir, "agent.json"), "utf8")) as { agentId: string; identity: { keyPem: string; certPem: string; caPem: string } };

describe("the agent channel over mutual TLS", () => {
  it("carries no script, output or credential in clear, and a replay of the recording runs nothing", async () => {
    const serverId = await a.newServer();
    const stateDir = join(dir, "recorded");
    const agent = await launchAgent(serverId, { stateDir });
    const proxy = await recordingProxy(agent.port);
    servers.push(proxy.server);
    // The dispatcher reaches the agent through the proxy (the network path an attacker could record).
    await a.h.sql.execute`UPDATE agents SET port = ${proxy.port} WHERE server_id = ${serverId}`;
    const marks = join(dir, "runs.txt");
    const r = await runToEnd(serverId, { command: "sh", args: ["-c", 'echo "$CANARY-output" && echo run >> "$MARKS"'], env: { CANARY: "canary7f3a", MARKS: marks } });
    expect(r.state).toBe("SUCCEEDED");
    expect(r.result).toMatchObject({ exitCode: 0, stdout: "canary7f3a-output\n" });
    const sent = Buffer.concat(proxy.toAgent);
    const received = Buffer.concat(proxy.toDispatcher);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent[0]).toBe(0x16); // a TLS handshake record, not HTTP/2's preface
    for (const clear of ["canary7f3a", "echo run", "MARKS", "authorization", "Bearer", "RunScript", "agent.v1"]) expect(sent.includes(clear), clear).toBe(false);
    for (const clear of ["canary7f3a-output", "exit"]) expect(received.includes(clear), clear).toBe(false);
    expect(readFileSync(marks, "utf8")).toBe("run\n");

    // The recorded bytes, replayed to the agent, run nothing: the handshake cannot be completed from a recording.
    await new Promise<void>((resolve) => {
      const s = connect(agent.port, "127.0.0.1", () => s.write(sent));
      s.on("data", () => undefined);
      s.on("error", () => resolve());
      s.on("close", () => resolve());
      setTimeout(() => (s.destroy(), resolve()), 3_000);
    });
    expect(readFileSync(marks, "utf8")).toBe("run\n");
    expect(stateOf(stateDir).agentId).toBe(agent.agentId);
  });

  it("refuses another agent's certificate, and the dispatcher refuses an agent it does not mean", async () => {
    const [s1, s2] = [await a.newServer(), await a.newServer()];
    const [d1, d2] = [join(dir, "one"), join(dir, "two")];
    const one = await launchAgent(s1, { stateDir: d1 });
    const two = await launchAgent(s2, { stateDir: d2 });
    const caPem = stateOf(d1).identity.caPem;
    // Agent two's certificate (same CA, server purpose) presented as a client certificate to agent one: refused.
    const asTwo = await callWith(one.port, caPem, stateOf(d2).identity);
    expect(asTwo?.code).toBe(Code.UNAVAILABLE);
    // No client certificate: refused.
    expect((await callWith(one.port, caPem, null))?.code).toBe(Code.UNAVAILABLE);
    // The dispatcher's own client certificate works (the control).
    const good = openAgentClient(agentConnector(a.h.config)(await agentRow(s1)));
    expect((await good.getStatus({ deadline: new Date(Date.now() + 5_000) })).agentId).toBe(one.agentId);
    good.close();
    // Meaning agent one but reaching agent two's port: the dispatcher refuses the certificate it finds there.
    const wrong = openAgentClient(agentConnector(a.h.config)({ ...(await agentRow(s1)), port: two.port }));
    await expect(wrong.getStatus({ deadline: new Date(Date.now() + 5_000) })).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    wrong.close();
  });

  it("renews certificates with a new key before they expire, and no command fails meanwhile", async () => {
    a.h.config.agent.certificateTtlMs = 3_000;
    const serverId = await a.newServer();
    const agent = await launchAgent(serverId);
    const first = (await agentRow(serverId)).certSha256;
    const seen = new Set([first]);
    const end = Date.now() + 8_000;
    let runs = 0;
    while (Date.now() < end) {
      const r = await runToEnd(serverId, { command: "echo", args: [String(runs)] });
      expect([r.state, r.attempt, r.result.stdout]).toEqual(["SUCCEEDED", 1, `${runs}\n`]);
      seen.add((await agentRow(serverId)).certSha256);
      runs++;
    }
    // Two renewals at least in 8 s of 3-s certificates, each a new key (the certified key changed too).
    expect(seen.size).toBeGreaterThanOrEqual(3);
    expect(agent.agentId).toBe((await agentRow(serverId)).id);
    a.h.config.agent.certificateTtlMs = 3_600_000;
  }, 60_000);

  it("renews an expired certificate when the agent comes back, on its new port, without a failed command", async () => {
    a.h.config.agent.certificateTtlMs = 1_500;
    const serverId = await a.newServer();
    const stateDir = join(dir, "restart");
    const before = await launchAgent(serverId, { stateDir });
    await before.stop(200);
    a.h.config.agent.certificateTtlMs = 3_600_000;
    // Down longer than its certificate lives; the dispatcher cannot reach it.
    await until(async () => (await agentRow(serverId)).state === "UNREACHABLE", 15_000, "the stopped agent UNREACHABLE");
    const expiry = (await agentRow(serverId)).certNotAfter?.getTime() ?? 0;
    await until(() => Date.now() > expiry + 200, 5_000, "its certificate expired");
    const after = await launchAgent(serverId, { stateDir, joinToken: "" });
    expect(after.port).not.toBe(before.port);
    // Re-registered at once: the new port, a fresh certificate, CONNECTED again without a relaunch.
    await until(async () => (await agentRow(serverId)).port === after.port, 10_000, "the new port recorded");
    const r = await runToEnd(serverId, { command: "echo", args: ["back"] });
    expect([r.state, r.result.stdout]).toEqual(["SUCCEEDED", "back\n"]);
    await until(async () => (await agentRow(serverId)).state === "CONNECTED", 15_000, "the agent CONNECTED again");
    expect((await agentRow(serverId)).certNotAfter?.getTime()).toBeGreaterThan(Date.now() + 3_000_000);
  }, 60_000);

  it("refuses a replayed, forged or foreign renewal, and revokes the agent of a terminated server", async () => {
    const serverId = await a.newServer();
    const stateDir = join(dir, "revoke");
    const agent = await launchAgent(serverId, { stateDir });
    // The key the dispatcher has certified last, as the agent would hold it.
    let current = createPrivateKey(stateOf(stateDir).identity.keyPem);
    const renewal = (fields: { agentId: string; signedTimeMs: number }, key = current) => {
      const next = newKeyAndRequest("h");
      const f = { ...fields, address: "127.0.0.1", port: agent.port, certificateRequest: next.requestPem };
      return { req: { ...f, signedTimeMs: String(f.signedTimeMs), signature: signRenewal(f, key) }, next: next.privateKey };
    };
    const send = (req: RenewAgentRequest, token = `${RENEWAL_TOKEN_MARKER}${agent.agentId}`) =>
      grpcWebUnary(a.bridgeUrl, RENEW_PATH, RenewAgentRequest, RenewAgentResponse, req, { token, timeoutMs: 5_000 }).then(
        () => "OK",
        (err: unknown) => (err instanceof GrpcWebError ? Code[err.code] : String(err)),
      );
    const recorded = renewal({ agentId: agent.agentId, signedTimeMs: Date.now() });
    expect(await send(recorded.req)).toBe("OK");
    current = recorded.next;
    // The same request again (a recording): refused.
    expect(await send(recorded.req)).toBe("UNAUTHENTICATED");
    // Signed by a key that is not the agent's; claimed by another agent; stale: refused.
    expect(await send(renewal({ agentId: agent.agentId, signedTimeMs: Date.now() }, newKeyAndRequest("x").privateKey).req)).toBe("UNAUTHENTICATED");
    expect(await send(renewal({ agentId: agent.agentId, signedTimeMs: Date.now() }).req, `${RENEWAL_TOKEN_MARKER}01JDQ3Z5K8W8G4QF2Q6N2D7M9T`)).toBe("UNAUTHENTICATED");
    expect(await send(renewal({ agentId: agent.agentId, signedTimeMs: Date.now() - 3_600_000 }).req)).toBe("UNAUTHENTICATED");
    // The control: a fresh request signed by the current key is accepted.
    const fresh = renewal({ agentId: agent.agentId, signedTimeMs: Date.now() });
    expect(await send(fresh.req)).toBe("OK");
    current = fresh.next;
    // Terminated: no certificate of the agent is accepted any more, and it cannot renew.
    await a.h.sql.execute`UPDATE servers SET state = 'TERMINATED' WHERE id = ${serverId}`;
    await until(async () => (await agentRow(serverId)).state === "GONE", 10_000, "the agent GONE");
    expect((await agentRow(serverId)).certSha256).toBeNull();
    expect(await send(renewal({ agentId: agent.agentId, signedTimeMs: Date.now() + 1 }).req)).toBe("UNAUTHENTICATED");
  });
});
