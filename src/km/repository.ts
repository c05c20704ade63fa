// Data access for KM's credentials database: credential rows (ciphertext only), master key versions with their
// encryption counters, and audit rows. Small functions that take the pool or the transaction they should join. Every
// table is reached through the tagged templates of src/db/sql.ts on the mariadb driver's pool: on GetCredential's
// per-call path (the rows by id, the audit batch) Prisma's findUnique and create cost several times the driver's query.
import { createSqlPool, sqlFragment, sqlJoin, type Sql, type SqlPool } from "../db/sql.js";

export type CredentialsPool = SqlPool;

/** A mariadb driver pool for the credentials database. Call end() to close. */
export function createCredentialsPool(url: string, poolSize: number): CredentialsPool {
  return createSqlPool(url, poolSize);
}

/**
 * Runs `fn` in one transaction under REPEATABLE READ (the locking reads of key versions rely on gap locks: two KM
 * processes initialising an empty table take turns), tried once: a transaction that also appends to the audit file
 * must not run twice.
 */
export function inTransaction<T>(pool: CredentialsPool, fn: (tx: Sql) => Promise<T>): Promise<T> {
  return pool.transaction(fn, { isolation: "REPEATABLE READ", tries: 1 });
}

export interface CredentialRow {
  id: string;
  accountId: string;
  type: string;
  labels: Record<string, string>;
  keyVersion: number;
  /** Null once deleted (crypto-shredded). */
  wrappedKey: Buffer | null;
  ciphertext: Buffer | null;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
}

const CREDENTIAL_COLUMNS = sqlFragment`id, account_id AS accountId, type, labels, key_version AS keyVersion, wrapped_key AS wrappedKey,
  ciphertext, created_by AS createdBy, created_at AS createdAt, updated_at AS updatedAt, deleted_at AS deletedAt`;

type RawCredential = Omit<CredentialRow, "labels" | "keyVersion"> & { labels: string | Record<string, string>; keyVersion: number | bigint };

function toRow(r: RawCredential): CredentialRow {
  return { ...r, labels: typeof r.labels === "string" ? (JSON.parse(r.labels) as Record<string, string>) : (r.labels ?? {}), keyVersion: Number(r.keyVersion) };
}

export async function insertCredential(tx: Sql, row: Omit<CredentialRow, "createdAt" | "updatedAt" | "deletedAt"> & { now: Date }): Promise<CredentialRow> {
  await tx.execute`
    INSERT INTO credentials (id, account_id, type, labels, key_version, wrapped_key, ciphertext, created_by, created_at, updated_at)
    VALUES (${row.id}, ${row.accountId}, ${row.type}, ${JSON.stringify(row.labels)}, ${row.keyVersion}, ${row.wrappedKey}, ${row.ciphertext},
            ${row.createdBy}, ${row.now}, ${row.now})`;
  const { now, ...rest } = row;
  return { ...rest, createdAt: now, updatedAt: now, deletedAt: null };
}

/** The credential row; with `lock`, it stays locked (FOR UPDATE) until the caller's transaction ends. */
export async function findCredential(sql: Sql, id: string, lock = false): Promise<CredentialRow | null> {
  const rows = await sql.query<RawCredential>`SELECT ${CREDENTIAL_COLUMNS} FROM credentials WHERE id = ${id} ${lock ? sqlFragment`FOR UPDATE` : sqlFragment``}`;
  return rows[0] ? toRow(rows[0]) : null;
}

/** Credential rows by id (GetCredential's path): one SELECT for a batch of concurrent calls. */
export async function readCredentials(sql: Sql, ids: readonly string[]): Promise<Map<string, CredentialRow>> {
  const rows = await sql.query<RawCredential>`SELECT ${CREDENTIAL_COLUMNS} FROM credentials WHERE id IN (${ids})`;
  return new Map(rows.map((r) => [r.id, toRow(r)]));
}

/** Live credentials of an account after `afterId`, by id, at most `limit`. */
export async function listCredentials(sql: Sql, accountId: string, afterId: string, limit: number): Promise<CredentialRow[]> {
  const rows = await sql.query<RawCredential>`
    SELECT ${CREDENTIAL_COLUMNS} FROM credentials
     WHERE account_id = ${accountId} AND deleted_at IS NULL AND id > ${afterId} ORDER BY id LIMIT ${limit}`;
  return rows.map(toRow);
}

/** Crypto-shredding: destroys the wrapped data key (and the ciphertext). Resolves to false when already gone. */
export async function shredCredential(sql: Sql, id: string, now: Date): Promise<boolean> {
  const n = await sql.execute`
    UPDATE credentials SET wrapped_key = NULL, ciphertext = NULL, deleted_at = ${now}, updated_at = ${now} WHERE id = ${id} AND deleted_at IS NULL`;
  return n === 1;
}

/** Live records whose data key is wrapped by another version than `current`, oldest first. */
export async function credentialsToRewrap(sql: Sql, current: number, limit: number, afterId = ""): Promise<CredentialRow[]> {
  const rows = await sql.query<RawCredential>`
    SELECT ${CREDENTIAL_COLUMNS} FROM credentials
     WHERE key_version <> ${current} AND deleted_at IS NULL AND id > ${afterId} ORDER BY id LIMIT ${limit}`;
  return rows.map(toRow);
}

export async function countCredentialsNotUnder(sql: Sql, version: number): Promise<number> {
  const [row] = await sql.query<{ n: bigint | number }>`SELECT COUNT(*) AS n FROM credentials WHERE key_version <> ${version} AND deleted_at IS NULL`;
  return Number(row?.n ?? 0);
}

/** Live records per key version. */
export async function countCredentialsByVersion(sql: Sql): Promise<Map<number, number>> {
  const rows = await sql.query<{ version: number; n: bigint | number }>`
    SELECT key_version AS version, COUNT(*) AS n FROM credentials WHERE deleted_at IS NULL GROUP BY key_version`;
  return new Map(rows.map((r) => [Number(r.version), Number(r.n)]));
}

/** Replaces the wrapped key if the record is still under `fromVersion` (a concurrent re-wrap or delete wins). */
export async function replaceWrappedKey(sql: Sql, id: string, fromVersion: number, to: { keyVersion: number; wrappedKey: Buffer }, now: Date): Promise<boolean> {
  const n = await sql.execute`
    UPDATE credentials SET key_version = ${to.keyVersion}, wrapped_key = ${to.wrappedKey}, updated_at = ${now}
     WHERE id = ${id} AND key_version = ${fromVersion} AND deleted_at IS NULL`;
  return n === 1;
}

export interface KeyVersionRow {
  version: number;
  fingerprint: string;
  isCurrent: boolean;
  encryptions: bigint;
  activatedAt: Date | null;
  retiredAt: Date | null;
}

interface RawKeyVersion {
  version: number;
  fingerprint: string;
  isCurrent: number | boolean;
  encryptions: bigint | number | string;
  activatedAt: Date | null;
  retiredAt: Date | null;
}

const toKeyVersion = (r: RawKeyVersion): KeyVersionRow => ({ ...r, version: Number(r.version), isCurrent: Boolean(Number(r.isCurrent)), encryptions: BigInt(r.encryptions) });

/** Every recorded master key version, locked for update when `lock` (inside a transaction). */
export async function keyVersions(sql: Sql, lock = false): Promise<KeyVersionRow[]> {
  // On an empty table FOR UPDATE still locks the gap (REPEATABLE READ), so two KM processes starting together take turns.
  const rows = await sql.query<RawKeyVersion>`
    SELECT version, fingerprint, is_current AS isCurrent, encryptions, activated_at AS activatedAt, retired_at AS retiredAt
      FROM master_key_versions ORDER BY version ${lock ? sqlFragment`FOR UPDATE` : sqlFragment``}`;
  return rows.map(toKeyVersion);
}

/** The current version's row, locked for update: the serialisation point of every wrap. */
export async function lockCurrentKeyVersion(tx: Sql): Promise<{ version: number; encryptions: bigint } | undefined> {
  const [row] = await tx.query<{ version: number; encryptions: bigint | number | string }>`SELECT version, encryptions FROM master_key_versions WHERE is_current = 1 FOR UPDATE`;
  return row ? { version: Number(row.version), encryptions: BigInt(row.encryptions) } : undefined;
}

export async function addEncryptions(tx: Sql, version: number, n: number): Promise<void> {
  await tx.execute`UPDATE master_key_versions SET encryptions = encryptions + ${n} WHERE version = ${version}`;
}

export async function insertKeyVersion(sql: Sql, version: number, fingerprint: string): Promise<void> {
  await sql.execute`INSERT IGNORE INTO master_key_versions (version, fingerprint, is_current, encryptions, created_at) VALUES (${version}, ${fingerprint}, 0, 0, NOW(3))`;
}

export async function makeCurrent(tx: Sql, version: number, now: Date): Promise<void> {
  await tx.execute`UPDATE master_key_versions SET is_current = 0 WHERE is_current = 1 AND version <> ${version}`;
  await tx.execute`UPDATE master_key_versions SET is_current = 1, activated_at = ${now}, retired_at = NULL WHERE version = ${version}`;
}

export async function markRetired(sql: Sql, version: number, now: Date): Promise<void> {
  await sql.execute`UPDATE master_key_versions SET retired_at = ${now} WHERE version = ${version} AND is_current = 0 AND retired_at IS NULL`;
}

export interface AuditRow {
  time: Date;
  action: string;
  principal: string;
  credentialId: string | null;
  accountId: string | null;
  jobId: string | null;
  traceId: string | null;
  result: string;
  detail: string | null;
}

/** Audit rows in one multi-row INSERT: on the pool a batch with one commit, in a transaction part of it. */
export async function appendAuditRows(sql: Sql, rows: readonly AuditRow[]): Promise<void> {
  if (rows.length === 0) return;
  const values = sqlJoin(
    rows.map((r) => sqlFragment`(${r.time}, ${r.action}, ${r.principal}, ${r.credentialId}, ${r.accountId}, ${r.jobId}, ${r.traceId}, ${r.result}, ${r.detail})`),
    ", ",
  );
  await sql.execute`INSERT INTO audit_events (time, action, principal, credential_id, account_id, job_id, trace_id, result, detail) VALUES ${values}`;
}

/**
 * Deletes up to `limit` audit rows older than `before`, oldest first (through the time index). The table's trigger
 * refuses any row younger than 7 days by the database's clock (src/km/audit-retention.ts), and a statement that
 * reaches one deletes nothing: the statement stops at that bound itself, so a KM clock ahead of the database's deletes
 * less, never nothing at all.
 */
export function deleteAuditRowsBefore(tx: Sql, before: Date, limit: number): Promise<number> {
  return tx.execute`
    DELETE FROM audit_events WHERE time < ${before} AND time < UTC_TIMESTAMP(3) - INTERVAL 7 DAY ORDER BY time LIMIT ${limit}`;
}
