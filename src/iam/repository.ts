// Data access for users, their roles and API keys. Every function takes the client or the caller's transaction.
import type { ProvisioningDb } from "../db/clients.js";

export interface ApiKeyOwnerRow {
  keyId: string;
  revokedAt: Date | null;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  userId: string;
  email: string;
  name: string;
  kind: "USER" | "SERVICE";
  status: "ACTIVE" | "DISABLED";
  /** Comma-separated role names granted directly, or null when none. */
  roles: string | null;
  /** Comma-separated role names granted by the user's groups, or null when none. */
  groupRoles: string | null;
  /** Comma-separated ids of the accounts the user's groups may use, or null when none. */
  accountIds: string | null;
}

/**
 * The key with this secret hash and its owner, with the owner's direct roles, group roles and group accounts, in one
 * round trip: this runs on every authenticated call, where Prisma's include would cost several queries.
 */
export async function findApiKeyByHash(db: ProvisioningDb, secretHash: string): Promise<ApiKeyOwnerRow | null> {
  const rows = await db.$queryRaw<ApiKeyOwnerRow[]>`
    SELECT k.id AS keyId, k.revoked_at AS revokedAt, k.expires_at AS expiresAt, k.last_used_at AS lastUsedAt,
           u.id AS userId, u.email, u.name, u.kind, u.status,
           (SELECT GROUP_CONCAT(r.role ORDER BY r.role SEPARATOR ',') FROM user_roles r WHERE r.user_id = u.id) AS roles,
           (SELECT GROUP_CONCAT(DISTINCT gr.role ORDER BY gr.role SEPARATOR ',')
              FROM group_members gm JOIN group_roles gr ON gr.group_id = gm.group_id WHERE gm.user_id = u.id) AS groupRoles,
           (SELECT GROUP_CONCAT(DISTINCT ga.account_id ORDER BY ga.account_id SEPARATOR ',')
              FROM group_members gm JOIN group_accounts ga ON ga.group_id = gm.group_id WHERE gm.user_id = u.id) AS accountIds
      FROM api_keys k JOIN users u ON u.id = k.user_id
     WHERE k.secret_hash = ${secretHash}`;
  return rows[0] ?? null;
}

/** Sets last_used_at to `now` unless it was set less than `minIntervalMs` ago; one conditional UPDATE. */
export async function touchApiKey(db: ProvisioningDb, keyId: string, now: Date, minIntervalMs: number): Promise<void> {
  const before = new Date(now.getTime() - minIntervalMs);
  await db.apiKey.updateMany({ where: { id: keyId, OR: [{ lastUsedAt: null }, { lastUsedAt: { lte: before } }] }, data: { lastUsedAt: now } });
}

export interface NewApiKey {
  id: string;
  userId: string;
  name: string;
  prefix: string;
  secretHash: string;
  expiresAt: Date | null;
}

export async function insertApiKey(db: ProvisioningDb, key: NewApiKey): Promise<void> {
  await db.apiKey.create({ data: key });
}

/** Marks a key revoked; false when there is no such key or it was already revoked. */
export async function revokeApiKey(db: ProvisioningDb, keyId: string, now: Date): Promise<boolean> {
  const { count } = await db.apiKey.updateMany({ where: { id: keyId, revokedAt: null }, data: { revokedAt: now } });
  return count === 1;
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
