// What a launched server's guest receives at boot (LaunchRequest.bootstrap: user data or environment). Secret: the
// values never reach a log, a span, an event or a column.
import type { Server } from "./model.js";

/**
 * The bootstrap environment of `server`'s guest, e.g. DISPATCHER_AGENT_JOIN_TOKEN and DISPATCHER_AGENT_BRIDGE_URL once
 * the agent registry issues join tokens. Called by the server.launch job on every attempt, so what it returns must be
 * the same for a retried launch of the same server (the provider keeps the first launch's bootstrap).
 */
export async function bootstrapFor(server: Server): Promise<Record<string, string>> {
  void server;
  return {};
}
