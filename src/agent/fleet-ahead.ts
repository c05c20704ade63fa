// Connecting ahead for a fleet command: its parent opens this worker's channels to the agents of the children it
// releases next, so that a child's call finds its agent connected instead of connecting first (a real fleet's first
// command reaches every agent for the first time). Only agents at an address the child's own check accepts.
import type { Sql } from "../db/sql.js";
import type { JobServices } from "../jobs/catalog.js";
import type { ChildCounts } from "../jobs/model.js";
import type { Logger } from "../log.js";
import type { AgentChannels } from "./agent-channels.js";
import { agentConnector } from "./connect.js";
import { agentEndpointRules, checkAgentEndpoint } from "./endpoints.js";
import { heldChildAgents } from "./fleet-repository.js";
import type { AgentWithServer } from "./repository.js";

/** Children connected ahead of their release at most (a fleet's limit may be 1,000; its channels count against agent.maxChannels). */
const AHEAD_MAX = 100;

/**
 * What to call after each release round: it connects to the agents of the next `window` children beyond those
 * released. The agents of the held children of `parentId` are read in the background, off the first release's path;
 * rounds before that read answered connect nothing. The parent releases its held children in id order, so of those
 * read, the first `read − pending` have been released.
 */
export function connectAhead(sql: Sql, config: JobServices["config"], channels: AgentChannels, parentId: string, window: number, log: Logger): (counts: ChildCounts) => void {
  const connect = agentConnector(config);
  const rules = agentEndpointRules(config);
  const ahead = Math.min(window, AHEAD_MAX);
  let upcoming: (AgentWithServer | null)[] | undefined;
  let last: ChildCounts | undefined;
  let next = 0;
  const warm = (counts: ChildCounts): void => {
    // Nothing is left to release (done, cancelled, or the error budget spent).
    if (!upcoming || counts.pending === 0) return;
    const released = Math.max(0, upcoming.length - counts.pending);
    for (const until = Math.min(upcoming.length, released + ahead); next < until; next++) {
      const found = upcoming[next];
      if (!found?.server || found.agent.state === "GONE") continue;
      if (!checkAgentEndpoint(found.server, found.agent.address, found.agent.port, rules).ok) continue;
      channels.warm(connect(found.agent));
    }
  };
  heldChildAgents(sql, parentId).then(
    (rows) => {
      upcoming = rows;
      if (last) warm(last);
    },
    // Only a head start is lost: each child connects on its own call.
    (err: unknown) => log.warn({ err }, "could not read the agents of the children to connect ahead"),
  );
  return (counts) => {
    last = counts;
    warm(counts);
  };
}
