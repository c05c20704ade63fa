// Simulated agents for fleet commands: one gRPC server on a loopback port answering agent.v1 for many servers' agents
// at once (the dispatcher calls each with its own derived credential, on the plaintext channel — at one address, or
// each at its own loopback address so that every agent has a connection of its own, as in a real fleet), and
// the rows that make those servers and agents real to the dispatcher. A command `work <ms>` sleeps that long and
// exits 0, or 1 on the servers told to fail; the farm counts calls and the most it ever ran at once.
import { createHash } from "node:crypto";
import { AGENT_CONTROLLER_ROLE } from "../../src/guest/program.js";
import { deriveAgentCredential } from "../../src/agent/secrets.js";
import { newId } from "../../src/db/ids.js";
import type { Sql } from "../../src/db/sql.js";
import { AgentServiceService as A } from "../../src/gen/proto/agent/v1/agent.js";
import { createAgentServer, type AgentServer } from "../../src/guest/server.js";
import type { Principal } from "../../src/iam/principal.js";
import { createLogger } from "../../src/log.js";
import { defineService, unary } from "../../src/rpc/adapter.js";
import { sqlFragment, sqlJoin } from "../../src/db/sql.js";

export interface AgentFarm {
  port: number;
  /** RunScript calls answered, per server. */
  calls: Map<string, number>;
  /** When the last RunScript call of each server arrived and was answered (epoch ms). */
  timings: Map<string, { arrived: number; answered: number }>;
  /** GetStatus calls answered (the monitor's pings). */
  readonly statusCalls: number;
  /** RunScript calls running now, and the most ever at once. */
  readonly inFlight: number;
  readonly maxInFlight: number;
  /** Servers whose commands exit 1. */
  failing: Set<string>;
  /** Answers for these agents (agent id → server id) from now on. */
  add(agents: Map<string, string>): void;
  resetMax(): void;
  stop(): Promise<void>;
}

/**
 * Starts the farm for agents whose credentials derive from `credentialKey` (add them with add()). `bind` "0.0.0.0"
 * answers on every loopback address (Linux routes all of 127.0.0.0/8 to lo), for fleets inserted with spreadAddresses.
 */
export async function startAgentFarm(credentialKey: Buffer, options: { bind?: string } = {}): Promise<AgentFarm> {
  const byCredential = new Map<string, string>();
  const calls = new Map<string, number>();
  const failing = new Set<string>();
  const timings = new Map<string, { arrived: number; answered: number }>();
  let inFlight = 0;
  let maxInFlight = 0;
  let statusCalls = 0;
  // The principal carries the server whose agent was called: its id is the server id.
  const authenticate = async (token: string): Promise<Principal | null> => {
    const serverId = byCredential.get(token);
    return serverId ? { id: serverId, kind: "service", roles: [AGENT_CONTROLLER_ROLE], displayName: "dispatcher" } : null;
  };
  const service = defineService(A, {
    getStatus: unary(A.getStatus, async (_req, ctx) => {
      statusCalls++;
      return { agentId: ctx.principal.id, version: "farm", hostname: "farm", startTime: new Date() };
    }),
    runScript: unary(A.runScript, async (req, ctx) => {
      const serverId = ctx.principal.id;
      calls.set(serverId, (calls.get(serverId) ?? 0) + 1);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const started = Date.now();
      try {
        const ms = req.command === "work" ? Number(req.args[0] ?? 0) : 0;
        await new Promise((resolve) => setTimeout(resolve, ms));
        const exitCode = failing.has(serverId) ? 1 : 0;
        const elapsed = Date.now() - started;
        return {
          exitCode,
          stdout: Buffer.from(exitCode === 0 ? `ok ${serverId}\n` : ""),
          stderr: Buffer.from(exitCode === 0 ? "" : `failed on ${serverId}\n`),
          stdoutTruncated: false,
          stderrTruncated: false,
          timedOut: false,
          duration: { seconds: String(Math.floor(elapsed / 1000)), nanos: (elapsed % 1000) * 1e6 },
        };
      } finally {
        inFlight--;
        timings.set(serverId, { arrived: started, answered: Date.now() });
      }
    }),
    collectMetrics: unary(A.collectMetrics, async () => ({ cpuPercent: 0, memoryUsedBytes: "0", memoryTotalBytes: "0", diskUsedBytes: "0", diskTotalBytes: "0", time: new Date() })),
    shutdown: unary(A.shutdown, async () => ({})),
  });
  const server: AgentServer = createAgentServer({
    bind: options.bind ?? "127.0.0.1",
    port: 0,
    log: createLogger({ level: "silent" }),
    authenticate,
    service,
    defaultDeadlineMs: 30_000,
    maxMessageBytes: 4 * 1024 * 1024,
  });
  const port = await server.start();
  return {
    port,
    calls,
    timings,
    failing,
    add(agents) {
      for (const [agentId, serverId] of agents) byCredential.set(deriveAgentCredential(credentialKey, agentId), serverId);
    },
    get inFlight() {
      return inFlight;
    },
    get statusCalls() {
      return statusCalls;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    resetMax: () => void (maxInFlight = inFlight),
    stop: () => server.stop(500),
  };
}

/**
 * Inserts `count` RUNNING servers of `accountId` at 127.0.0.1 (with `spreadAddresses`, each at its own loopback
 * address: start the farm bound to 0.0.0.0), each with a CONNECTED agent listening on the farm's port, in multi-row
 * statements. Returns agent id → server id, in the servers' order.
 */
export async function insertFleet(
  sql: Sql,
  options: { accountId: string; count: number; port: number; credentialKey: Buffer; namePrefix?: string; spreadAddresses?: boolean },
): Promise<Map<string, string>> {
  const fleet = new Map<string, string>();
  for (let i = 0; i < options.count; i++) fleet.set(newId(), newId());
  const entries = [...fleet];
  const addressOf = (i: number): string => (options.spreadAddresses ? loopbackAddress(i) : "127.0.0.1");
  for (let i = 0; i < entries.length; i += 500) {
    const chunk = entries.slice(i, i + 500);
    const servers = chunk.map(
      ([, serverId], j) => sqlFragment`(${serverId}, ${options.accountId}, 'r1', 'dc1', ${`p-${serverId}`}, ${`${options.namePrefix ?? "fleet-"}${i + j}`}, 'small', 'agent',
        'b', 'RUNNING', 'LAUNCHED', ${JSON.stringify({ private: [addressOf(i + j)], public: [] })}, '{}', 0, 0, 'CONNECTED', NOW(3), 'u-test', 1, NOW(3), NOW(3))`,
    );
    await sql.execute`
      INSERT INTO servers (id, account_id, region_id, data_center, provider_id, name, product_id, image_id, budget_code, state, origin,
                           addresses, details, hourly_price_micros, accrues_when_stopped, agent_state, state_changed_at, created_by,
                           version, created_at, updated_at)
      VALUES ${sqlJoin(servers, ", ")}`;
    const agents = chunk.map(([agentId, serverId], j) => {
      const hash = createHash("sha256").update(deriveAgentCredential(options.credentialKey, agentId)).digest("hex");
      return sqlFragment`(${agentId}, ${serverId}, ${hash}, 'farm', 'farm', ${addressOf(i + j)}, ${options.port}, 'CONNECTED', NOW(3) + INTERVAL 1 DAY)`;
    });
    await sql.execute`
      INSERT INTO agents (id, server_id, credential_hash, version, hostname, address, port, state, next_ping_at) VALUES ${sqlJoin(agents, ", ")}`;
  }
  return fleet;
}

/** The i-th of distinct loopback addresses 127.0.0.2, 127.0.0.3, … (never .0 or .255 in the last place). */
export function loopbackAddress(i: number): string {
  const n = Math.floor(i / 254) * 256 + (i % 254) + 2;
  return `127.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}
