// Connecting ahead for a fleet command (src/agent/fleet-ahead.ts), against the real MariaDB: the agents of the held
// children are connected in release order, a window ahead of those released; an agent at an address the cloud does
// not report for its server, or gone, is never connected; nothing once no child is left to release.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentChannels } from "../../src/agent/agent-channels.js";
import type { AgentEndpoint } from "../../src/agent/agent-client.js";
import { connectAhead } from "../../src/agent/fleet-ahead.js";
import { createFleetService } from "../../src/agent/fleet.js";
import { deriveAgentCredential } from "../../src/agent/secrets.js";
import type { Principal } from "../../src/iam/principal.js";
import { NO_CHILDREN } from "../../src/jobs/children.js";
import type { ChildCounts } from "../../src/jobs/model.js";
import { until } from "../support/poll.js";
import { insertFleet } from "./fleet-farm.js";
import { openAgentHarness, quiet, type AgentHarness } from "./support.js";

const SERVERS = 10;
let a: AgentHarness;
let key: Buffer;
/** Agent ids in the servers' (and so the children's release) order. */
let agents: string[];
let servers: string[];

beforeAll(async () => {
  a = await openAgentHarness("fleet-ahead");
  key = Buffer.from(a.h.config.agent.credentialKey, "base64");
  const fleet = await insertFleet(a.h.sql, { accountId: a.accountId, count: SERVERS, port: 1, credentialKey: key });
  agents = [...fleet.keys()];
  servers = [...fleet.values()];
}, 60_000);

afterAll(async () => {
  await a?.close();
});

const operator: Principal = { id: "u-oper", kind: "user", roles: ["operator"], displayName: "Otto", accountIds: [] };

/** A fleet command over every server, left held (no worker runs here); its id. */
async function heldFleet(): Promise<string> {
  const fleet = createFleetService(a.h.sql, a.jobs, () => key);
  const { job } = await fleet.runFleetCommand({ ...operator, accountIds: [a.accountId] }, {
    serverIds: servers, selector: null, command: "work", args: ["0"], env: {}, timeoutMs: 10_000, maxConcurrency: 3, errorBudget: 1, idempotencyKey: "",
  });
  return job.id;
}

/** Channels that only note which agents were connected ahead (by the credential each endpoint carries). */
function noting(): { channels: AgentChannels; warmed: string[] } {
  const byCredential = new Map(agents.map((id) => [deriveAgentCredential(key, id), id]));
  const warmed: string[] = [];
  const warm = (e: AgentEndpoint) => void warmed.push(byCredential.get("credential" in e ? e.credential : "") ?? "?");
  return { channels: { warm } as unknown as AgentChannels, warmed };
}

const counts = (pending: number): ChildCounts => ({ ...NO_CHILDREN, total: SERVERS, pending, running: Math.min(3, SERVERS - pending) });

describe("connecting ahead", () => {
  it("connects the next children's agents in release order, a window ahead of the released, never an unvouched or gone one", async () => {
    const parentId = await heldFleet();
    // The fourth server's agent now claims an address the cloud never reported for it; the sixth's is gone.
    await a.h.sql.execute`UPDATE agents SET address = '10.77.0.1' WHERE id = ${agents[3] as string}`;
    await a.h.sql.execute`UPDATE agents SET state = 'GONE' WHERE id = ${agents[5] as string}`;
    const { channels, warmed } = noting();
    const afterRound = connectAhead(a.h.sql, a.h.config, channels, parentId, 3, quiet());
    // The first round released 3: the agents are read in the background, then the next 3 beyond the released.
    afterRound(counts(SERVERS - 3));
    await until(() => warmed.length > 0, 5_000, "agents connected ahead");
    expect(warmed).toEqual(agents.slice(0, 6).filter((_, i) => i !== 3 && i !== 5));
    // One more released: one more ahead (the seventh), nothing twice.
    afterRound(counts(SERVERS - 4));
    expect(warmed).toEqual([...agents.slice(0, 3), agents[4], agents[6]]);
    // Nothing left to release (the budget spent, a cancel): nothing more connected.
    afterRound(counts(0));
    expect(warmed).toHaveLength(5);
  });
});
