// Data access for budget codes and their grants to users. Every function takes the client or the caller's
// transaction; changes bump the code's version (its etag) in the same statement that checks it.
import type { ProvisioningDb } from "../../db/clients.js";

export type BudgetState = "ACTIVE" | "DISABLED";

export interface BudgetCodeRow {
  code: string;
  name: string;
  financeCode: string;
  hardQuotaCents: bigint;
  softQuotaCents: bigint;
  state: BudgetState;
  currentUsageCents: bigint;
  projectedUsageCents: bigint;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  userIds: string[];
}

const SELECT = {
  code: true,
  name: true,
  financeCode: true,
  hardQuotaCents: true,
  softQuotaCents: true,
  state: true,
  currentUsageCents: true,
  projectedUsageCents: true,
  version: true,
  createdAt: true,
  updatedAt: true,
  grants: { select: { userId: true }, orderBy: { userId: "asc" } },
} as const;

type Selected = Omit<BudgetCodeRow, "userIds"> & { grants: Array<{ userId: string }> };

function toRow(b: Selected): BudgetCodeRow {
  const { grants, ...rest } = b;
  return { ...rest, userIds: grants.map((g) => g.userId) };
}

export interface BudgetFields {
  name?: string;
  financeCode?: string;
  hardQuotaCents?: bigint;
  softQuotaCents?: bigint;
  state?: BudgetState;
}

export async function insertBudgetCode(db: ProvisioningDb, row: Required<BudgetFields> & { code: string }): Promise<void> {
  await db.budgetCode.create({ data: { ...row, currentUsageCents: 0n, projectedUsageCents: 0n } });
}

export async function findBudgetCode(db: ProvisioningDb, code: string): Promise<BudgetCodeRow | null> {
  const b = await db.budgetCode.findUnique({ where: { code }, select: SELECT });
  return b ? toRow(b) : null;
}

/** Codes in code order after `afterCode`; with `heldBy`, only those granted to that user. */
export async function listBudgetCodes(db: ProvisioningDb, filter: { state?: BudgetState | undefined; afterCode?: string | undefined; heldBy?: string | undefined; limit: number }): Promise<BudgetCodeRow[]> {
  const rows = await db.budgetCode.findMany({
    where: {
      ...(filter.state ? { state: filter.state } : {}),
      ...(filter.afterCode ? { code: { gt: filter.afterCode } } : {}),
      ...(filter.heldBy ? { grants: { some: { userId: filter.heldBy } } } : {}),
    },
    orderBy: { code: "asc" },
    take: filter.limit,
    select: SELECT,
  });
  return rows.map(toRow);
}

/** Bumps the version when it is `expectedVersion` (any when null) and applies `fields`; "missing" or "stale" otherwise. */
export async function bumpBudgetCode(db: ProvisioningDb, code: string, expectedVersion: number | null, fields: BudgetFields = {}): Promise<"ok" | "missing" | "stale"> {
  const { count } = await db.budgetCode.updateMany({ where: { code, ...(expectedVersion === null ? {} : { version: expectedVersion }) }, data: { ...fields, version: { increment: 1 } } });
  if (count === 1) return "ok";
  return (await db.budgetCode.count({ where: { code } })) > 0 ? "stale" : "missing";
}

export async function grant(db: ProvisioningDb, code: string, userId: string): Promise<void> {
  await db.budgetCodeGrant.createMany({ data: [{ code, userId }], skipDuplicates: true });
}

export async function revoke(db: ProvisioningDb, code: string, userId: string): Promise<void> {
  await db.budgetCodeGrant.deleteMany({ where: { code, userId } });
}

export async function holds(db: ProvisioningDb, code: string, userId: string): Promise<boolean> {
  return (await db.budgetCodeGrant.count({ where: { code, userId } })) > 0;
}

/** Grants of the code and accounts that name it as their default: what "in use" means. */
export async function usesOf(db: ProvisioningDb, code: string): Promise<{ grants: number; accounts: number }> {
  const [grants, accounts] = await Promise.all([db.budgetCodeGrant.count({ where: { code } }), db.account.count({ where: { defaultBudgetCode: code } })]);
  return { grants, accounts };
}

/** Moves every grant and account default from `code` to `replacement` (a holder of both keeps one grant). */
export async function moveUses(db: ProvisioningDb, code: string, replacement: string): Promise<void> {
  const holders = await db.budgetCodeGrant.findMany({ where: { code }, select: { userId: true } });
  if (holders.length > 0) await db.budgetCodeGrant.createMany({ data: holders.map((h) => ({ code: replacement, userId: h.userId })), skipDuplicates: true });
  await db.account.updateMany({ where: { defaultBudgetCode: code }, data: { defaultBudgetCode: replacement } });
}

export async function deleteBudgetCode(db: ProvisioningDb, code: string): Promise<void> {
  await db.budgetCode.deleteMany({ where: { code } });
}
