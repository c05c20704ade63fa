// Join tokens: issued with each launch attempt of a server and handed to its guest (bootstrap environment); the
// agent presents one, once, to register. Only their SHA-256 is stored; the plaintext lives in the launch request alone.
import { newId } from "../db/ids.js";
import type { Sql } from "../db/sql.js";
import type { Authenticate, Principal } from "../iam/principal.js";
import * as repo from "./repository.js";
import { secretsEqual } from "../iam/secrets.js";
import { RENEWAL_TOKEN_MARKER } from "../pki/renewal.js";
import { JOIN_TOKEN_MARKER, newJoinToken, sha256Hex } from "./secrets.js";

/** The role of a join-token principal: it may call AgentRegistrationService.Register and nothing else. */
export const AGENT_JOIN_ROLE = "agent-join";
/** Principal ids of join tokens: "join:<token row id>". */
const JOIN_PRINCIPAL_PREFIX = "join:";
/** The role of an agent renewing its certificate: RenewAgent and nothing else (the service verifies its signature). */
export const AGENT_RENEW_ROLE = "agent-renew";
const RENEW_PRINCIPAL_PREFIX = "agent:";
const AGENT_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/**
 * Issues a join token for one launch attempt of `serverId`, valid for `ttlMs`, and returns its plaintext (for the
 * bootstrap environment only: never log it, never store it). Runs in the caller's transaction when given one.
 */
export async function issueJoinToken(tx: Sql, serverId: string, ttlMs: number, now: Date = new Date()): Promise<string> {
  const token = newJoinToken();
  await repo.insertJoinToken(tx, { id: newId(now.getTime()), serverId, tokenHash: sha256Hex(token), expiresAt: new Date(now.getTime() + ttlMs) });
  return token;
}

export function isJoinToken(token: string): boolean {
  return token.startsWith(JOIN_TOKEN_MARKER);
}

/** The token row id of a join-token principal, or null for any other principal. */
export function joinTokenIdOf(principal: Readonly<Principal>): string | null {
  return principal.kind === "agent" && principal.roles.includes(AGENT_JOIN_ROLE) && principal.id.startsWith(JOIN_PRINCIPAL_PREFIX) ? principal.id.slice(JOIN_PRINCIPAL_PREFIX.length) : null;
}

/** The agent id a renewing principal claims (RenewAgent proves it), or null for any other principal. */
export function renewingAgentIdOf(principal: Readonly<Principal>): string | null {
  return principal.kind === "agent" && principal.roles.includes(AGENT_RENEW_ROLE) && principal.id.startsWith(RENEW_PRINCIPAL_PREFIX) ? principal.id.slice(RENEW_PRINCIPAL_PREFIX.length) : null;
}

/**
 * An authenticator that maps `Bearer dar_<agent id>` to an "agent-renew" principal claiming that agent (a claim only:
 * RenewAgent, the one method it may call, verifies the request's signature against the agent's certified key), and
 * `Bearer <join token>` to an "agent-join" principal when the token is known, unused and
 * unexpired, and hands every other token to `next` (API keys). The token is consumed by Register itself, in the
 * transaction that records the agent, so two registrations racing with one token cannot both succeed.
 */
export function withJoinTokens(sql: Sql, next: Authenticate, now: () => Date = () => new Date()): Authenticate {
  return async (token, peer) => {
    if (token.startsWith(RENEWAL_TOKEN_MARKER)) {
      const agentId = token.slice(RENEWAL_TOKEN_MARKER.length);
      return AGENT_ID.test(agentId) ? { id: `${RENEW_PRINCIPAL_PREFIX}${agentId}`, kind: "agent", roles: [AGENT_RENEW_ROLE], displayName: `agent ${agentId} (renewing)` } : null;
    }
    if (!isJoinToken(token)) return next(token, peer);
    const hash = sha256Hex(token);
    const row = await repo.findJoinTokenByHash(sql, hash);
    // The index finds the row by hash (nothing an attacker learns from its timing: they cannot choose hashes); the
    // comparison that admits the caller is constant-time.
    if (!row || !secretsEqual(row.tokenHash, hash) || row.usedAt !== null || row.expiresAt.getTime() <= now().getTime()) return null;
    return { id: `${JOIN_PRINCIPAL_PREFIX}${row.id}`, kind: "agent", roles: [AGENT_JOIN_ROLE], displayName: `agent joining server ${row.serverId}` };
  };
}
