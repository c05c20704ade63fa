// Data access for the generic resource inventory and its history, on the mariadb `sql` pool: every function takes
// the pool or the caller's transaction.
import { sqlFragment, sqlJoin, type Sql, type SqlFragment } from "../db/sql.js";
import type { ResourceType } from "../clouds/resources.js";
import { DELETED, type Resource, type ResourceEvent, type ResourceEventType, type ResourceOrigin } from "./model.js";

const COLUMNS = sqlFragment`
  id, account_id AS accountId, region_id AS regionId, type, provider_id AS providerId, name, state, origin,
  budget_code AS budgetCode, tags, details, client_token AS clientToken, hourly_price_micros AS hourlyPriceMicros,
  created_by AS createdBy, version, state_changed_at AS stateChangedAt, deleted_at AS deletedAt, created_at AS createdAt,
  updated_at AS updatedAt`;

interface Row extends Omit<Resource, "tags" | "details" | "hourlyPriceMicros" | "version"> {
  tags: unknown;
  details: unknown;
  hourlyPriceMicros: bigint | number | string;
  version: number | bigint;
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

export function stringMap(v: unknown): Record<string, string> {
  const parsed = json(v);
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return {};
  return Object.fromEntries(Object.entries(parsed as Record<string, unknown>).map(([k, x]) => [k, typeof x === "string" ? x : JSON.stringify(x)]));
}

const toResource = (r: Row): Resource => ({
  ...r,
  tags: stringMap(r.tags),
  details: stringMap(r.details),
  hourlyPriceMicros: BigInt(r.hourlyPriceMicros),
  version: Number(r.version),
});

/** The resource; with `lock`, its row stays locked (FOR UPDATE) until the caller's transaction ends. */
export async function findResource(sql: Sql, id: string, lock = false): Promise<Resource | null> {
  const rows = await sql.query<Row>`SELECT ${COLUMNS} FROM resources WHERE id = ${id} ${lock ? sqlFragment`FOR UPDATE` : sqlFragment``}`;
  return rows[0] ? toResource(rows[0]) : null;
}

/** The account's resources of a type in a region that are not DELETED, locked, for discovery to compare with. */
export async function lockLiveResources(tx: Sql, accountId: string, type: ResourceType, regionId: string): Promise<Resource[]> {
  const rows = await tx.query<Row>`
    SELECT ${COLUMNS} FROM resources
     WHERE account_id = ${accountId} AND type = ${type} AND region_id = ${regionId} AND state <> ${DELETED} ORDER BY id FOR UPDATE`;
  return rows.map(toResource);
}

/** Resources of the account and type with these provider ids (any state), locked. */
export async function lockByProviderId(tx: Sql, accountId: string, type: ResourceType, providerIds: readonly string[]): Promise<Resource[]> {
  if (providerIds.length === 0) return [];
  const rows = await tx.query<Row>`SELECT ${COLUMNS} FROM resources WHERE account_id = ${accountId} AND type = ${type} AND provider_id IN (${providerIds}) FOR UPDATE`;
  return rows.map(toResource);
}

/** The live resource of the account and type with this provider id (e.g. a firewall a launch names), or null. */
export async function findByProviderId(sql: Sql, accountId: string, type: ResourceType, providerId: string): Promise<Resource | null> {
  const rows = await sql.query<Row>`
    SELECT ${COLUMNS} FROM resources WHERE account_id = ${accountId} AND type = ${type} AND provider_id = ${providerId} AND state <> ${DELETED}`;
  return rows[0] ? toResource(rows[0]) : null;
}

export interface ResourceFilter {
  type: ResourceType;
  /** Object scope: only these accounts (undefined: every account). */
  accountIds?: readonly string[] | undefined;
  accountId?: string | undefined;
  regionId?: string | undefined;
  state?: string | undefined;
  /** Every one of these tags, with exactly these values. */
  tags?: Readonly<Record<string, string>> | undefined;
  includeDeleted?: boolean | undefined;
  afterId?: string | undefined;
  limit: number;
}

/** Resources of one type in id order (oldest first) after `afterId`, at most `limit`. */
export async function listResources(sql: Sql, f: ResourceFilter): Promise<Resource[]> {
  if (f.accountIds && f.accountIds.length === 0) return [];
  const where: SqlFragment[] = [sqlFragment`type = ${f.type}`];
  if (f.accountIds) where.push(sqlFragment`account_id IN (${f.accountIds})`);
  if (f.accountId) where.push(sqlFragment`account_id = ${f.accountId}`);
  if (f.regionId) where.push(sqlFragment`region_id = ${f.regionId}`);
  if (f.state) where.push(sqlFragment`state = ${f.state}`);
  else if (!f.includeDeleted) where.push(sqlFragment`state <> ${DELETED}`);
  // JSON_CONTAINS of a one-key object: the key is there with that value. Keys and values stay bound parameters.
  for (const [key, value] of Object.entries(f.tags ?? {})) where.push(sqlFragment`JSON_CONTAINS(tags, JSON_OBJECT(${key}, ${value}))`);
  if (f.afterId) where.push(sqlFragment`id > ${f.afterId}`);
  const rows = await sql.query<Row>`SELECT ${COLUMNS} FROM resources WHERE ${sqlJoin(where, " AND ")} ORDER BY id LIMIT ${f.limit}`;
  return rows.map(toResource);
}

/** A resource row to insert: everything but what the database fills in. */
export type NewResource = Omit<Resource, "version" | "stateChangedAt" | "deletedAt" | "createdAt" | "updatedAt">;

export async function insertResource(tx: Sql, r: NewResource): Promise<void> {
  await tx.execute`
    INSERT INTO resources (id, account_id, region_id, type, provider_id, name, state, origin, budget_code, tags, details, client_token,
                           hourly_price_micros, created_by, version, state_changed_at, created_at, updated_at)
    VALUES (${r.id}, ${r.accountId}, ${r.regionId}, ${r.type}, ${r.providerId}, ${r.name.slice(0, 255)}, ${r.state}, ${r.origin}, ${r.budgetCode},
            ${JSON.stringify(r.tags)}, ${JSON.stringify(r.details)}, ${r.clientToken}, ${r.hourlyPriceMicros}, ${r.createdBy}, 1, NOW(3), NOW(3), NOW(3))`;
}

/** What an observation (or a tag change) changes on a row; absent fields stay. Bumps the version. */
export interface ResourceChange {
  providerId?: string;
  name?: string;
  state?: string;
  tags?: Record<string, string>;
  details?: Record<string, string>;
  hourlyPriceMicros?: bigint;
}

export async function updateResource(tx: Sql, id: string, c: ResourceChange): Promise<void> {
  const sets: SqlFragment[] = [sqlFragment`version = version + 1`, sqlFragment`updated_at = NOW(3)`];
  if (c.providerId !== undefined) sets.push(sqlFragment`provider_id = ${c.providerId}`);
  if (c.name !== undefined) sets.push(sqlFragment`name = ${c.name.slice(0, 255)}`);
  if (c.state !== undefined) {
    sets.push(sqlFragment`state = ${c.state}`, sqlFragment`state_changed_at = NOW(3)`);
    sets.push(c.state === DELETED ? sqlFragment`deleted_at = COALESCE(deleted_at, NOW(3))` : sqlFragment`deleted_at = NULL`);
  }
  if (c.tags !== undefined) sets.push(sqlFragment`tags = ${JSON.stringify(c.tags)}`);
  if (c.details !== undefined) sets.push(sqlFragment`details = ${JSON.stringify(c.details)}`);
  if (c.hourlyPriceMicros !== undefined) sets.push(sqlFragment`hourly_price_micros = ${c.hourlyPriceMicros}`);
  await tx.execute`UPDATE resources SET ${sqlJoin(sets, ", ")} WHERE id = ${id}`;
}

export interface NewResourceEvent {
  resourceId: string;
  type: ResourceEventType;
  fromState?: string | null;
  toState?: string | null;
  jobId?: string | null;
  message: string;
  details?: Record<string, unknown> | null;
}

export async function insertResourceEvents(tx: Sql, events: readonly NewResourceEvent[]): Promise<void> {
  if (events.length === 0) return;
  const rows = events.map(
    (e) => sqlFragment`(${e.resourceId}, ${e.type}, ${e.fromState ?? null}, ${e.toState ?? null}, ${e.jobId ?? null}, ${e.message.slice(0, 1024)},
      ${e.details ? JSON.stringify(e.details) : null}, NOW(3))`,
  );
  await tx.execute`INSERT INTO resource_events (resource_id, type, from_state, to_state, job_id, message, details, created_at) VALUES ${sqlJoin(rows, ", ")}`;
}

interface EventRow extends Omit<ResourceEvent, "id" | "details"> {
  id: bigint | number;
  details: unknown;
}

const EVENT_COLUMNS = sqlFragment`id, resource_id AS resourceId, type, from_state AS fromState, to_state AS toState, job_id AS jobId, message, details, created_at AS createdAt`;

const toEvent = (r: EventRow): ResourceEvent => {
  const details = json(r.details);
  return { ...r, id: BigInt(r.id), details: details && typeof details === "object" && !Array.isArray(details) ? (details as Record<string, unknown>) : null };
};

/** Events of a resource after `afterId`, oldest first. */
export async function listResourceEvents(sql: Sql, resourceId: string, afterId: bigint, limit: number): Promise<ResourceEvent[]> {
  const rows = await sql.query<EventRow>`SELECT ${EVENT_COLUMNS} FROM resource_events WHERE resource_id = ${resourceId} AND id > ${afterId} ORDER BY id LIMIT ${limit}`;
  return rows.map(toEvent);
}

/** Jobs on the resource still QUEUED or RUNNING, other than `exceptJobId`. */
export async function activeJobs(sql: Sql, resource: { type: ResourceType; id: string }, exceptJobId: string | null): Promise<{ id: string; kind: string }[]> {
  return sql.query<{ id: string; kind: string }>`
    SELECT id, kind FROM jobs
     WHERE resource_type = ${resource.type} AND resource_id = ${resource.id} AND state IN ('QUEUED', 'RUNNING') AND id <> ${exceptJobId ?? ""}`;
}

export type { ResourceOrigin };

/**
 * Up to `limit` resources DELETED before `before`, deleted longest ago first, locked until the caller's transaction
 * ends (SKIP LOCKED: another monitor's batch takes others).
 */
export async function lockResourcesDeletedBefore(tx: Sql, before: Date, limit: number): Promise<string[]> {
  const rows = await tx.query<{ id: string }>`
    SELECT id FROM resources FORCE INDEX (resources_state_state_changed_at_idx)
     WHERE state = ${DELETED} AND state_changed_at < ${before} ORDER BY state_changed_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`;
  return rows.map((r) => r.id);
}

/** Deletes these resources and their events; answers resources and events deleted. */
export async function deleteResourcesWithEvents(tx: Sql, ids: readonly string[]): Promise<{ resources: number; events: number }> {
  if (ids.length === 0) return { resources: 0, events: 0 };
  const events = await tx.execute`DELETE FROM resource_events WHERE resource_id IN (${ids})`;
  return { resources: await tx.execute`DELETE FROM resources WHERE id IN (${ids})`, events };
}
