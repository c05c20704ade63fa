// The monitor's pinger against a real agent process (bin/dispatcher-agent.js): CONNECTED while it answers, UNREACHABLE within the
// configured number of missed pings after a SIGKILL (server agent_state and event too), CONNECTED again once a restart
// (from its saved registration) answers, GONE once its server is terminated.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueJoinToken } from "../../src/agent/join-tokens.js";
import { agentConnector } from "../../src/agent/connect.js";
import { agentEndpointRules } from "../../src/agent/endpoints.js";
import { startAgentPinger, type AgentMetricsSample } from "../../src/agent/pinger.js";
import type { Loop } from "../../src/monitor/loop.js";

import { cleanEnv, freePort } from "../support/process.js";
import { AgentProcess, openAgentHarness, quiet, serverEvents, serverRow, type AgentHarness } from "./support.js";
import { until } from "../support/poll.js";

const PING_MS = 200;
const MAX_MISSED = 3;

let a: AgentHarness;
let pinger: Loop;
let dir: string;
let port: number;
let serverId: string;
const processes: AgentProcess[] = [];
const samples: AgentMetricsSample[] = [];

beforeAll(async () => {
  a = await openAgentHarness("agent_ping", { pingIntervalMs: PING_MS, maxMissedPings: MAX_MISSED });
  dir = mkdtempSync(join(tmpdir(), "agent-ping-"));
  port = await freePort();
  serverId = await a.newServer();
}, 60_000);

afterAll(async () => {
  await pinger?.stop(500);
  for (const p of processes) if (p.running) await p.kill9();
  await a?.close();
  rmSync(dir, { recursive: true, force: true });
});

function spawnAgent(joinToken?: string): AgentProcess {
  const env = cleanEnv({
    DISPATCHER_DATA_DIR: dir,
    DISPATCHER_LOGGING_LEVEL: "warn",
    DISPATCHER_AGENT_BRIDGE_URL: a.bridgeUrl,
    DISPATCHER_AGENT_PORT: String(port),
    DISPATCHER_AGENT_BIND: "127.0.0.1",
    DISPATCHER_AGENT_ADDRESS: "127.0.0.1",
    DISPATCHER_AGENT_STATE_DIR: join(dir, "state"),
    DISPATCHER_AGENT_PLAINTEXT: "true",
    ...(joinToken ? { DISPATCHER_AGENT_JOIN_TOKEN: joinToken } : {}),
  });
  const p = new AgentProcess(env);
  processes.push(p);
  return p;
}

const agentRow = async () =>
  (await a.h.sql.query<{ id: string; state: string; missedPings: number; lastSeenAt: Date | null }>`
    SELECT id, state, missed_pings AS missedPings, last_seen_at AS lastSeenAt FROM agents WHERE server_id = ${serverId}`)[0];

describe("agent pings", () => {
  it("keeps an answering agent CONNECTED and marks it UNREACHABLE within maxMissedPings after SIGKILL", async () => {
    const agent = spawnAgent(await issueJoinToken(a.h.sql, serverId, 60_000));
    await agent.waitForOutput(/ready on port/, 20_000);
    // Its registration survives a restart, readable by the agent alone.
    expect(statSync(join(dir, "state", "agent.json")).mode & 0o777).toBe(0o600);
    pinger = startAgentPinger({
      sql: a.h.sql,
      log: quiet(),
      connect: agentConnector(a.h.config),
      endpoints: agentEndpointRules(a.h.config),
      pingIntervalMs: PING_MS,
      maxMissedPings: MAX_MISSED,
      onMetrics: async (round) => void samples.push(...round),
    });
    const registered = (await agentRow())?.lastSeenAt?.getTime() ?? 0;
    await until(async () => ((await agentRow())?.lastSeenAt?.getTime() ?? 0) > registered + 2 * PING_MS, 10_000, "answered pings");
    expect((await agentRow())?.state).toBe("CONNECTED");
    // Each answered ping also collected the guest's metrics for analytics.
    expect(samples.length).toBeGreaterThan(0);
    expect(samples[0]).toMatchObject({ serverId, agentId: (await agentRow())?.id });
    expect(samples[0]!.memoryTotalBytes).toBeGreaterThan(0);

    await agent.kill9();
    const killedAt = Date.now();
    await until(async () => (await agentRow())?.state === "UNREACHABLE", 10_000, "UNREACHABLE");
    const elapsed = Date.now() - killedAt;
    // MAX_MISSED pings at PING_MS apart (plus one interval for the ping under way and scheduling slack).
    expect(elapsed).toBeLessThan((MAX_MISSED + 1) * PING_MS + 1_500);
    expect((await agentRow())?.missedPings).toBe(MAX_MISSED);
    expect((await serverRow(a.h, serverId)).agentState).toBe("UNREACHABLE");
    expect(await serverEvents(a.h, serverId)).toContain("AGENT_UNREACHABLE");
  });

  it("marks it CONNECTED again when the restarted agent answers, without a new join token", async () => {
    const agent = spawnAgent();
    await agent.waitForOutput(/ready on port/, 20_000);
    await until(async () => (await agentRow())?.state === "CONNECTED", 10_000, "CONNECTED again");
    expect((await serverRow(a.h, serverId)).agentState).toBe("CONNECTED");
    expect((await serverEvents(a.h, serverId)).slice(-2)).toEqual(["AGENT_UNREACHABLE", "AGENT_CONNECTED"]);
  });

  it("stops pinging the agent of a terminated server", async () => {
    await a.h.sql.execute`UPDATE servers SET state = 'TERMINATED' WHERE id = ${serverId}`;
    await until(async () => (await agentRow())?.state === "GONE", 10_000, "GONE");
    expect((await serverRow(a.h, serverId)).agentState).toBe("NONE");
  });
});
