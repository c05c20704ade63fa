// How this process reaches one agent: over mutual TLS with the agent CA (its client certificate; the agent's pinned
// certificates), or on a plaintext channel (development) with the agent's re-derived credential.
import type { Config } from "../config.js";
import type { AgentEndpoint } from "./agent-client.js";
import { agentCaOf } from "./ca.js";
import type { AgentRow } from "./repository.js";
import { credentialKeyOf, deriveAgentCredential } from "./secrets.js";

export type AgentConnector = (agent: Pick<AgentRow, "id" | "address" | "port" | "certSha256" | "prevCertSha256">) => AgentEndpoint;

export function agentConnector(config: Pick<Config, "mode" | "dataDir" | "agent">): AgentConnector {
  return (agent) => {
    const ca = agentCaOf(config);
    if (!ca) return { address: agent.address, port: agent.port, credential: deriveAgentCredential(credentialKeyOf(config), agent.id) };
    const { cert, key } = ca.clientIdentity();
    const pins = [agent.certSha256, agent.prevCertSha256].filter((p): p is string => typeof p === "string" && p !== "");
    return { address: agent.address, port: agent.port, tls: { ca: Buffer.from(ca.bundlePem), cert, key, agentId: agent.id, pins } };
  };
}
