// Data access for the audit trail (audit_events): append, read, and the retention's delete of the oldest rows, through
// src/db/sql.ts only. The table's triggers refuse every update, and the delete of a row younger than 7 days.
import { sqlFragment, sqlJoin, type Sql, type SqlFragment } from "../db/sql.js";

export interface AuditRow {
  id: bigint;
  time: Date;
  principal: string;
  traceId: string | null;
  action: string;
  objectType: string;
  objectId: string;
  diff: string | null;
}

export interface NewAuditRow {
  principal: string;
  traceId: string;
  action: string;
  objectType: string;
  objectId: string;
  /** JSON of the allow-listed diff; null when nothing allowed changed. */
  diff: string | null;
}

export async function appendAuditRow(db: Sql, row: NewAuditRow): Promise<void> {
  await db.execute`
    INSERT INTO audit_events (principal, trace_id, action, object_type, object_id, diff)
    VALUES (${row.principal.slice(0, 128)}, ${row.traceId || null}, ${row.action.slice(0, 64)}, ${row.objectType.slice(0, 32)}, ${row.objectId.slice(0, 128)}, ${row.diff})`;
}

export interface AuditFilter {
  objectType?: string | undefined;
  objectId?: string | undefined;
  principal?: string | undefined;
  /** Inclusive. */
  since?: Date | undefined;
  /** Exclusive. */
  until?: Date | undefined;
  /** Keyset: only rows older than this id (the page before). */
  beforeId?: bigint | undefined;
  limit: number;
}

/** Rows matching every given filter, newest first. */
export async function listAuditRows(db: Sql, f: AuditFilter): Promise<AuditRow[]> {
  const where: SqlFragment[] = [sqlFragment`1 = 1`];
  if (f.objectType) where.push(sqlFragment`object_type = ${f.objectType}`);
  if (f.objectId) where.push(sqlFragment`object_id = ${f.objectId}`);
  if (f.principal) where.push(sqlFragment`principal = ${f.principal}`);
  if (f.since) where.push(sqlFragment`time >= ${f.since}`);
  if (f.until) where.push(sqlFragment`time < ${f.until}`);
  if (f.beforeId !== undefined) where.push(sqlFragment`id < ${f.beforeId}`);
  const rows = await db.query<AuditRow>`
    SELECT id, time, principal, trace_id AS traceId, action, object_type AS objectType, object_id AS objectId, diff
      FROM audit_events WHERE ${sqlJoin(where, " AND ")} ORDER BY id DESC LIMIT ${f.limit}`;
  return rows.map((r) => ({ ...r, id: BigInt(r.id) }));
}

/**
 * Deletes up to `limit` rows recorded before `before`, oldest first (through the time index). The table's trigger
 * refuses to delete a row younger than 7 days by the database's clock, and a statement that reaches one deletes
 * nothing: the statement stops at that bound itself, so a process clock ahead of the database's deletes less, never
 * nothing at all.
 */
export function deleteAuditRowsBefore(db: Sql, before: Date, limit: number): Promise<number> {
  return db.execute`
    DELETE FROM audit_events WHERE time < ${before} AND time < UTC_TIMESTAMP(3) - INTERVAL 7 DAY ORDER BY time LIMIT ${limit}`;
}
