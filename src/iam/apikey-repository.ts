// Data access for listing and finding API keys (issuing and authenticating live in repository.ts). Never selects the
// secret hash.
import type { ProvisioningDb } from "../db/clients.js";

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

export async function findUserStatus(db: ProvisioningDb, id: string): Promise<"ACTIVE" | "DISABLED" | null> {
  return (await db.user.findUnique({ where: { id }, select: { status: true } }))?.status ?? null;
}
