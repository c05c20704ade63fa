// Data access for cloud accounts. Only the KM credential id is stored here, never a credential field.
import type { ProvisioningDb } from "../db/clients.js";

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

export async function insertAccount(db: ProvisioningDb, row: { id: string; name: string; cloudId: string; credentialId: string; defaultBudgetCode: string | null }): Promise<void> {
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
