// API keys: issuing (the secret is shown once, only its sha256 is stored), authenticating a bearer secret to a
// Principal, and the bootstrap admin created on first start.
import { createHash, randomBytes } from "node:crypto";
import { inTransaction, type ProvisioningClient, type ProvisioningDb } from "../../db/clients.js";
import { isUniqueViolation } from "../../db/errors.js";
import { newId } from "../../db/ids.js";
import { InvalidArgumentError } from "../../errors.js";
import type { Principal } from "../principal.js";
import { ROLES } from "../roles.js";
import * as users from "../user-repository.js";
import * as repo from "./repository.js";
import { recordChange } from "../../audit/trail.js";

export const API_KEY_MARKER = "dsp_";
/** Characters of the secret kept in clear (the marker and 8 more) so people can tell their keys apart. */
const PREFIX_LENGTH = API_KEY_MARKER.length + 8;
const SECRET_LENGTH = API_KEY_MARKER.length + 43; // 32 bytes in base64url
/** last_used_at is written at most this often per key, so authentication rarely writes. */
const TOUCH_INTERVAL_MS = 60_000;
export const BOOTSTRAP_ADMIN_EMAIL = "admin@local";

export function hashApiKeySecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** Issues a key for a user. The returned secret is the only copy: the database keeps its hash. */
export async function createApiKey(db: ProvisioningDb, userId: string, name: string, expiresAt: Date | null = null): Promise<{ id: string; secret: string }> {
  const secret = API_KEY_MARKER + randomBytes(32).toString("base64url");
  const id = newId();
  await inTransaction(db, async (tx) => {
    await repo.insertApiKey(tx, { id, userId, name, prefix: secret.slice(0, PREFIX_LENGTH), secretHash: hashApiKeySecret(secret), expiresAt });
    await recordChange(tx, { action: "api_key.create", objectType: "api_key", objectId: id, after: { userId, name, expiresAt } });
  });
  return { id, secret };
}

/** The principal a secret belongs to, or null when it is unknown, revoked, expired or its user is disabled. */
export async function authenticateApiKey(db: ProvisioningDb, secret: string, now: Date = new Date()): Promise<Principal | null> {
  if (secret.length !== SECRET_LENGTH || !secret.startsWith(API_KEY_MARKER)) return null;
  const row = await repo.findApiKeyByHash(db, hashApiKeySecret(secret));
  if (!row || row.revokedAt || row.status !== "ACTIVE") return null;
  if (row.expiresAt && row.expiresAt.getTime() <= now.getTime()) return null;
  if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() >= TOUCH_INTERVAL_MS) {
    await repo.touchApiKey(db, row.keyId, now, TOUCH_INTERVAL_MS);
  }
  const roles = [...new Set([...splitList(row.roles), ...splitList(row.groupRoles)])].sort();
  const accountIds = splitList(row.accountIds);
  return {
    id: row.userId,
    kind: row.kind === "SERVICE" ? "service" : "user",
    roles,
    displayName: row.name || row.email,
    ...(accountIds.length > 0 ? { accountIds } : {}),
  };
}

function splitList(value: string | null): string[] {
  return value ? value.split(",") : [];
}

export async function revokeApiKey(db: ProvisioningDb, keyId: string, now: Date = new Date()): Promise<boolean> {
  return inTransaction(db, async (tx) => {
    const revoked = await repo.revokeApiKey(tx, keyId, now);
    if (revoked) await recordChange(tx, { action: "api_key.revoke", objectType: "api_key", objectId: keyId, before: { revokedAt: null }, after: { revokedAt: now } });
    return revoked;
  });
}

/**
 * On a database without users, creates admin@local with the admin role and an API key, and returns the key's secret
 * to show once. Returns null when users exist — including when another process bootstrapped at the same moment
 * (the unique email lets exactly one of them commit).
 */
export async function ensureBootstrapAdmin(db: ProvisioningClient): Promise<{ secret: string } | null> {
  if ((await users.countUsers(db)) > 0) return null;
  try {
    return await db.$transaction(async (tx) => {
      const userId = newId();
      const admin = { id: userId, email: BOOTSTRAP_ADMIN_EMAIL, name: "Administrator", kind: "USER", roles: ["admin"] } as const;
      await users.insertUser(tx, { ...admin, roles: [...admin.roles] });
      await recordChange(tx, { action: "user.create", objectType: "user", objectId: userId, after: { ...admin, status: "ACTIVE" } });
      const { secret } = await createApiKey(tx, userId, "bootstrap");
      return { secret };
    });
  } catch (err) {
    if (isUniqueViolation(err)) return null;
    throw err;
  }
}

export interface KeyForEmail {
  email: string;
  role: string;
  kind: "user" | "service";
  /** Name of the key. */
  name: string;
  expiresAt?: Date | null;
}

/**
 * Issues a key for the user with this email, creating the user (or service principal) when missing and granting
 * the role when not yet held. For `dispatcher admin create-key`.
 */
export async function createApiKeyForEmail(db: ProvisioningDb, request: KeyForEmail): Promise<{ id: string; secret: string; userId: string }> {
  if (!(ROLES as readonly string[]).includes(request.role)) throw InvalidArgumentError.field("role", `one of ${ROLES.join(", ")}`);
  if (!/^[^\s@]+@[^\s@]+$/.test(request.email)) throw InvalidArgumentError.field("email", "an email address (user@domain)");
  return inTransaction(db, async (tx) => {
    let user = await users.findUserByEmail(tx, request.email);
    if (!user) {
      const id = newId();
      const created = { email: request.email, name: request.email, kind: request.kind === "service" ? "SERVICE" : "USER", roles: [request.role] } as const;
      await users.insertUser(tx, { id, ...created, roles: [...created.roles] });
      await recordChange(tx, { action: "user.create", objectType: "user", objectId: id, after: { ...created, status: "ACTIVE" } });
      user = { id, kind: created.kind };
    } else {
      const before = await users.findUser(tx, user.id);
      await users.addUserRole(tx, user.id, request.role);
      await recordChange(tx, { action: "user.update", objectType: "user", objectId: user.id, before: { roles: before?.roles }, after: { roles: [...new Set([...(before?.roles ?? []), request.role])].sort() } });
    }
    const key = await createApiKey(tx, user.id, request.name, request.expiresAt ?? null);
    return { ...key, userId: user.id };
  });
}
