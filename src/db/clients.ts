// The provisioning database's Prisma client over the MariaDB driver adapter, and the transaction types its
// repositories accept. Nothing connects until the first query (or checkDatabase). (Analytics is reached through the
// mariadb driver only: src/analytics/db.ts.)
import { PrismaMariaDb } from "@prisma/adapter-mariadb";
import { PrismaClient as ProvisioningPrismaClient, type Prisma as ProvisioningPrisma } from "../gen/prisma/provisioning/client.js";
import { connectionOptions, LAZY_POOL, sessionInitSql } from "./url.js";

export { checkDatabase } from "./connect.js";

export type ProvisioningClient = ProvisioningPrismaClient;

/** A provisioning transaction client, as passed to `$transaction(async (tx) => …)`. A full client is one too. */
export type Tx = ProvisioningPrisma.TransactionClient;

/** What provisioning repositories take: the client, or the transaction they should join. */
export type ProvisioningDb = ProvisioningClient | Tx;

/** How long a query waits for a pooled connection (the driver's default is 10 s, as long as a default deadline). */
const PRISMA_ACQUIRE_TIMEOUT_MS = 5_000;

function adapter(url: string, poolSize: number, wsrepSyncWait: number): PrismaMariaDb {
  // Only a Galera setting adds session statements: the isolation level stays Prisma's (the server's default).
  const initSql = sessionInitSql({ wsrepSyncWait }).slice(1);
  // A server that went away fails a query within PRISMA_ACQUIRE_TIMEOUT_MS (UNAVAILABLE), not at the caller's deadline.
  return new PrismaMariaDb({ ...connectionOptions(url), ...LAZY_POOL, connectionLimit: poolSize, acquireTimeout: PRISMA_ACQUIRE_TIMEOUT_MS, ...(initSql.length > 0 ? { initSql } : {}) });
}

/**
 * A Prisma client for the provisioning database with a pool of `poolSize` connections. Call $disconnect() to close.
 * `wsrepSyncWait`: see provisioning.wsrepSyncWait.
 */
export function createProvisioningClient(url: string, poolSize: number, options: { wsrepSyncWait?: number } = {}): ProvisioningClient {
  return new ProvisioningPrismaClient({ adapter: adapter(url, poolSize, options.wsrepSyncWait ?? 0) });
}

/**
 * Runs `fn` in a transaction: a new one when `db` is the client, the caller's when `db` is already a transaction
 * (so repository functions compose without nesting transactions).
 */
export function inTransaction<T>(db: ProvisioningDb, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return "$transaction" in db ? db.$transaction(fn) : fn(db);
}
