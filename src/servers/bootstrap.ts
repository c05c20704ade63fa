// What a launched server's guest receives at boot (LaunchRequest.bootstrap: user data or environment). Secret: the
// values never reach a log, a span, an event or a column.
import { issueJoinToken } from "../agent/join-tokens.js";
import type { Config } from "../config.js";
import type { Sql } from "../db/sql.js";
import { traceparentOf } from "../telemetry/propagation.js";
import type { Server } from "./model.js";

/**
 * The bootstrap environment of `server`'s guest: a new join token for this launch attempt (one-time, bound to the
 * server, valid agent.joinTokenTtlMs; only its hash is stored) and the bridge URL its agent registers through. Called by
 * the server.launch job on every attempt: a retry hands out a new token, and whichever one the provider booted the
 * guest with works once (the provider keeps the first launch's bootstrap). The launch job's trace context goes too
 * (not secret), so the agent's registration shows in the launch's trace.
 */
export async function bootstrapFor(server: Server, resources: { sql: Sql; config: Pick<Config, "agent"> }): Promise<Record<string, string>> {
  const token = await issueJoinToken(resources.sql, server.id, resources.config.agent.joinTokenTtlMs);
  const traceparent = traceparentOf();
  return {
    DISPATCHER_AGENT_JOIN_TOKEN: token,
    DISPATCHER_AGENT_BRIDGE_URL: resources.config.agent.bridgeUrl,
    ...(traceparent ? { DISPATCHER_AGENT_TRACEPARENT: traceparent } : {}),
    // The guest must speak what the dispatcher speaks: plaintext only when the dispatcher does (development).
    ...(resources.config.agent.plaintext ? { DISPATCHER_AGENT_PLAINTEXT: "true" } : {}),
  };
}
