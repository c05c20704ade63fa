// The servers a fleet command addresses: by ids, or by account (and region, name prefix), each with whether its agent
// can take a command; and the agents its held children will call. Small reads over `Sql`.
import { sqlFragment, sqlJoin, type Sql, type SqlFragment } from "../db/sql.js";
import { AGENT_WITH_SERVER_COLUMNS, agentWithServer, type AgentWithServer } from "./repository.js";

export interface FleetServer {
  id: string;
  accountId: string;
  state: string;
  /** The agent's connection state, or null when no agent registered. */
  agentState: string | null;
}

const COLUMNS = sqlFragment`s.id, s.account_id AS accountId, s.state, a.state AS agentState`;

/** The servers among `ids` that exist (in no particular order). */
export async function findFleetServers(sql: Sql, ids: readonly string[]): Promise<FleetServer[]> {
  if (ids.length === 0) return [];
  return sql.query<FleetServer>`SELECT ${COLUMNS} FROM servers s LEFT JOIN agents a ON a.server_id = s.id WHERE s.id IN (${ids})`;
}

export interface FleetSelector {
  accountId: string;
  regionId?: string | undefined;
  namePrefix?: string | undefined;
  /** Every one of these tags, with exactly these values. */
  tags?: Readonly<Record<string, string>> | undefined;
}

/**
 * Servers of the selector's account (and region, name prefix and tags) that are not terminated and have an agent that is
 * not gone, in id order; at most `limit`.
 */
export async function selectFleetServers(sql: Sql, selector: FleetSelector, limit: number): Promise<FleetServer[]> {
  const where: SqlFragment[] = [sqlFragment`s.account_id = ${selector.accountId}`, sqlFragment`s.state NOT IN ('TERMINATED', 'TERMINATING')`, sqlFragment`a.state <> 'GONE'`];
  if (selector.regionId) where.push(sqlFragment`s.region_id = ${selector.regionId}`);
  if (selector.namePrefix) where.push(sqlFragment`s.name LIKE ${`${escapeLike(selector.namePrefix)}%`}`);
  for (const [key, value] of Object.entries(selector.tags ?? {})) where.push(sqlFragment`JSON_CONTAINS(s.tags, JSON_OBJECT(${key}, ${value}))`);
  return sql.query<FleetServer>`
    SELECT ${COLUMNS} FROM servers s JOIN agents a ON a.server_id = s.id WHERE ${sqlJoin(where, " AND ")} ORDER BY s.id LIMIT ${limit}`;
}

/** A LIKE pattern matching `text` literally. */
function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export async function accountExists(sql: Sql, accountId: string): Promise<boolean> {
  const rows = await sql.query<{ id: string }>`SELECT id FROM accounts WHERE id = ${accountId}`;
  return rows.length > 0;
}

/**
 * The agent (with its server) of each held child of `parentId`, in the order the parent releases them (id order);
 * null for a child whose server has no agent.
 */
export async function heldChildAgents(sql: Sql, parentId: string): Promise<(AgentWithServer | null)[]> {
  const rows = await sql.query<Parameters<typeof agentWithServer>[0]>`
    SELECT ${AGENT_WITH_SERVER_COLUMNS} FROM jobs j LEFT JOIN agents a ON a.server_id = j.resource_id LEFT JOIN servers s ON s.id = a.server_id
     WHERE j.parent_id = ${parentId} AND j.held = 1 AND j.state = 'QUEUED' ORDER BY j.id`;
  return rows.map((r) => (r.id === null ? null : agentWithServer(r)));
}
