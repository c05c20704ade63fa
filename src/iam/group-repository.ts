// Data access for groups, their members, roles and accounts. Every function takes the client or the caller's
// transaction; changes bump the group's version (its etag) in the same statement that checks it.
import type { ProvisioningDb } from "../db/clients.js";

export interface GroupRow {
  id: string;
  name: string;
  description: string;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  memberUserIds: string[];
  roles: string[];
  accountIds: string[];
}

const GROUP_SELECT = {
  id: true,
  name: true,
  description: true,
  version: true,
  createdAt: true,
  updatedAt: true,
  members: { select: { userId: true }, orderBy: { userId: "asc" } },
  roles: { select: { role: true }, orderBy: { role: "asc" } },
  accounts: { select: { accountId: true }, orderBy: { accountId: "asc" } },
} as const;

type Selected = Omit<GroupRow, "memberUserIds" | "roles" | "accountIds"> & {
  members: Array<{ userId: string }>;
  roles: Array<{ role: string }>;
  accounts: Array<{ accountId: string }>;
};

function toRow(g: Selected): GroupRow {
  const { members, roles, accounts, ...rest } = g;
  return { ...rest, memberUserIds: members.map((m) => m.userId), roles: roles.map((r) => r.role), accountIds: accounts.map((a) => a.accountId) };
}

export async function insertGroup(db: ProvisioningDb, group: { id: string; name: string; description: string; roles: string[] }): Promise<void> {
  const { roles, ...row } = group;
  await db.group.create({ data: { ...row, roles: { create: roles.map((role) => ({ role })) } } });
}

export async function findGroup(db: ProvisioningDb, id: string): Promise<GroupRow | null> {
  const g = await db.group.findUnique({ where: { id }, select: GROUP_SELECT });
  return g ? toRow(g) : null;
}

/** Groups in id order after `afterId`, at most `limit`; with `memberId`, only the groups that user belongs to. */
export async function listGroups(db: ProvisioningDb, filter: { afterId?: string | undefined; memberId?: string | undefined; limit: number }): Promise<GroupRow[]> {
  const where = { ...(filter.afterId ? { id: { gt: filter.afterId } } : {}), ...(filter.memberId ? { members: { some: { userId: filter.memberId } } } : {}) };
  const rows = await db.group.findMany({ where, orderBy: { id: "asc" }, take: filter.limit, select: GROUP_SELECT });
  return rows.map(toRow);
}

/**
 * Bumps the group's version when it is `expectedVersion` (any when null), applying `fields`; "missing" or "stale"
 * when nothing matched. The row stays locked until the caller's transaction ends, so follow-up changes are atomic.
 */
export async function bumpGroup(db: ProvisioningDb, id: string, expectedVersion: number | null, fields: { name?: string; description?: string } = {}): Promise<"ok" | "missing" | "stale"> {
  const { count } = await db.group.updateMany({ where: { id, ...(expectedVersion === null ? {} : { version: expectedVersion }) }, data: { ...fields, version: { increment: 1 } } });
  if (count === 1) return "ok";
  return (await db.group.count({ where: { id } })) > 0 ? "stale" : "missing";
}

export async function deleteGroup(db: ProvisioningDb, id: string): Promise<void> {
  await db.group.deleteMany({ where: { id } });
}

export async function addMember(db: ProvisioningDb, groupId: string, userId: string): Promise<void> {
  await db.groupMember.createMany({ data: [{ groupId, userId }], skipDuplicates: true });
}

export async function removeMember(db: ProvisioningDb, groupId: string, userId: string): Promise<void> {
  await db.groupMember.deleteMany({ where: { groupId, userId } });
}

export async function replaceRoles(db: ProvisioningDb, groupId: string, roles: string[]): Promise<void> {
  await db.groupRole.deleteMany({ where: { groupId } });
  if (roles.length > 0) await db.groupRole.createMany({ data: roles.map((role) => ({ groupId, role })) });
}

export async function replaceAccounts(db: ProvisioningDb, groupId: string, accountIds: string[]): Promise<void> {
  await db.groupAccount.deleteMany({ where: { groupId } });
  if (accountIds.length > 0) await db.groupAccount.createMany({ data: accountIds.map((accountId) => ({ groupId, accountId })) });
}
