// Data access for KM's credentials database: credential rows (ciphertext only), master key versions with their
// encryption counters, and audit rows. Small functions that take the client or the transaction they should join.
// The per-call path of GetCredential (the rows by id, the audit batch) runs on the mariadb driver's pool through the
// tagged templates of src/db/sql.ts: measured here, Prisma's findUnique and create cost several times the driver's
// query on that path.
import { PrismaMariaDb } from "@prisma/adapter-mariadb";
import { createSqlPool, sqlFragment, sqlJoin, type Sql, type SqlPool } from "../db/sql.js";
import { connectionOptions } from "../db/url.js";
import { PrismaClient, type Prisma } from "../gen/prisma/credentials/client.js";

export type CredentialsClient = PrismaClient;
export type CredentialsTx = Prisma.TransactionClient;
export type CredentialsDb = CredentialsClient | CredentialsTx;

/** A Prisma client for the credentials database with a pool of `poolSize` connections. */
export function createCredentialsClient(url: string, poolSize: number): CredentialsClient {
  return new PrismaClient({ adapter: new PrismaMariaDb({ ...connectionOptions(url), connectionLimit: poolSize }) });
}

export type CredentialsPool = SqlPool;

/** A mariadb driver pool for the hot path. Call end() to close. */
export function createCredentialsPool(url: string, poolSize: number): CredentialsPool {
  return createSqlPool(url, poolSize);
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

const toBuffer = (b: Uint8Array | null): Buffer | null => (b ? Buffer.from(b.buffer, b.byteOffset, b.byteLength) : null);
/** Prisma's Bytes are Uint8Array<ArrayBuffer>; a Buffer may sit on a shared pool, so copy. */
const toBytes = (b: Buffer | null): Uint8Array<ArrayBuffer> | null => (b ? new Uint8Array(b) : null);

function toRow(r: Prisma.CredentialGetPayload<object>): CredentialRow {
  return { ...r, labels: (r.labels ?? {}) as Record<string, string>, wrappedKey: toBuffer(r.wrappedKey), ciphertext: toBuffer(r.ciphertext) };
}

export async function insertCredential(db: CredentialsDb, row: Omit<CredentialRow, "createdAt" | "updatedAt" | "deletedAt"> & { now: Date }): Promise<CredentialRow> {
  const { now, wrappedKey, ciphertext, ...data } = row;
  return toRow(await db.credential.create({ data: { ...data, wrappedKey: toBytes(wrappedKey), ciphertext: toBytes(ciphertext), createdAt: now, updatedAt: now } }));
}

export async function findCredential(db: CredentialsDb, id: string): Promise<CredentialRow | null> {
  const r = await db.credential.findUnique({ where: { id } });
  return r ? toRow(r) : null;
}

interface RawCredential {
  id: string;
  account_id: string;
  type: string;
  labels: string | Record<string, string>;
  key_version: number;
  wrapped_key: Buffer | null;
  ciphertext: Buffer | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

/** Credential rows by id on the driver pool (GetCredential's path): one SELECT for a batch of concurrent calls. */
export async function readCredentials(sql: Sql, ids: readonly string[]): Promise<Map<string, CredentialRow>> {
  const rows = await sql.query<RawCredential>`SELECT id, account_id, type, labels, key_version, wrapped_key, ciphertext, created_by, created_at, updated_at, deleted_at FROM credentials WHERE id IN (${ids})`;
  return new Map(
    rows.map((r) => [
      r.id,
      {
        id: r.id,
        accountId: r.account_id,
        type: r.type,
        labels: typeof r.labels === "string" ? (JSON.parse(r.labels) as Record<string, string>) : r.labels,
        keyVersion: r.key_version,
        wrappedKey: r.wrapped_key,
        ciphertext: r.ciphertext,
        createdBy: r.created_by,
        createdAt: r.created_at,
        updatedAt: r.updated_at,
        deletedAt: r.deleted_at,
      },
    ]),
  );
}

/** Live credentials of an account after `afterId`, by id, at most `limit`. */
export async function listCredentials(db: CredentialsDb, accountId: string, afterId: string, limit: number): Promise<CredentialRow[]> {
  const rows = await db.credential.findMany({ where: { accountId, deletedAt: null, ...(afterId ? { id: { gt: afterId } } : {}) }, orderBy: { id: "asc" }, take: limit });
  return rows.map(toRow);
}

/** Crypto-shredding: destroys the wrapped data key (and the ciphertext). Resolves to false when already gone. */
export async function shredCredential(db: CredentialsDb, id: string, now: Date): Promise<boolean> {
  const { count } = await db.credential.updateMany({ where: { id, deletedAt: null }, data: { wrappedKey: null, ciphertext: null, deletedAt: now, updatedAt: now } });
  return count === 1;
}

/** Live records whose data key is wrapped by another version than `current`, oldest first. */
export async function credentialsToRewrap(db: CredentialsDb, current: number, limit: number, afterId = ""): Promise<CredentialRow[]> {
  const rows = await db.credential.findMany({ where: { keyVersion: { not: current }, deletedAt: null, ...(afterId ? { id: { gt: afterId } } : {}) }, orderBy: { id: "asc" }, take: limit });
  return rows.map(toRow);
}

export async function countCredentialsNotUnder(db: CredentialsDb, version: number): Promise<number> {
  return db.credential.count({ where: { keyVersion: { not: version }, deletedAt: null } });
}

/** Live records per key version. */
export async function countCredentialsByVersion(db: CredentialsDb): Promise<Map<number, number>> {
  const groups = await db.credential.groupBy({ by: ["keyVersion"], where: { deletedAt: null }, _count: { _all: true } });
  return new Map(groups.map((g) => [g.keyVersion, g._count._all]));
}

/** Replaces the wrapped key if the record is still under `fromVersion` (a concurrent re-wrap or delete wins). */
export async function replaceWrappedKey(db: CredentialsDb, id: string, fromVersion: number, to: { keyVersion: number; wrappedKey: Buffer }, now: Date): Promise<boolean> {
  const { count } = await db.credential.updateMany({ where: { id, keyVersion: fromVersion, deletedAt: null }, data: { keyVersion: to.keyVersion, wrappedKey: toBytes(to.wrappedKey), updatedAt: now } });
  return count === 1;
}

export interface KeyVersionRow {
  version: number;
  fingerprint: string;
  isCurrent: boolean;
  encryptions: bigint;
  activatedAt: Date | null;
  retiredAt: Date | null;
}

/** Every recorded master key version, locked for update when `lock` (inside a transaction). */
export async function keyVersions(db: CredentialsDb, lock = false): Promise<KeyVersionRow[]> {
  // On an empty table FOR UPDATE still locks the gap, so two KM processes starting together take turns.
  if (lock) await db.$queryRaw`SELECT version FROM master_key_versions FOR UPDATE`;
  return db.masterKeyVersion.findMany({ orderBy: { version: "asc" } });
}

/** The current version's row, locked for update: the serialisation point of every wrap. */
export async function lockCurrentKeyVersion(tx: CredentialsTx): Promise<{ version: number; encryptions: bigint } | undefined> {
  const rows = await tx.$queryRaw<{ version: number; encryptions: bigint }[]>`SELECT version, encryptions FROM master_key_versions WHERE is_current = 1 FOR UPDATE`;
  return rows[0];
}

export async function addEncryptions(tx: CredentialsTx, version: number, n: number): Promise<void> {
  await tx.masterKeyVersion.update({ where: { version }, data: { encryptions: { increment: n } } });
}

export async function insertKeyVersion(db: CredentialsDb, version: number, fingerprint: string): Promise<void> {
  await db.masterKeyVersion.createMany({ data: [{ version, fingerprint, encryptions: 0n }], skipDuplicates: true });
}

export async function makeCurrent(tx: CredentialsTx, version: number, now: Date): Promise<void> {
  await tx.masterKeyVersion.updateMany({ where: { isCurrent: true, version: { not: version } }, data: { isCurrent: false } });
  await tx.masterKeyVersion.update({ where: { version }, data: { isCurrent: true, activatedAt: now, retiredAt: null } });
}

export async function markRetired(db: CredentialsDb, version: number, now: Date): Promise<void> {
  await db.masterKeyVersion.updateMany({ where: { version, isCurrent: false, retiredAt: null }, data: { retiredAt: now } });
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

/** Audit rows in the caller's transaction (stores, deletes, rotations). */
export async function insertAuditRows(db: CredentialsDb, rows: AuditRow[]): Promise<void> {
  await db.auditEvent.createMany({ data: rows });
}

/** A batch of audit rows in one multi-row INSERT, on the driver pool (autocommit: one commit per batch). */
export async function appendAuditRows(sql: Sql, rows: readonly AuditRow[]): Promise<void> {
  if (rows.length === 0) return;
  const values = sqlJoin(
    rows.map((r) => sqlFragment`(${r.time}, ${r.action}, ${r.principal}, ${r.credentialId}, ${r.accountId}, ${r.jobId}, ${r.traceId}, ${r.result}, ${r.detail})`),
    ", ",
  );
  await sql.execute`INSERT INTO audit_events (time, action, principal, credential_id, account_id, job_id, trace_id, result, detail) VALUES ${values}`;
}
