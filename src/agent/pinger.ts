// The monitor's agent pinger: every agent is pinged (GetStatus, over mutual TLS or with its credential) each
// agent.pingIntervalMs; maxMissedPings misses in a row mark it UNREACHABLE, an answer marks it CONNECTED again. Each
// change also sets the server's agent_state and writes a server event. Replicas share the work: a round claims its
// agents in one transaction that skips rows another replica is claiming. A round's servers are read in one query and
// its steady answers (a CONNECTED agent answering again) recorded in one statement; calls go over kept channels.
import type { SqlPool } from "../db/sql.js";
import type { Logger } from "../log.js";
import { startLoop, type Loop } from "../monitor/loop.js";
import { setMaxListeners } from "node:events";
import { openAgentClient, type AgentCallError, type AgentClient, type AgentEndpoint } from "./agent-client.js";
import type { AgentChannels } from "./agent-channels.js";
import type { AgentConnector } from "./connect.js";
import { checkAgentEndpoint, type AgentEndpointRules } from "./endpoints.js";
import * as repo from "./repository.js";

/** One CollectMetrics answer, for whoever records metrics (analytics). */
export interface AgentMetricsSample {
  serverId: string;
  agentId: string;
  time: Date;
  cpuPercent: number;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
  diskUsedBytes: number;
  diskTotalBytes: number;
  uptimeSeconds: number;
}

export interface PingerOptions {
  sql: SqlPool;
  log: Logger;
  /** How this process reaches an agent (src/agent/connect.ts). */
  connect: AgentConnector;
  /** Where agents may be called (src/agent/endpoints.ts). */
  endpoints: AgentEndpointRules;
  pingIntervalMs: number;
  maxMissedPings: number;
  /** When given, each answered ping also collects metrics, and a round's samples come here at once (errors are logged, never fatal). */
  onMetrics?: ((samples: AgentMetricsSample[]) => Promise<void>) | undefined;
  /** Kept channels to agents (the monitor's own); without them each ping opens and closes a channel. */
  channels?: AgentChannels | undefined;
  /** Agents pinged per iteration at most (default 64). */
  batch?: number;
  now?: () => Date;
}

const PING_TIMEOUT_MS = 5_000;
const METRICS_TIMEOUT_MS = 2_000;
/** Used and expired join tokens are kept this long (for the history of a launch), then deleted hourly. */
const JOIN_TOKEN_KEEP_MS = 7 * 86_400_000;
const PRUNE_EVERY_MS = 3_600_000;

export function startAgentPinger(options: PingerOptions): Loop {
  const { sql, log } = options;
  const now = options.now ?? (() => new Date());
  const batch = options.batch ?? 64;
  const timeoutMs = Math.min(PING_TIMEOUT_MS, options.pingIntervalMs);
  let prunedAt = 0;

  const open = (endpoint: AgentEndpoint): AgentClient => options.channels?.acquire(endpoint) ?? openAgentClient(endpoint);

  // The row's address is checked against what the cloud reports now: an address that changed, or a row older than
  // these rules, counts as a missed ping and is never dialled.
  const vouched = (agent: repo.AgentRow, server: repo.ServerForAgent | undefined): boolean => {
    const check = server ? checkAgentEndpoint(server, agent.address, agent.port, options.endpoints) : null;
    if (check?.ok) return true;
    log.warn({ agentId: agent.id, serverId: agent.serverId, violations: check?.violations }, "agent address not vouched for by the cloud: not called");
    return false;
  };

  /** Whether the agent answered, and its metrics when asked for and given. */
  const call = async (agent: repo.AgentRow, signal: AbortSignal, samples: AgentMetricsSample[]): Promise<boolean> => {
    const client = open(options.connect(agent));
    let answered = false;
    try {
      const deadline = new Date(Date.now() + timeoutMs);
      await client.getStatus({ deadline, signal });
      answered = true;
      // Metrics are not a liveness test: they get a deadline of their own, never shorter than METRICS_TIMEOUT_MS.
      if (options.onMetrics) {
        const sample = await collect(client, agent, new Date(Date.now() + Math.max(timeoutMs, METRICS_TIMEOUT_MS)), signal);
        if (sample) samples.push(sample);
      }
    } catch (err) {
      if (!answered) log.debug({ agentId: agent.id, serverId: agent.serverId, code: (err as AgentCallError).code }, "agent ping missed");
    } finally {
      client.close();
    }
    return answered;
  };

  const record = async (agent: repo.AgentRow, answered: boolean): Promise<void> => {
    const change = await sql.transaction(async (tx) => {
      const c = await repo.recordPing(tx, agent.id, answered ? { answered: true, at: now() } : { answered: false, maxMissed: options.maxMissedPings });
      if (!c || c.from === c.to) return c;
      await repo.setServerAgentState(tx, c.serverId, c.to === "CONNECTED" ? "CONNECTED" : "UNREACHABLE");
      await repo.insertServerEvent(tx, {
        serverId: c.serverId,
        type: c.to === "CONNECTED" ? "AGENT_CONNECTED" : "AGENT_UNREACHABLE",
        message: c.to === "CONNECTED" ? `agent ${agent.id} answers again` : `agent ${agent.id} missed ${c.missedPings} pings in a row`,
        details: { agentId: agent.id, missedPings: c.missedPings },
      });
      return c;
    });
    if (change && change.from !== change.to) log.info({ agentId: agent.id, serverId: agent.serverId, from: change.from, to: change.to }, "agent state changed");
  };

  const collect = async (client: AgentClient, agent: repo.AgentRow, deadline: Date, signal: AbortSignal): Promise<AgentMetricsSample | null> => {
    try {
      const m = await client.collectMetrics({ deadline, signal });
      return {
        serverId: agent.serverId,
        agentId: agent.id,
        time: m.time ?? now(),
        cpuPercent: m.cpuPercent,
        memoryUsedBytes: Number(m.memoryUsedBytes),
        memoryTotalBytes: Number(m.memoryTotalBytes),
        diskUsedBytes: Number(m.diskUsedBytes),
        diskTotalBytes: Number(m.diskTotalBytes),
        uptimeSeconds: Number(m.uptime?.seconds ?? 0),
      };
    } catch (err) {
      log.warn({ err, agentId: agent.id }, "agent metrics not collected");
      return null;
    }
  };

  return startLoop({
    name: "agent_pings",
    intervalMs: Math.min(1_000, options.pingIntervalMs),
    log,
    async run(span, signal) {
      await markGone(sql);
      if (Date.now() - prunedAt >= PRUNE_EVERY_MS) {
        prunedAt = Date.now();
        span.setAttribute("join_tokens.pruned", await repo.pruneJoinTokens(sql, new Date(now().getTime() - JOIN_TOKEN_KEEP_MS)));
      }
      const at = now();
      const claimed = await repo.claimDuePings(sql, at, new Date(at.getTime() + options.pingIntervalMs), batch);
      span.setAttribute("agents.pinged", claimed.length);
      if (claimed.length === 0) return false;
      const servers = await repo.findServers(sql, claimed.map((a) => a.serverId));
      // Each call listens on the loop's signal while it runs.
      setMaxListeners(2 * batch + 10, signal);
      const samples: AgentMetricsSample[] = [];
      const answered = await Promise.all(claimed.map((a) => (vouched(a, servers.get(a.serverId)) ? call(a, signal, samples) : false)));
      // The common case: a CONNECTED agent answers again, and only when it was last seen changes (one statement for
      // all of them); a miss or a change of state takes its own transaction, with the server's state and event.
      const steady: string[] = [];
      const recorded: Promise<void>[] = [];
      claimed.forEach((a, i) => {
        if (answered[i] && a.state === "CONNECTED" && a.missedPings === 0) steady.push(a.id);
        else recorded.push(record(a, answered[i] === true).catch((err: unknown) => log.error({ err, agentId: a.id }, "agent ping not recorded")));
      });
      recorded.push(repo.recordAnsweredPings(sql, steady, now()).catch((err: unknown) => log.error({ err, agents: steady.length }, "agent pings not recorded")));
      if (options.onMetrics && samples.length > 0) recorded.push(options.onMetrics(samples).catch((err: unknown) => log.warn({ err, samples: samples.length }, "agent metrics not recorded")));
      await Promise.all(recorded);
      return claimed.length === batch;
    },
  });
}

/** Agents of terminated servers are GONE (no longer pinged); their servers have no agent any more. */
async function markGone(sql: SqlPool): Promise<void> {
  await sql.execute`
    UPDATE agents a JOIN servers s ON s.id = a.server_id
       SET a.state = 'GONE', a.updated_at = NOW(3), s.agent_state = 'NONE',
           -- Revoked: no certificate of the agent is accepted any more, and it can renew none.
           a.cert_sha256 = NULL, a.prev_cert_sha256 = NULL, a.public_key = NULL
     WHERE s.state = 'TERMINATED' AND a.state <> 'GONE'`;
}

