// Register: a join token (already checked by the authenticator, consumed here) becomes an agent of its server, with
// a credential the agent will require from the dispatcher. One transaction: token used, agent row, server's
// agent_state, server event — or nothing.
import { newId } from "../db/ids.js";
import type { SqlPool } from "../db/sql.js";
import { InvalidArgumentError, UnauthenticatedError, UnavailableError, type FieldViolation } from "../errors.js";
import type { Principal } from "../iam/principal.js";
import type { Logger } from "../log.js";
import { checkAgentEndpoint, observedAddresses, type AgentEndpointRules } from "./endpoints.js";
import { joinTokenIdOf } from "./join-tokens.js";
import * as repo from "./repository.js";
import { deriveAgentCredential, sha256Hex } from "./secrets.js";

export interface RegisterInput {
  hostname: string;
  version: string;
  port: number;
  /** Empty: the server's first address the cloud reports; otherwise one of those addresses. */
  address: string;
}

export interface Registered {
  agentId: string;
  serverId: string;
  /** Shown once, to the agent. */
  credential: string;
}

export interface RegistrationOptions {
  sql: SqlPool;
  credentialKey: () => Buffer;
  pingIntervalMs: number;
  /** Where agents may be called (src/agent/endpoints.ts). */
  endpoints: AgentEndpointRules;
  log: Logger;
  now?: () => Date;
}

export interface RegistrationService {
  register(principal: Readonly<Principal>, input: RegisterInput): Promise<Registered>;
}

export function createRegistrationService(options: RegistrationOptions): RegistrationService {
  const { sql, log } = options;
  const now = options.now ?? (() => new Date());
  return {
    async register(principal, input) {
      const tokenId = joinTokenIdOf(principal);
      // Any other principal (an API key, even an admin's) has no server to register for.
      if (!tokenId) throw new UnauthenticatedError("registration requires a join token");
      validate(input);
      const at = now();
      const agentId = newId(at.getTime());
      const credential = deriveAgentCredential(options.credentialKey(), agentId);
      const serverId = await sql.transaction(async (tx) => {
        // The same answer for a replayed, expired or foreign token as for an unknown one: nothing to learn from it.
        if (!(await repo.consumeJoinToken(tx, tokenId, agentId, at))) throw new UnauthenticatedError();
        const token = (await tx.query<{ serverId: string }>`SELECT server_id AS serverId FROM agent_join_tokens WHERE id = ${tokenId}`)[0];
        const server = token ? await repo.findServer(tx, token.serverId, true) : null;
        if (!server || server.state === "TERMINATED" || server.state === "TERMINATING") throw new UnauthenticatedError();
        // The address the cloud vouches for, never the caller's word alone: a join token must not be able to point the
        // dispatcher at another host or port. Until the driver has reported one, the agent is asked to come back.
        if (observedAddresses(server).length === 0) throw new UnavailableError("the cloud reports no address for this server yet; register again shortly", "ADDRESS_NOT_OBSERVED");
        const checked = checkAgentEndpoint(server, input.address, input.port, options.endpoints);
        if (!checked.ok) throw new InvalidArgumentError(checked.violations);
        const address = checked.address;
        await repo.replaceAgent(tx, {
          id: agentId,
          serverId: server.id,
          credentialHash: sha256Hex(credential),
          version: input.version,
          hostname: input.hostname,
          address,
          port: input.port,
          lastSeenAt: at,
          nextPingAt: new Date(at.getTime() + options.pingIntervalMs),
        });
        await repo.setServerAgentState(tx, server.id, "CONNECTED");
        await repo.insertServerEvent(tx, {
          serverId: server.id,
          type: "AGENT_REGISTERED",
          message: `agent ${agentId} registered (version ${input.version || "?"}, ${address}:${input.port})`,
          details: { agentId, version: input.version, hostname: input.hostname, address, port: input.port },
        });
        return server.id;
      });
      log.info({ agentId, serverId, version: input.version }, "agent registered");
      return { agentId, serverId, credential };
    },
  };
}

function validate(input: RegisterInput): void {
  const violations: FieldViolation[] = [];
  if (!Number.isInteger(input.port) || input.port < 1 || input.port > 65535) violations.push({ field: "port", description: "must be a port number from 1 to 65535" });
  if (input.hostname.length > 255) violations.push({ field: "hostname", description: "must be at most 255 characters" });
  if (input.version.length > 64) violations.push({ field: "version", description: "must be at most 64 characters" });
  if (input.address.length > 255 || /[\s/@]/.test(input.address)) violations.push({ field: "address", description: "must be a host name or IP address" });
  if (violations.length > 0) throw new InvalidArgumentError(violations);
}
