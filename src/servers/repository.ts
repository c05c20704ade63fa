// Data access for servers, their events and the discovered catalog (regions, subscriptions, products, images), on the
// mariadb `sql` pool: every function takes the pool or the caller's transaction.
import type { ServerState } from "../clouds/driver.js";
import { sqlFragment, sqlJoin, type Sql, type SqlFragment } from "../db/sql.js";
import type { AccountRegion, AgentState, CatalogImage, CatalogProduct, Server, ServerEvent, ServerOrigin } from "./model.js";

const SERVER_COLUMNS = sqlFragment`
  id, account_id AS accountId, region_id AS regionId, data_center AS dataCenter, provider_id AS providerId, name,
  product_id AS productId, image_id AS imageId, budget_code AS budgetCode, state, origin, addresses, details,
  hourly_price_micros AS hourlyPriceMicros, accrues_when_stopped AS accruesWhenStopped, agent_state AS agentState,
  launched_at AS launchedAt, terminated_at AS terminatedAt, state_changed_at AS stateChangedAt, created_by AS createdBy,
  version, created_at AS createdAt, updated_at AS updatedAt, tags`;

interface ServerRow {
  id: string;
  accountId: string;
  regionId: string;
  dataCenter: string;
  providerId: string | null;
  name: string;
  productId: string;
  imageId: string;
  budgetCode: string;
  state: ServerState;
  origin: ServerOrigin;
  addresses: unknown;
  details: unknown;
  tags: unknown;
  hourlyPriceMicros: bigint | number | string;
  accruesWhenStopped: number | boolean;
  agentState: AgentState;
  launchedAt: Date | null;
  terminatedAt: Date | null;
  stateChangedAt: Date;
  createdBy: string;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/** JSON columns arrive parsed or as text, depending on the driver's view of the column. */
function json(value: unknown): unknown {
  if (typeof value !== "string") return value ?? null;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return null;
  }
}

function stringList(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

function stringMap(v: unknown): Record<string, string> {
  if (!v || typeof v !== "object" || Array.isArray(v)) return {};
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, typeof x === "string" ? x : JSON.stringify(x)]));
}

export function rowToServer(r: ServerRow): Server {
  const addresses = json(r.addresses) as { private?: unknown; public?: unknown } | null;
  return {
    ...r,
    addresses: { private: stringList(addresses?.private), public: stringList(addresses?.public) },
    details: stringMap(json(r.details)),
    tags: stringMap(json(r.tags)),
    hourlyPriceMicros: BigInt(r.hourlyPriceMicros),
    accruesWhenStopped: Boolean(Number(r.accruesWhenStopped)),
    version: Number(r.version),
  };
}

/** The server; with `lock`, its row stays locked (FOR UPDATE) until the caller's transaction ends. */
export async function findServer(sql: Sql, id: string, lock = false): Promise<Server | null> {
  const rows = await sql.query<ServerRow>`SELECT ${SERVER_COLUMNS} FROM servers WHERE id = ${id} ${lock ? sqlFragment`FOR UPDATE` : sqlFragment``}`;
  return rows[0] ? rowToServer(rows[0]) : null;
}

/** Every server of the account in the region that is not TERMINATED, locked, for discovery to compare with. */
export async function lockLiveServers(tx: Sql, accountId: string, regionId: string): Promise<Server[]> {
  const rows = await tx.query<ServerRow>`
    SELECT ${SERVER_COLUMNS} FROM servers
     WHERE account_id = ${accountId} AND region_id = ${regionId} AND state <> 'TERMINATED' ORDER BY id FOR UPDATE`;
  return rows.map(rowToServer);
}

/** Servers of the account with these provider ids (any state), locked. */
export async function lockServersByProviderId(tx: Sql, accountId: string, providerIds: readonly string[]): Promise<Server[]> {
  if (providerIds.length === 0) return [];
  const rows = await tx.query<ServerRow>`SELECT ${SERVER_COLUMNS} FROM servers WHERE account_id = ${accountId} AND provider_id IN (${providerIds}) FOR UPDATE`;
  return rows.map(rowToServer);
}

export interface ServerFilter {
  /** Object scope: only these accounts (undefined: every account). */
  accountIds?: readonly string[] | undefined;
  accountId?: string | undefined;
  regionId?: string | undefined;
  state?: ServerState | undefined;
  budgetCode?: string | undefined;
  agentState?: AgentState | undefined;
  /** Every one of these tags, with exactly these values. */
  tags?: Readonly<Record<string, string>> | undefined;
  afterId?: string | undefined;
  limit: number;
}

/** Servers in id order (oldest first) after `afterId`, at most `limit`. */
export async function listServers(sql: Sql, f: ServerFilter): Promise<Server[]> {
  if (f.accountIds && f.accountIds.length === 0) return [];
  const rows = await sql.query<ServerRow>`${listServersStatement(f)}`;
  return rows.map(rowToServer);
}

/**
 * The index a page of servers is read through: one that leads with an equality filter and ends in the id, so the page
 * is a range read in id order. Left to itself the optimizer walks the primary key for ORDER BY id LIMIT n and filters
 * as it goes, which reads the whole table for an account (or state) with few servers among many.
 */
function listServersIndex(f: ServerFilter): SqlFragment {
  if (f.accountId) return sqlFragment`FORCE INDEX (servers_account_id_id_idx)`;
  if (f.state) return sqlFragment`FORCE INDEX (servers_state_idx)`;
  if (f.agentState) return sqlFragment`FORCE INDEX (servers_agent_state_idx)`;
  if (f.budgetCode) return sqlFragment`FORCE INDEX (servers_budget_code_idx)`;
  return sqlFragment``;
}

/** The statement of listServers (a filter with at least one account when it names accounts). */
export function listServersStatement(f: ServerFilter): SqlFragment {
  const where: SqlFragment[] = [sqlFragment`1 = 1`];
  if (f.accountIds) where.push(sqlFragment`account_id IN (${f.accountIds})`);
  if (f.accountId) where.push(sqlFragment`account_id = ${f.accountId}`);
  if (f.regionId) where.push(sqlFragment`region_id = ${f.regionId}`);
  if (f.state) where.push(sqlFragment`state = ${f.state}`);
  if (f.budgetCode) where.push(sqlFragment`budget_code = ${f.budgetCode}`);
  if (f.agentState) where.push(sqlFragment`agent_state = ${f.agentState}`);
  for (const [key, value] of Object.entries(f.tags ?? {})) where.push(sqlFragment`JSON_CONTAINS(tags, JSON_OBJECT(${key}, ${value}))`);
  if (f.afterId) where.push(sqlFragment`id > ${f.afterId}`);
  return sqlFragment`SELECT ${SERVER_COLUMNS} FROM servers ${listServersIndex(f)} WHERE ${sqlJoin(where, " AND ")} ORDER BY id LIMIT ${f.limit}`;
}

/** A server row to insert: everything but what the database fills in (agent state, timestamps, version). */
export type NewServer = Omit<Server, "agentState" | "terminatedAt" | "stateChangedAt" | "version" | "createdAt" | "updatedAt">;

export async function insertServer(tx: Sql, s: NewServer): Promise<void> {
  await tx.execute`
    INSERT INTO servers (id, account_id, region_id, data_center, provider_id, name, product_id, image_id, budget_code, state, origin,
                         addresses, details, tags, hourly_price_micros, accrues_when_stopped, agent_state, launched_at, state_changed_at,
                         created_by, version, created_at, updated_at)
    VALUES (${s.id}, ${s.accountId}, ${s.regionId}, ${s.dataCenter}, ${s.providerId}, ${s.name}, ${s.productId}, ${s.imageId}, ${s.budgetCode},
            ${s.state}, ${s.origin}, ${JSON.stringify(s.addresses)}, ${JSON.stringify(s.details)}, ${JSON.stringify(s.tags)}, ${s.hourlyPriceMicros},
            ${s.accruesWhenStopped}, 'NONE', ${s.launchedAt}, NOW(3), ${s.createdBy}, 1, NOW(3), NOW(3))`;
}

export interface NewServerEvent {
  serverId: string;
  type: ServerEvent["type"];
  fromState?: ServerState | null;
  toState?: ServerState | null;
  jobId?: string | null;
  message: string;
  details?: Record<string, unknown> | null;
}

export async function insertServerEvents(tx: Sql, events: readonly NewServerEvent[]): Promise<void> {
  if (events.length === 0) return;
  const rows = events.map(
    (e) => sqlFragment`(${e.serverId}, ${e.type}, ${e.fromState ?? null}, ${e.toState ?? null}, ${e.jobId ?? null}, ${e.message.slice(0, 1024)},
      ${e.details ? JSON.stringify(e.details) : null}, NOW(3))`,
  );
  await tx.execute`INSERT INTO server_events (server_id, type, from_state, to_state, job_id, message, details, created_at) VALUES ${sqlJoin(rows, ", ")}`;
}

interface EventRow {
  id: bigint | number;
  serverId: string;
  type: string;
  fromState: ServerState | null;
  toState: ServerState | null;
  jobId: string | null;
  message: string;
  details: unknown;
  createdAt: Date;
}

const toEvent = (r: EventRow): ServerEvent => {
  const details = json(r.details);
  return { ...r, id: BigInt(r.id), details: details && typeof details === "object" && !Array.isArray(details) ? (details as Record<string, unknown>) : null };
};

/** Events of a server after `afterId`, oldest first. */
export async function listServerEvents(sql: Sql, serverId: string, afterId: bigint, limit: number): Promise<ServerEvent[]> {
  const rows = await sql.query<EventRow>`
    SELECT id, server_id AS serverId, type, from_state AS fromState, to_state AS toState, job_id AS jobId, message, details, created_at AS createdAt
      FROM server_events WHERE server_id = ${serverId} AND id > ${afterId} ORDER BY id LIMIT ${limit}`;
  return rows.map(toEvent);
}

/** The newest event of this type a job wrote for a server. */
export async function findJobEvent(sql: Sql, serverId: string, jobId: string, type: ServerEvent["type"]): Promise<ServerEvent | null> {
  const rows = await sql.query<EventRow>`
    SELECT id, server_id AS serverId, type, from_state AS fromState, to_state AS toState, job_id AS jobId, message, details, created_at AS createdAt
      FROM server_events WHERE server_id = ${serverId} AND job_id = ${jobId} AND type = ${type} ORDER BY id DESC LIMIT 1`;
  return rows[0] ? toEvent(rows[0]) : null;
}

/** Whether the server went through `state` (by any cause) after event `afterId`. */
export async function sawStateSince(sql: Sql, serverId: string, afterId: bigint, states: readonly ServerState[]): Promise<boolean> {
  const rows = await sql.query<{ n: number }>`
    SELECT 1 AS n FROM server_events WHERE server_id = ${serverId} AND id > ${afterId} AND type = 'STATE_CHANGED' AND to_state IN (${states}) LIMIT 1`;
  return rows.length > 0;
}

/** Lifecycle jobs of the server still QUEUED or RUNNING, other than `exceptJobId`. */
export async function activeJobs(sql: Sql, serverId: string, exceptJobId: string | null): Promise<{ id: string; kind: string }[]> {
  return sql.query<{ id: string; kind: string }>`
    SELECT id, kind FROM jobs
     WHERE resource_type = 'server' AND resource_id = ${serverId} AND state IN ('QUEUED', 'RUNNING') AND id <> ${exceptJobId ?? ""}`;
}

// ---- accounts and their discovered catalog ----

export interface LaunchAccount {
  id: string;
  status: "PENDING" | "ACTIVE" | "FAILED" | "DISABLED";
  defaultBudgetCode: string | null;
}

export async function findAccount(sql: Sql, id: string): Promise<LaunchAccount | null> {
  const rows = await sql.query<LaunchAccount>`SELECT id, status, default_budget_code AS defaultBudgetCode FROM accounts WHERE id = ${id}`;
  return rows[0] ?? null;
}

interface RegionRow {
  id: string;
  name: string;
  dataCenters: unknown;
}

const toRegion = (r: RegionRow): AccountRegion => ({ id: r.id, name: r.name, dataCenters: stringList(json(r.dataCenters)) });

export async function findRegion(sql: Sql, accountId: string, regionId: string): Promise<AccountRegion | null> {
  const rows = await sql.query<RegionRow>`
    SELECT region_id AS id, name, data_centers AS dataCenters FROM account_regions WHERE account_id = ${accountId} AND region_id = ${regionId}`;
  return rows[0] ? toRegion(rows[0]) : null;
}

export async function listRegions(sql: Sql, accountId: string): Promise<AccountRegion[]> {
  const rows = await sql.query<RegionRow>`
    SELECT region_id AS id, name, data_centers AS dataCenters FROM account_regions WHERE account_id = ${accountId} ORDER BY position, region_id`;
  return rows.map(toRegion);
}

export async function hasCapability(sql: Sql, accountId: string, regionId: string, capability: string): Promise<boolean> {
  const rows = await sql.query<{ n: number }>`
    SELECT 1 AS n FROM subscriptions WHERE account_id = ${accountId} AND region_id = ${regionId} AND capability = ${capability}`;
  return rows.length > 0;
}

interface ProductRow {
  id: string;
  name: string;
  cpus: number;
  memoryMb: number;
  diskGb: number;
  hourlyPriceMicros: bigint | number | string;
  accruesWhenStopped: number | boolean;
}

const PRODUCT_COLUMNS = sqlFragment`product_id AS id, name, cpus, memory_mb AS memoryMb, disk_gb AS diskGb, hourly_price_micros AS hourlyPriceMicros, accrues_when_stopped AS accruesWhenStopped`;

const toProduct = (r: ProductRow): CatalogProduct => ({
  id: r.id,
  name: r.name,
  cpus: Number(r.cpus),
  memoryMb: Number(r.memoryMb),
  diskGb: Number(r.diskGb),
  hourlyPriceMicros: BigInt(r.hourlyPriceMicros),
  accruesWhenStopped: Boolean(Number(r.accruesWhenStopped)),
});

export async function findProduct(sql: Sql, accountId: string, regionId: string, productId: string): Promise<CatalogProduct | null> {
  const rows = await sql.query<ProductRow>`
    SELECT ${PRODUCT_COLUMNS} FROM catalog_products WHERE account_id = ${accountId} AND region_id = ${regionId} AND product_id = ${productId}`;
  return rows[0] ? toProduct(rows[0]) : null;
}

export async function listProducts(sql: Sql, accountId: string, regionId: string): Promise<CatalogProduct[]> {
  const rows = await sql.query<ProductRow>`SELECT ${PRODUCT_COLUMNS} FROM catalog_products WHERE account_id = ${accountId} AND region_id = ${regionId} ORDER BY product_id`;
  return rows.map(toProduct);
}

/**
 * A catalog image, or else one of the account's own AVAILABLE machine images (src/storage), named by the dispatcher's
 * id or the provider's; its id is the provider's either way, which is what the driver launches.
 */
export async function findImage(sql: Sql, accountId: string, regionId: string, imageId: string): Promise<CatalogImage | null> {
  const rows = await sql.query<CatalogImage>`
    SELECT image_id AS id, name, platform FROM catalog_images WHERE account_id = ${accountId} AND region_id = ${regionId} AND image_id = ${imageId}`;
  if (rows[0]) return rows[0];
  const own = await sql.query<{ id: string; name: string; platform: string | null }>`
    SELECT provider_id AS id, name, JSON_UNQUOTE(JSON_EXTRACT(details, '$.platform')) AS platform FROM resources
     WHERE account_id = ${accountId} AND region_id = ${regionId} AND type = 'image' AND state = 'AVAILABLE' AND provider_id IS NOT NULL
       AND (id = ${imageId} OR provider_id = ${imageId}) LIMIT 1`;
  return own[0] ? { id: own[0].id, name: own[0].name, platform: own[0].platform ?? "linux" } : null;
}

export async function listImages(sql: Sql, accountId: string, regionId: string): Promise<CatalogImage[]> {
  return sql.query<CatalogImage>`SELECT image_id AS id, name, platform FROM catalog_images WHERE account_id = ${accountId} AND region_id = ${regionId} ORDER BY image_id`;
}

export async function insertBudgetEvent(tx: Sql, e: { code: string; type: string; jobId: string | null; message: string; details?: Record<string, unknown> }): Promise<void> {
  await tx.execute`
    INSERT INTO budget_events (code, type, job_id, message, details, created_at)
    VALUES (${e.code}, ${e.type}, ${e.jobId}, ${e.message.slice(0, 1024)}, ${e.details ? JSON.stringify(e.details) : null}, NOW(3))`;
}

/**
 * Up to `limit` servers TERMINATED before `before`, terminated longest ago first, locked until the caller's transaction
 * ends (SKIP LOCKED: another monitor's batch takes others).
 */
export async function lockServersTerminatedBefore(tx: Sql, before: Date, limit: number): Promise<string[]> {
  const rows = await tx.query<{ id: string }>`
    SELECT id FROM servers FORCE INDEX (servers_state_state_changed_at_idx)
     WHERE state = 'TERMINATED' AND state_changed_at < ${before} ORDER BY state_changed_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`;
  return rows.map((r) => r.id);
}

/** Deletes these servers and their events; answers servers and events deleted. */
export async function deleteServersWithEvents(tx: Sql, ids: readonly string[]): Promise<{ servers: number; events: number }> {
  if (ids.length === 0) return { servers: 0, events: 0 };
  const events = await tx.execute`DELETE FROM server_events WHERE server_id IN (${ids})`;
  return { servers: await tx.execute`DELETE FROM servers WHERE id IN (${ids})`, events };
}
