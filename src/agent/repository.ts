// Data access for join tokens, agents and the agent columns of servers: small functions over `Sql`, each taking the
// pool or a transaction.
import { SqlFragment, type Sql, type SqlPool } from "../db/sql.js";

export type AgentConnectionState = "CONNECTED" | "UNREACHABLE" | "GONE";

export interface AgentRow {
  id: string;
  serverId: string;
  credentialHash: string;
  version: string;
  hostname: string;
  address: string;
  port: number;
  state: AgentConnectionState;
  missedPings: number;
  lastSeenAt: Date | null;
  nextPingAt: Date;
  registeredAt: Date;
  /** Mutual TLS: the certified key (SPKI, base64 DER) and the certificates the dispatcher accepts for the agent. */
  publicKey: string | null;
  certSha256: string | null;
  prevCertSha256: string | null;
  certNotAfter: Date | null;
  signedAtMs: bigint | number | null;
}

const AGENT_COLUMNS = new SqlFragment(
  [`id, server_id AS serverId, credential_hash AS credentialHash, version, hostname, address, port, state, missed_pings AS missedPings,
    last_seen_at AS lastSeenAt, next_ping_at AS nextPingAt, registered_at AS registeredAt, public_key AS publicKey, cert_sha256 AS certSha256,
    prev_cert_sha256 AS prevCertSha256, cert_not_after AS certNotAfter, signed_at_ms AS signedAtMs`],
  [],
);

export interface JoinTokenRow {
  id: string;
  tokenHash: string;
  serverId: string;
  expiresAt: Date;
  usedAt: Date | null;
}

export async function insertJoinToken(tx: Sql, row: { id: string; serverId: string; tokenHash: string; expiresAt: Date }): Promise<void> {
  await tx.execute`INSERT INTO agent_join_tokens (id, server_id, token_hash, expires_at, created_at)
                   VALUES (${row.id}, ${row.serverId}, ${row.tokenHash}, ${row.expiresAt}, NOW(3))`;
}

export async function findJoinTokenByHash(sql: Sql, tokenHash: string): Promise<JoinTokenRow | null> {
  const rows = await sql.query<JoinTokenRow>`
    SELECT id, token_hash AS tokenHash, server_id AS serverId, expires_at AS expiresAt, used_at AS usedAt FROM agent_join_tokens WHERE token_hash = ${tokenHash}`;
  return rows[0] ?? null;
}

/** Marks the token used by `agentId` if it is still unused and unexpired; false when another use (or time) won. */
export async function consumeJoinToken(tx: Sql, id: string, agentId: string, now: Date): Promise<boolean> {
  const n = await tx.execute`UPDATE agent_join_tokens SET used_at = ${now}, agent_id = ${agentId}
                             WHERE id = ${id} AND used_at IS NULL AND expires_at > ${now}`;
  return n === 1;
}

/** Deletes join tokens that expired before `before` (used or not), a batch at a time; resolves with the count. */
export async function pruneJoinTokens(sql: Sql, before: Date, batch = 10_000): Promise<number> {
  return sql.execute`DELETE FROM agent_join_tokens WHERE expires_at < ${before} LIMIT ${batch}`;
}

export interface ServerForAgent {
  id: string;
  accountId: string;
  state: string;
  agentState: string;
  addresses: unknown;
  details: unknown;
}

export async function findServer(sql: Sql, id: string, forUpdate = false): Promise<ServerForAgent | null> {
  const rows = forUpdate
    ? await sql.query<ServerForAgent>`SELECT id, account_id AS accountId, state, agent_state AS agentState, addresses, details FROM servers WHERE id = ${id} FOR UPDATE`
    : await sql.query<ServerForAgent>`SELECT id, account_id AS accountId, state, agent_state AS agentState, addresses, details FROM servers WHERE id = ${id}`;
  return rows[0] ?? null;
}

/** Replaces the server's agent (a new registration supersedes the previous one, whose credential then stops working). */
export async function replaceAgent(tx: Sql, row: Omit<AgentRow, "state" | "missedPings" | "registeredAt" | "prevCertSha256" | "signedAtMs">): Promise<void> {
  await tx.execute`DELETE FROM agents WHERE server_id = ${row.serverId}`;
  await tx.execute`
    INSERT INTO agents (id, server_id, credential_hash, version, hostname, address, port, state, missed_pings, last_seen_at,
                        next_ping_at, registered_at, updated_at, public_key, cert_sha256, cert_not_after)
    VALUES (${row.id}, ${row.serverId}, ${row.credentialHash}, ${row.version}, ${row.hostname}, ${row.address}, ${row.port},
            'CONNECTED', 0, ${row.lastSeenAt}, ${row.nextPingAt}, NOW(3), NOW(3), ${row.publicKey}, ${row.certSha256}, ${row.certNotAfter})`;
}

/**
 * Records a renewal: the new key and certificate (the current one stays accepted as the previous), the endpoint, and
 * the request's signing time — only if that is later than the last one accepted (a replay loses) and the agent is not
 * GONE. False when it lost.
 */
export async function renewAgent(tx: Sql, r: { id: string; address: string; port: number; publicKey: string; certSha256: string; certNotAfter: Date; signedAtMs: number; nextPingAt: Date }): Promise<boolean> {
  const n = await tx.execute`
    UPDATE agents SET address = ${r.address}, port = ${r.port}, public_key = ${r.publicKey}, prev_cert_sha256 = cert_sha256, cert_sha256 = ${r.certSha256},
                      cert_not_after = ${r.certNotAfter}, signed_at_ms = ${r.signedAtMs}, next_ping_at = ${r.nextPingAt}, updated_at = NOW(3)
     WHERE id = ${r.id} AND state <> 'GONE' AND (signed_at_ms IS NULL OR signed_at_ms < ${r.signedAtMs})`;
  return n === 1;
}

export async function findAgentByServer(sql: Sql, serverId: string): Promise<AgentRow | null> {
  const rows = await sql.query<AgentRow>`SELECT ${AGENT_COLUMNS} FROM agents WHERE server_id = ${serverId}`;
  return rows[0] ?? null;
}

/** The agent of a server and the server as its driver observed it, in one read (agent.run_script's first step). */
/** An agent with its server (null when the server row is gone), as an agent call checks them. */
export interface AgentWithServer {
  agent: AgentRow;
  server: ServerForAgent | null;
}

type AgentWithServerRow = AgentRow & { sId: string | null; sAccountId: string; sState: string; sAgentState: string; sAddresses: unknown; sDetails: unknown };

/** The columns of an AgentWithServerRow, from `agents a LEFT JOIN servers s`. */
export const AGENT_WITH_SERVER_COLUMNS = new SqlFragment(
  [`a.id, a.server_id AS serverId, a.credential_hash AS credentialHash, a.version, a.hostname, a.address, a.port, a.state,
    a.missed_pings AS missedPings, a.last_seen_at AS lastSeenAt, a.next_ping_at AS nextPingAt, a.registered_at AS registeredAt,
    a.public_key AS publicKey, a.cert_sha256 AS certSha256, a.prev_cert_sha256 AS prevCertSha256, a.cert_not_after AS certNotAfter,
    a.signed_at_ms AS signedAtMs, s.id AS sId, s.account_id AS sAccountId, s.state AS sState, s.agent_state AS sAgentState,
    s.addresses AS sAddresses, s.details AS sDetails`],
  [],
);

export function agentWithServer(row: AgentWithServerRow): AgentWithServer {
  const { sId, sAccountId, sState, sAgentState, sAddresses, sDetails, ...agent } = row;
  return { agent, server: sId === null ? null : { id: sId, accountId: sAccountId, state: sState, agentState: sAgentState, addresses: sAddresses, details: sDetails } };
}

export async function findAgentWithServer(sql: Sql, serverId: string): Promise<AgentWithServer | null> {
  const rows = await sql.query<AgentWithServerRow>`
    SELECT ${AGENT_WITH_SERVER_COLUMNS} FROM agents a LEFT JOIN servers s ON s.id = a.server_id WHERE a.server_id = ${serverId}`;
  const row = rows[0];
  return row ? agentWithServer(row) : null;
}

export async function findAgent(sql: Sql, id: string): Promise<AgentRow | null> {
  const rows = await sql.query<AgentRow>`SELECT ${AGENT_COLUMNS} FROM agents WHERE id = ${id}`;
  return rows[0] ?? null;
}

/** Agents due for a ping (not GONE), oldest due first. */

/**
 * Claims up to `limit` agents due for a ping by moving their next ping to `next` in one transaction: UNREACHABLE ones
 * first (few, and their answer is news), then CONNECTED ones, each oldest due first. Rows another monitor replica is
 * claiming are skipped (SKIP LOCKED), so replicas share the work and never ping twice. One state per statement reads
 * the (state, next_ping_at) index in order and locks only the rows it returns; both states in one statement would
 * sort every due row first and lock them all, leaving other replicas nothing while a round claims.
 */
export async function claimDuePings(sql: SqlPool, now: Date, next: Date, limit: number): Promise<AgentRow[]> {
  return sql.transaction(async (tx) => {
    const due: AgentRow[] = [];
    for (const state of ["UNREACHABLE", "CONNECTED"] as const) {
      if (due.length >= limit) break;
      due.push(...(await tx.query<AgentRow>`
        SELECT ${AGENT_COLUMNS} FROM agents WHERE state = ${state} AND next_ping_at <= ${now}
         ORDER BY next_ping_at LIMIT ${limit - due.length} FOR UPDATE SKIP LOCKED`));
    }
    if (due.length > 0) await tx.execute`UPDATE agents SET next_ping_at = ${next} WHERE id IN (${due.map((a) => a.id)})`;
    return due;
  });
}

/** The servers of these ids as their drivers observed them, by id (one read for a round of pings). */
export async function findServers(sql: Sql, ids: readonly string[]): Promise<Map<string, ServerForAgent>> {
  if (ids.length === 0) return new Map();
  const rows = await sql.query<ServerForAgent>`
    SELECT id, account_id AS accountId, state, agent_state AS agentState, addresses, details FROM servers WHERE id IN (${[...new Set(ids)]})`;
  return new Map(rows.map((r) => [r.id, r]));
}

/**
 * The answered pings of agents that were CONNECTED with no ping missed (nothing about them changes but when they were
 * last seen), in one statement. A row that changed meanwhile (GONE, re-registered) is left alone.
 */
export async function recordAnsweredPings(sql: Sql, agentIds: readonly string[], at: Date): Promise<void> {
  if (agentIds.length === 0) return;
  await sql.execute`
    UPDATE agents SET last_seen_at = ${at}, updated_at = NOW(3) WHERE id IN (${agentIds}) AND state = 'CONNECTED' AND missed_pings = 0`;
}


/** Sets the agent's state and, when it changed, the server's agent_state and a server event, in one transaction. */
export async function recordPing(
  tx: Sql,
  agentId: string,
  outcome: { answered: true; at: Date } | { answered: false; maxMissed: number },
): Promise<{ from: AgentConnectionState; to: AgentConnectionState; serverId: string; missedPings: number } | null> {
  const rows = await tx.query<{ state: AgentConnectionState; serverId: string; missedPings: number }>`
    SELECT state, server_id AS serverId, missed_pings AS missedPings FROM agents WHERE id = ${agentId} FOR UPDATE`;
  const row = rows[0];
  if (!row || row.state === "GONE") return null;
  if (outcome.answered) {
    await tx.execute`UPDATE agents SET state = 'CONNECTED', missed_pings = 0, last_seen_at = ${outcome.at}, updated_at = NOW(3) WHERE id = ${agentId}`;
    return { from: row.state, to: "CONNECTED", serverId: row.serverId, missedPings: 0 };
  }
  const missed = row.missedPings + 1;
  const to: AgentConnectionState = missed >= outcome.maxMissed ? "UNREACHABLE" : row.state;
  await tx.execute`UPDATE agents SET state = ${to}, missed_pings = ${missed}, updated_at = NOW(3) WHERE id = ${agentId}`;
  return { from: row.state, to, serverId: row.serverId, missedPings: missed };
}

export async function setAgentState(tx: Sql, agentId: string, state: AgentConnectionState): Promise<void> {
  await tx.execute`UPDATE agents SET state = ${state}, updated_at = NOW(3) WHERE id = ${agentId}`;
}

/** The server's agent_state column (servers.agent_state: NONE | PENDING | CONNECTED | UNREACHABLE). */
export async function setServerAgentState(tx: Sql, serverId: string, agentState: "NONE" | "PENDING" | "CONNECTED" | "UNREACHABLE"): Promise<void> {
  await tx.execute`UPDATE servers SET agent_state = ${agentState}, updated_at = NOW(3) WHERE id = ${serverId}`;
}

export async function insertServerEvent(tx: Sql, e: { serverId: string; type: string; message: string; details: Record<string, unknown>; jobId?: string | null }): Promise<void> {
  await tx.execute`INSERT INTO server_events (server_id, type, job_id, message, details, created_at)
                   VALUES (${e.serverId}, ${e.type}, ${e.jobId ?? null}, ${e.message.slice(0, 1024)}, ${JSON.stringify(e.details)}, NOW(3))`;
}

/** Deletes the agents of these servers (the inventory's retention, with the servers); answers how many. */
export function deleteAgentsOfServers(tx: Sql, serverIds: readonly string[]): Promise<number> {
  return serverIds.length === 0 ? Promise.resolve(0) : tx.execute`DELETE FROM agents WHERE server_id IN (${serverIds})`;
}
