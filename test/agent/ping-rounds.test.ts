// Rounds of pings over simulated agents (test/agent/fleet-farm.ts, each at its own loopback address) against the real
// MariaDB: two monitor replicas pinging the same 120 agents ping each exactly once per interval (a round claims its
// agents in one transaction, skipping those another replica holds), every answer is recorded, and the channels opened
// in the first round carry the later ones; a round's claim locks only the agents it takes, so another replica claims
// others meanwhile.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAgentChannels, type AgentChannels } from "../../src/agent/agent-channels.js";
import { openAgentChannel } from "../../src/agent/agent-client.js";
import { agentConnector } from "../../src/agent/connect.js";
import { agentEndpointRules } from "../../src/agent/endpoints.js";
import { startAgentPinger, type AgentMetricsSample } from "../../src/agent/pinger.js";
import { claimDuePings } from "../../src/agent/repository.js";
import type { SqlPool } from "../../src/db/sql.js";
import type { Loop } from "../../src/monitor/loop.js";
import { until } from "../support/poll.js";
import { insertFleet, startAgentFarm, type AgentFarm } from "./fleet-farm.js";
import { openAgentHarness, quiet, type AgentHarness } from "./support.js";

const AGENTS = 120;
const PING_MS = 6_000;

let a: AgentHarness;
let farm: AgentFarm;
const pingers: Loop[] = [];
const channels: AgentChannels[] = [];
beforeAll(async () => {
  a = await openAgentHarness("ping_rounds", { pingIntervalMs: PING_MS });
  const key = Buffer.from(a.h.config.agent.credentialKey, "base64");
  farm = await startAgentFarm(key, { bind: "0.0.0.0" });
  farm.add(await insertFleet(a.h.sql, { accountId: a.accountId, count: AGENTS, port: farm.port, credentialKey: key, spreadAddresses: true }));
}, 60_000);

afterAll(async () => {
  await stopReplicas();
  await farm?.stop();
  await a?.close();
});

const seen = async (after: Date): Promise<number> => {
  const [row] = await a.h.sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM agents WHERE state = 'CONNECTED' AND last_seen_at > ${after}`;
  return Number(row?.n ?? 0);
};

/** Starts a pinger (a monitor replica) with channels of its own, counting the channels it opens. */
function startReplica(metrics?: (samples: AgentMetricsSample[]) => void): { opened: () => number } {
  let opened = 0;
  const kept = createAgentChannels({ idleMs: 60_000, maxChannels: 1_000, open: (endpoint) => (opened++, openAgentChannel(endpoint)) });
  channels.push(kept);
  pingers.push(startAgentPinger({ sql: a.h.sql, log: quiet(), connect: agentConnector(a.h.config), endpoints: agentEndpointRules(a.h.config), pingIntervalMs: PING_MS, maxMissedPings: 3, channels: kept, batch: 32, onMetrics: metrics && (async (samples) => metrics(samples)) }));
  return { opened: () => opened };
}

async function stopReplicas(): Promise<void> {
  await Promise.all(pingers.splice(0).map((p) => p.stop(1_000)));
  for (const c of channels.splice(0)) c.close();
}

/** Makes every agent due now; resolves when each answered once since, with the pings the farm answered meanwhile. */
async function round(what: string, due = false): Promise<number> {
  const before = farm.statusCalls;
  const since = new Date(Date.now() - 1);
  if (due) await a.h.sql.execute`UPDATE agents SET next_ping_at = NOW(3)`;
  await until(async () => (await seen(since)) === AGENTS, 3 * PING_MS, what);
  return farm.statusCalls - before;
}

describe("rounds of agent pings", () => {
  it("ping each agent once per interval, record every answer, and go over the channels the first round opened", async () => {
    // Each answer's metrics too, handed over a round at a time (one analytics insert per round, not per ping).
    const rounds: number[] = [];
    const replica = startReplica((samples) => rounds.push(samples.length));
    expect(await round("every agent answering once", true)).toBe(AGENTS);
    await until(() => rounds.reduce((n, r) => n + r, 0) === AGENTS, 5_000, "every agent's metrics");
    expect(rounds.length).toBeLessThanOrEqual(Math.ceil(AGENTS / 32) + 2);
    const opened = replica.opened();
    expect(opened).toBe(AGENTS);
    expect(await round("every agent answering a second time")).toBe(AGENTS);
    expect(replica.opened()).toBe(opened);
    await stopReplicas();
  }, 60_000);

  it("ping each agent once per interval between two replicas", async () => {
    const replicas = [startReplica(), startReplica()];
    expect(await round("every agent answering once", true)).toBe(AGENTS);
    expect(await round("every agent answering a second time")).toBe(AGENTS);
    // Each replica keeps a channel to the agents it happened to ping: at most one per agent each.
    expect(replicas.reduce((n, r) => n + r.opened(), 0)).toBeLessThanOrEqual(2 * AGENTS);
    await stopReplicas();
  }, 60_000);

  it("let a second replica claim other agents while one round's claim is still open", async () => {
    await a.h.sql.execute`UPDATE agents SET state = 'CONNECTED', next_ping_at = NOW(3) - INTERVAL 1 SECOND`;
    const now = new Date();
    const next = new Date(now.getTime() + PING_MS);
    // The first claim's transaction stays open (its rows locked) until the second one has answered.
    let claimed!: () => void;
    const firstClaimed = new Promise<void>((r) => (claimed = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held: SqlPool = { ...a.h.sql, transaction: (fn, o) => a.h.sql.transaction(async (tx) => { const r = await fn(tx); claimed(); await gate; return r; }, o) };
    const first = claimDuePings(held, now, next, 32);
    await firstClaimed;
    const second = await claimDuePings(a.h.sql, now, next, 32);
    release();
    const firstIds = (await first).map((r) => r.id);
    expect(firstIds).toHaveLength(32);
    expect(second).toHaveLength(32);
    expect(second.filter((r) => firstIds.includes(r.id))).toEqual([]);
  }, 30_000);
});
