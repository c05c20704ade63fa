// Data access for API keys: finding one by its secret's hash with its owner's roles and accounts (authentication),
// recording its use, issuing and revoking, and listing and finding keys for the API (which never selects the hash).
import type { ProvisioningDb } from "../../db/clients.js";

export interface ApiKeyRow {
  id: string;
  userId: string;
  name: string;
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  expiresAt: Date | null;
}

const KEY_SELECT = { id: true, userId: true, name: true, prefix: true, createdAt: true, lastUsedAt: true, revokedAt: true, expiresAt: true } as const;

export async function findApiKey(db: ProvisioningDb, id: string): Promise<ApiKeyRow | null> {
  return db.apiKey.findUnique({ where: { id }, select: KEY_SELECT });
}

/** The user's keys in id order after `afterId`, at most `limit`, revoked ones included. */
export async function listApiKeys(db: ProvisioningDb, userId: string, filter: { afterId?: string | undefined; limit: number }): Promise<ApiKeyRow[]> {
  return db.apiKey.findMany({ where: { userId, ...(filter.afterId ? { id: { gt: filter.afterId } } : {}) }, orderBy: { id: "asc" }, take: filter.limit, select: KEY_SELECT });
}

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
