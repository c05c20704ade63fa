// Register: a join token (already checked by the authenticator, consumed here) becomes an agent of its server, with a
// short-lived certificate for the key the agent made on the guest (or, on a plaintext channel, a credential). One
// transaction: token used, agent row, server's agent_state, server event — or nothing. RenewAgent: a registered agent,
// proving itself with a signature by its current key, gets a certificate for its next key and may give a new endpoint.
import type { KeyObject } from "node:crypto";
import { createPublicKey } from "node:crypto";
import { newId } from "../db/ids.js";
import type { Sql, SqlPool } from "../db/sql.js";
import { FailedPreconditionError, InvalidArgumentError, UnauthenticatedError, UnavailableError, type FieldViolation } from "../errors.js";
import type { Principal } from "../iam/principal.js";
import type { Logger } from "../log.js";
import { verifiedRequestKey } from "../pki/csr.js";
import { renewalSignatureValid } from "../pki/renewal.js";
import type { AgentCa } from "./ca.js";
import { checkAgentEndpoint, observedAddresses, type AgentEndpointRules } from "./endpoints.js";
import { joinTokenIdOf, renewingAgentIdOf } from "./join-tokens.js";
import * as repo from "./repository.js";
import { deriveAgentCredential, sha256Hex } from "./secrets.js";

export interface RegisterInput {
  hostname: string;
  version: string;
  port: number;
  /** Empty: the server's first address the cloud reports; otherwise one of those addresses. */
  address: string;
  /** PEM PKCS#10 request for the agent's key; empty only on a plaintext channel. */
  certificateRequest: string;
}

export interface Registered {
  agentId: string;
  serverId: string;
  /** Plaintext channel only: shown once, to the agent. */
  credential: string;
  /** Mutual TLS: the agent's certificate and the CA certificates it trusts for its callers. */
  certificate: string;
  caCertificates: string;
}

export interface RenewInput {
  agentId: string;
  address: string;
  port: number;
  certificateRequest: string;
  signedTimeMs: number;
  signature: Uint8Array;
}

export interface Renewed {
  certificate: string;
  caCertificates: string;
}

export interface RegistrationOptions {
  sql: SqlPool;
  credentialKey: () => Buffer;
  /** The agent CA; null on a plaintext channel (development). */
  ca: () => AgentCa | null;
  /** Lifetime of the certificates issued (agent.certificateTtlMs). */
  certificateTtlMs: () => number;
  pingIntervalMs: number;
  /** Where agents may be called (src/agent/endpoints.ts). */
  endpoints: AgentEndpointRules;
  log: Logger;
  now?: () => Date;
}

export interface RegistrationService {
  register(principal: Readonly<Principal>, input: RegisterInput): Promise<Registered>;
  renew(principal: Readonly<Principal>, input: RenewInput): Promise<Renewed>;
}

/** How far a renewal's signing time may be from the dispatcher's clock. */
const SIGNED_WINDOW_MS = 5 * 60_000;
const MAX_REQUEST_PEM = 4096;

export function createRegistrationService(options: RegistrationOptions): RegistrationService {
  const { sql, log } = options;
  const now = options.now ?? (() => new Date());

  /** The CA when the channel is TLS and the request carries a verified key; the violations otherwise. */
  const requestedKey = (certificateRequest: string): { ca: AgentCa; key: KeyObject } | null => {
    const ca = options.ca();
    if (!ca) {
      if (certificateRequest) throw new FailedPreconditionError("the dispatcher calls agents in plaintext (development): start the agent with agent.plaintext", "AGENT_CHANNEL_PLAINTEXT");
      return null;
    }
    if (!certificateRequest) throw InvalidArgumentError.field("certificate_request", "is required: the dispatcher calls agents over mutual TLS");
    const key = verifiedRequestKey(certificateRequest);
    if (key instanceof Error) throw InvalidArgumentError.field("certificate_request", key.message);
    return { ca, key };
  };

  /** The endpoint the dispatcher will call, by the rules of src/agent/endpoints.ts; throws what the caller gets. */
  const vouchedAddress = (server: repo.ServerForAgent, address: string, port: number): string => {
    // Until the driver has reported an address, the agent is asked to come back.
    if (observedAddresses(server).length === 0) throw new UnavailableError("the cloud reports no address for this server yet; register again shortly", "ADDRESS_NOT_OBSERVED");
    const checked = checkAgentEndpoint(server, address, port, options.endpoints);
    if (!checked.ok) throw new InvalidArgumentError(checked.violations);
    return checked.address;
  };

  return {
    async register(principal, input) {
      const tokenId = joinTokenIdOf(principal);
      // Any other principal (an API key, even an admin's) has no server to register for.
      if (!tokenId) throw new UnauthenticatedError("registration requires a join token");
      validate(input);
      const tls = requestedKey(input.certificateRequest);
      const at = now();
      const agentId = newId(at.getTime());
      const credential = tls ? "" : deriveAgentCredential(options.credentialKey(), agentId);
      const { serverId, certificate } = await sql.transaction(async (tx) => {
        // The same answer for a replayed, expired or foreign token as for an unknown one: nothing to learn from it.
        if (!(await repo.consumeJoinToken(tx, tokenId, agentId, at))) throw new UnauthenticatedError();
        const token = (await tx.query<{ serverId: string }>`SELECT server_id AS serverId FROM agent_join_tokens WHERE id = ${tokenId}`)[0];
        const server = token ? await repo.findServer(tx, token.serverId, true) : null;
        if (!server || server.state === "TERMINATED" || server.state === "TERMINATING") throw new UnauthenticatedError();
        const address = vouchedAddress(server, input.address, input.port);
        const cert = tls ? tls.ca.issueAgent(tls.key, agentId, server.id, options.certificateTtlMs(), at) : null;
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
          publicKey: tls ? spkiOf(tls.key) : null,
          certSha256: cert?.sha256 ?? null,
          certNotAfter: cert?.notAfter ?? null,
        });
        await repo.setServerAgentState(tx, server.id, "CONNECTED");
        await repo.insertServerEvent(tx, {
          serverId: server.id,
          type: "AGENT_REGISTERED",
          message: `agent ${agentId} registered (version ${input.version || "?"}, ${address}:${input.port}${cert ? ", mutual TLS" : ", plaintext"})`,
          details: { agentId, version: input.version, hostname: input.hostname, address, port: input.port, tls: cert !== null },
        });
        return { serverId: server.id, certificate: cert?.pem ?? "" };
      });
      log.info({ agentId, serverId, version: input.version, tls: tls !== null }, "agent registered");
      return { agentId, serverId, credential, certificate, caCertificates: tls?.ca.bundlePem ?? "" };
    },

    async renew(principal, input) {
      const claimed = renewingAgentIdOf(principal);
      if (!claimed || claimed !== input.agentId) throw new UnauthenticatedError();
      validateEndpoint(input);
      const tls = requestedKey(input.certificateRequest);
      if (!tls) throw new FailedPreconditionError("the dispatcher calls agents in plaintext (development): there is no certificate to renew", "AGENT_CHANNEL_PLAINTEXT");
      const at = now();
      // A stale request (clock far off, or a recording) proves nothing; the same answer as for a bad signature.
      if (!Number.isSafeInteger(input.signedTimeMs) || Math.abs(at.getTime() - input.signedTimeMs) > SIGNED_WINDOW_MS) throw new UnauthenticatedError();
      const renewed = await sql.transaction(async (tx: Sql) => {
        const agent = await repo.findAgent(tx, input.agentId);
        if (!agent || agent.state === "GONE" || !agent.publicKey) throw new UnauthenticatedError();
        const current = createPublicKey({ key: Buffer.from(agent.publicKey, "base64"), format: "der", type: "spki" });
        if (!renewalSignatureValid(input, input.signature, current)) throw new UnauthenticatedError();
        const server = await repo.findServer(tx, agent.serverId, true);
        if (!server || server.state === "TERMINATED" || server.state === "TERMINATING") throw new UnauthenticatedError();
        const address = vouchedAddress(server, input.address, input.port);
        const cert = tls.ca.issueAgent(tls.key, agent.id, server.id, options.certificateTtlMs(), at);
        // Called at once at the new endpoint (an agent restarted on a new port is not left UNREACHABLE).
        const fresh = await repo.renewAgent(tx, { id: agent.id, address, port: input.port, publicKey: spkiOf(tls.key), certSha256: cert.sha256, certNotAfter: cert.notAfter, signedAtMs: input.signedTimeMs, nextPingAt: at });
        // Not later than the last accepted request: a replay.
        if (!fresh) throw new UnauthenticatedError();
        // The agent just proved itself: an UNREACHABLE one (restarted, moved) is CONNECTED again; pings confirm it.
        const change = await repo.recordPing(tx, agent.id, { answered: true, at });
        if (change && change.from !== change.to) {
          await repo.setServerAgentState(tx, server.id, "CONNECTED");
          await repo.insertServerEvent(tx, { serverId: server.id, type: "AGENT_CONNECTED", message: `agent ${agent.id} renewed its certificate`, details: { agentId: agent.id } });
        }
        if (address !== agent.address || input.port !== agent.port) {
          await repo.insertServerEvent(tx, {
            serverId: server.id,
            type: "AGENT_ENDPOINT_CHANGED",
            message: `agent ${agent.id} now at ${address}:${input.port} (was ${agent.address}:${agent.port})`,
            details: { agentId: agent.id, address, port: input.port, previous: { address: agent.address, port: agent.port } },
          });
        }
        return { serverId: server.id, pem: cert.pem, notAfter: cert.notAfter };
      });
      log.info({ agentId: input.agentId, serverId: renewed.serverId, notAfter: renewed.notAfter }, "agent certificate renewed");
      return { certificate: renewed.pem, caCertificates: tls.ca.bundlePem };
    },
  };
}

function spkiOf(key: KeyObject): string {
  return key.export({ type: "spki", format: "der" }).toString("base64");
}

function validateEndpoint(input: { port: number; address: string; certificateRequest: string }, violations: FieldViolation[] = []): FieldViolation[] {
  if (!Number.isInteger(input.port) || input.port < 1 || input.port > 65535) violations.push({ field: "port", description: "must be a port number from 1 to 65535" });
  if (input.address.length > 255 || /[\s/@]/.test(input.address)) violations.push({ field: "address", description: "must be a host name or IP address" });
  if (input.certificateRequest.length > MAX_REQUEST_PEM) violations.push({ field: "certificate_request", description: `must be at most ${MAX_REQUEST_PEM} characters` });
  if (violations.length > 0) throw new InvalidArgumentError(violations);
  return violations;
}

function validate(input: RegisterInput): void {
  const violations: FieldViolation[] = [];
  if (input.hostname.length > 255) violations.push({ field: "hostname", description: "must be at most 255 characters" });
  if (input.version.length > 64) violations.push({ field: "version", description: "must be at most 64 characters" });
  validateEndpoint(input, violations);
}
