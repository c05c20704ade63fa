// Data access for users as the user service sees them: with their direct roles, group memberships and group roles.
// Every function takes the client or the caller's transaction.
import type { ProvisioningDb } from "../db/clients.js";

export interface UserRow {
  id: string;
  email: string;
  name: string;
  kind: "USER" | "SERVICE";
  status: "ACTIVE" | "DISABLED";
  version: number;
  createdAt: Date;
  updatedAt: Date;
  roles: string[];
  groupIds: string[];
  /** Roles the user's groups grant. */
  groupRoles: string[];
}

const USER_SELECT = {
  id: true,
  email: true,
  name: true,
  kind: true,
  status: true,
  version: true,
  createdAt: true,
  updatedAt: true,
  roles: { select: { role: true }, orderBy: { role: "asc" } },
  groups: { select: { groupId: true, group: { select: { roles: { select: { role: true } } } } }, orderBy: { groupId: "asc" } },
} as const;

type Selected = {
  id: string;
  email: string;
  name: string;
  kind: "USER" | "SERVICE";
  status: "ACTIVE" | "DISABLED";
  version: number;
  createdAt: Date;
  updatedAt: Date;
  roles: Array<{ role: string }>;
  groups: Array<{ groupId: string; group: { roles: Array<{ role: string }> } }>;
};

function toRow(u: Selected): UserRow {
  const { roles, groups, ...rest } = u;
  return {
    ...rest,
    roles: roles.map((r) => r.role),
    groupIds: groups.map((g) => g.groupId),
    groupRoles: [...new Set(groups.flatMap((g) => g.group.roles.map((r) => r.role)))].sort(),
  };
}

export async function findUser(db: ProvisioningDb, id: string): Promise<UserRow | null> {
  const u = await db.user.findUnique({ where: { id }, select: USER_SELECT });
  return u ? toRow(u) : null;
}

export async function userExists(db: ProvisioningDb, id: string): Promise<boolean> {
  return (await db.user.count({ where: { id } })) > 0;
}

/** Who a restricted listing may show: this user and the members of these groups. */
export interface UserCircle {
  userId: string;
  groupIds: string[];
}

/** Users in id order after `afterId`, at most `limit`; with `circle`, only the users in it. */
export async function listUsers(db: ProvisioningDb, filter: { status?: "ACTIVE" | "DISABLED" | undefined; afterId?: string | undefined; circle?: UserCircle | undefined; limit: number }): Promise<UserRow[]> {
  const circle = filter.circle;
  const rows = await db.user.findMany({
    where: {
      ...(filter.status ? { status: filter.status } : {}),
      ...(filter.afterId ? { id: { gt: filter.afterId } } : {}),
      ...(circle ? { OR: [{ id: circle.userId }, { groups: { some: { groupId: { in: circle.groupIds } } } }] } : {}),
    },
    orderBy: { id: "asc" },
    take: filter.limit,
    select: USER_SELECT,
  });
  return rows.map(toRow);
}

export interface UserPatch {
  name?: string | undefined;
  status?: "ACTIVE" | "DISABLED" | undefined;
  roles?: string[] | undefined;
}

/**
 * Bumps the user's version when it is `expectedVersion` (any version when null) and applies the patch.
 * Returns "ok", "missing" or "stale". Call inside a transaction: the roles are replaced in two statements.
 */
export async function updateUser(db: ProvisioningDb, id: string, expectedVersion: number | null, patch: UserPatch): Promise<"ok" | "missing" | "stale"> {
  const { count } = await db.user.updateMany({
    where: { id, ...(expectedVersion === null ? {} : { version: expectedVersion }) },
    data: { version: { increment: 1 }, ...(patch.name !== undefined ? { name: patch.name } : {}), ...(patch.status ? { status: patch.status } : {}) },
  });
  if (count === 0) return (await userExists(db, id)) ? "stale" : "missing";
  if (patch.roles) {
    await db.userRole.deleteMany({ where: { userId: id } });
    if (patch.roles.length > 0) await db.userRole.createMany({ data: patch.roles.map((role) => ({ userId: id, role })) });
  }
  return "ok";
}

/** Active users who hold the admin role, directly or through a group. */
export async function countActiveAdmins(db: ProvisioningDb): Promise<number> {
  const rows = await db.$queryRaw<Array<{ n: bigint | number }>>`
    SELECT COUNT(*) AS n FROM users u
     WHERE u.status = 'ACTIVE'
       AND (EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = u.id AND r.role = 'admin')
         OR EXISTS (SELECT 1 FROM group_members gm JOIN group_roles gr ON gr.group_id = gm.group_id
                     WHERE gm.user_id = u.id AND gr.role = 'admin'))`;
  return Number(rows[0]?.n ?? 0);
}

export async function countUsers(db: ProvisioningDb): Promise<number> {
  return db.user.count();
}

export interface NewUser {
  id: string;
  email: string;
  name: string;
  kind: "USER" | "SERVICE";
  roles: string[];
}

export async function insertUser(db: ProvisioningDb, user: NewUser): Promise<void> {
  const { roles, ...row } = user;
  await db.user.create({ data: { ...row, roles: { create: roles.map((role) => ({ role })) } } });
}

export async function findUserByEmail(db: ProvisioningDb, email: string): Promise<{ id: string; kind: "USER" | "SERVICE" } | null> {
  return db.user.findUnique({ where: { email }, select: { id: true, kind: true } });
}

/** Grants a role; granting one the user already has changes nothing. */
export async function addUserRole(db: ProvisioningDb, userId: string, role: string): Promise<void> {
  await db.userRole.createMany({ data: [{ userId, role }], skipDuplicates: true });
}

export async function findUserStatus(db: ProvisioningDb, id: string): Promise<"ACTIVE" | "DISABLED" | null> {
  return (await db.user.findUnique({ where: { id }, select: { status: true } }))?.status ?? null;
}

/** The ids of the groups the user belongs to, sorted. */
export async function groupIdsOf(db: ProvisioningDb, userId: string): Promise<string[]> {
  const rows = await db.groupMember.findMany({ where: { userId }, select: { groupId: true }, orderBy: { groupId: "asc" } });
  return rows.map((r) => r.groupId);
}
