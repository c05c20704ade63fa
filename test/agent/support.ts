// Test support for agents: the execution harness (database, stream, worker resources) plus the agent services on a
// real gRPC server behind the real gRPC-Web bridge, a seeded cloud/account/server, and agents started in-process or
// as real `dispatcher agent` processes.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { createGrpcWebBridge, type GrpcWebBridge } from "../../src/rpc/grpc-web/bridge.js";
import { withJoinTokens } from "../../src/agent/join-tokens.js";
import { agentRpcServices } from "../../src/agent/rpc-services.js";
import { newId } from "../../src/db/ids.js";
import { createOutboxRelay, type OutboxRelay } from "../../src/jobs/relay.js";
import { createJobService, type JobService } from "../../src/jobs/service.js";
import { createLogger } from "../../src/log.js";
import type { Authenticate, Principal } from "../../src/iam/principal.js";
import { openExecHarness, type ExecHarness } from "../jobs/exec-support.js";
import { startTestServer, type TestServer } from "../rpc/fixtures.js";
import { ROOT } from "../support/process.js";
import { until } from "../support/poll.js";
import { insertAccount, insertServer } from "../support/rows.js";

export const AGENT_BIN = join(ROOT, "bin", "dispatcher-agent.js");

export const quiet = () => createLogger({ level: "silent" });

export interface AgentHarness {
  h: ExecHarness;
  jobs: JobService;
  relay: OutboxRelay;
  server: TestServer;
  bridge: GrpcWebBridge;
  bridgeUrl: string;
  accountId: string;
  /** A principal scoped to the seeded account (operator) and one scoped elsewhere. */
  tokens: { operator: string; stranger: string };
  newServer(): Promise<string>;
  close(): Promise<void>;
}

export async function openAgentHarness(label: string, agent: { pingIntervalMs?: number; maxMissedPings?: number; plaintext?: boolean; certificateTtlMs?: number } = {}): Promise<AgentHarness> {
  const h = await openExecHarness(label);
  h.config.agent.credentialKey = randomBytes(32).toString("base64");
  // Mutual TLS with a development CA of this run (under the harness's own data directory), or the plaintext channel.
  h.config.agent.plaintext = agent.plaintext ?? true;
  h.config.agent.certificateTtlMs = agent.certificateTtlMs ?? h.config.agent.certificateTtlMs;
  h.config.agent.pingIntervalMs = agent.pingIntervalMs ?? 30_000;
  h.config.agent.maxMissedPings = agent.maxMissedPings ?? 3;
  const relay = createOutboxRelay({ sql: h.sql, js: h.js, log: quiet(), pollIntervalMs: 200 });
  relay.start();
  const jobs = createJobService({ sql: h.sql, catalog: h.catalog, subjectPrefix: h.config.mq.subjectPrefix, log: quiet(), relay, nats: h.nc });
  const cloudId = newId();
  const accountId = newId();
  await insertAccount(h.sql, { id: accountId, name: "a", cloud: { id: cloudId, endpoint: "local:" } });
  const principals: Record<string, Principal> = {
    "operator-token": { id: "u-oper", kind: "user", roles: ["operator"], displayName: "Otto", accountIds: [accountId] },
    "stranger-token": { id: "u-other", kind: "user", roles: ["operator"], displayName: "Stranger", accountIds: [newId()] },
  };
  const apiKeys: Authenticate = async (token) => principals[token] ?? null;
  const services = agentRpcServices({ config: h.config, sql: h.sql, jobs, log: quiet() });
  const server = await startTestServer({ services, authenticate: withJoinTokens(h.sql, apiKeys) });
  const bridge = createGrpcWebBridge({
    config: { bridge: { bind: "127.0.0.1", port: 0, corsOrigins: [], maxRequestBytes: 4 * 1024 * 1024 }, server: server.config.server },
    log: quiet(),
    services: services.map((s) => s.definition),
  });
  const bridgePort = await bridge.start(Number(server.address.split(":")[1]));
  return {
    h,
    jobs,
    relay,
    server,
    bridge,
    bridgeUrl: `http://127.0.0.1:${bridgePort}`,
    accountId,
    tokens: { operator: "operator-token", stranger: "stranger-token" },
    async newServer() {
      return insertServer(h.sql, { accountId, name: "s", imageId: "agent", privateAddresses: ["127.0.0.1"], agentState: "PENDING", createdBy: "u-oper" });
    },
    async close() {
      await bridge.stop(500);
      await server.stop(500);
      await relay.stop(1_000);
      await h.close();
    },
  };
}

export async function serverRow(h: ExecHarness, id: string): Promise<{ agentState: string }> {
  const rows = await h.sql.query<{ agentState: string }>`SELECT agent_state AS agentState FROM servers WHERE id = ${id}`;
  if (!rows[0]) throw new Error(`no server ${id}`);
  return rows[0];
}

export async function serverEvents(h: ExecHarness, id: string): Promise<string[]> {
  const rows = await h.sql.query<{ type: string }>`SELECT type FROM server_events WHERE server_id = ${id} ORDER BY id`;
  return rows.map((r) => r.type);
}

/** A real agent process (bin/dispatcher-agent.js, the lean entry guests run) with its output captured. */
export class AgentProcess {
  readonly child: ChildProcess;
  output = "";
  readonly exited: Promise<number | null>;
  running = true;

  constructor(env: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, [AGENT_BIN], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout?.on("data", (d: Buffer) => (this.output += d.toString()));
    this.child.stderr?.on("data", (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) =>
      this.child.once("close", (code) => {
        this.running = false;
        resolve(code);
      }),
    );
  }

  async waitForOutput(pattern: RegExp, timeoutMs: number): Promise<void> {
    const printed = () => {
      if (pattern.test(this.output)) return true;
      if (!this.running) throw new Error(`agent exited before printing ${pattern}:\n${this.output}`);
      return false;
    };
    await until(printed, timeoutMs, `the agent to print ${pattern}`, () => `:\n${this.output}`);
  }

  kill9(): Promise<number | null> {
    if (this.running) this.child.kill("SIGKILL");
    return this.exited;
  }
}
