// Data access for cloud accounts. Only the KM credential id is stored here, never a credential field.
import type { ProvisioningDb } from "../../db/clients.js";

export type AccountStatus = "PENDING" | "ACTIVE" | "FAILED" | "DISABLED";

export interface AccountRow {
  id: string;
  name: string;
  cloudId: string;
  credentialId: string;
  defaultBudgetCode: string | null;
  status: AccountStatus;
  statusMessage: string | null;
  providerAccountId: string | null;
  validatedAt: Date | null;
  discoveredAt: Date | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export async function insertAccount(db: ProvisioningDb, row: { id: string; name: string; cloudId: string; credentialId: string; defaultBudgetCode: string | null; nextDiscoveryAt?: Date | null }): Promise<void> {
  await db.account.create({ data: row });
}

export async function findAccount(db: ProvisioningDb, id: string): Promise<AccountRow | null> {
  return db.account.findUnique({ where: { id } });
}

/**
 * Accounts in id order after `afterId`, at most `limit`; only those in `onlyIds` when given (object scope), so a
 * scoped caller's pages never count accounts it may not see.
 */
export async function listAccounts(db: ProvisioningDb, filter: { cloudId?: string | undefined; afterId?: string | undefined; onlyIds?: readonly string[] | undefined; limit: number }): Promise<AccountRow[]> {
  const id = { ...(filter.afterId ? { gt: filter.afterId } : {}), ...(filter.onlyIds ? { in: [...filter.onlyIds] } : {}) };
  return db.account.findMany({
    where: { ...(filter.cloudId ? { cloudId: filter.cloudId } : {}), ...(Object.keys(id).length > 0 ? { id } : {}) },
    orderBy: { id: "asc" },
    take: filter.limit,
  });
}

export async function cloudExists(db: ProvisioningDb, id: string): Promise<boolean> {
  return (await db.cloud.count({ where: { id } })) > 0;
}

export async function budgetCodeExists(db: ProvisioningDb, code: string): Promise<boolean> {
  return (await db.budgetCode.count({ where: { code } })) > 0;
}

export interface AccountRegionRow {
  regionId: string;
  name: string;
  dataCenters: string[];
}

export interface SubscriptionRow {
  regionId: string;
  capability: string;
  discoveredAt: Date;
}

export interface AccountEventRow {
  id: bigint;
  accountId: string;
  type: string;
  regionId: string | null;
  jobId: string | null;
  message: string;
  createdAt: Date;
}

/** The account's regions in the order the cloud listed them; only `regionId` when given. */
export async function listAccountRegions(db: ProvisioningDb, accountId: string, regionId?: string): Promise<AccountRegionRow[]> {
  const rows = await db.accountRegion.findMany({ where: { accountId, ...(regionId ? { regionId } : {}) }, orderBy: { position: "asc" }, select: { regionId: true, name: true, dataCenters: true } });
  return rows.map((r) => ({ regionId: r.regionId, name: r.name, dataCenters: Array.isArray(r.dataCenters) ? r.dataCenters.filter((d): d is string => typeof d === "string") : [] }));
}

/** The capabilities the account is subscribed to, by region and capability; only in `regionId` when given. */
export async function listSubscriptions(db: ProvisioningDb, accountId: string, regionId?: string): Promise<SubscriptionRow[]> {
  return db.subscription.findMany({ where: { accountId, ...(regionId ? { regionId } : {}) }, orderBy: [{ regionId: "asc" }, { capability: "asc" }], select: { regionId: true, capability: true, discoveredAt: true } });
}

/** The account's events oldest first, after event `afterId`, at most `limit`. */
export async function listAccountEvents(db: ProvisioningDb, accountId: string, filter: { afterId?: bigint | undefined; limit: number }): Promise<AccountEventRow[]> {
  return db.accountEvent.findMany({
    where: { accountId, ...(filter.afterId !== undefined ? { id: { gt: filter.afterId } } : {}) },
    orderBy: { id: "asc" },
    take: filter.limit,
    select: { id: true, accountId: true, type: true, regionId: true, jobId: true, message: true, createdAt: true },
  });
}

/** Which of `ids` are accounts. */
export async function existingAccountIds(db: ProvisioningDb, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  return new Set((await db.account.findMany({ where: { id: { in: [...ids] } }, select: { id: true } })).map((a) => a.id));
}
