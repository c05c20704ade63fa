// API keys through the API: anyone may issue, list and revoke their own keys; only admins those of other users.
// Another user's key that the caller may not touch is NOT_FOUND, the same answer as a key that does not exist.
import type { ProvisioningDb } from "../../db/clients.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError } from "../../errors.js";
import { createApiKey, revokeApiKey } from "./keys.js";
import * as repo from "./repository.js";
import { findUserStatus } from "../user-repository.js";
import type { Principal } from "../principal.js";
import { pageOf, type Page } from "../../db/page.js";

export type ApiKeyView = repo.ApiKeyRow;

export interface ApiKeyService {
  /** `userId` "" means the caller. The secret is returned this once. */
  createApiKey(caller: Principal, request: { userId: string; name: string; expiresAt: Date | null }): Promise<{ key: ApiKeyView; secret: string }>;
  listApiKeys(caller: Principal, query: { userId: string; pageSize: number; afterId?: string | undefined }): Promise<Page<ApiKeyView>>;
  /** Revoking a revoked key returns it unchanged. */
  revokeApiKey(caller: Principal, id: string): Promise<ApiKeyView>;
}

const isAdmin = (caller: Principal): boolean => caller.roles.includes("admin");

export function createApiKeyService(db: ProvisioningDb, now: () => Date = () => new Date()): ApiKeyService {
  /** The user the call acts on: the caller, or another user when the caller is an admin. */
  function target(caller: Principal, userId: string): string {
    if (!userId || userId === caller.id) return caller.id;
    if (!isAdmin(caller)) throw new PermissionDeniedError("only admins manage other users' API keys", "NOT_OWN_API_KEYS");
    return userId;
  }

  return {
    async createApiKey(caller, request) {
      const userId = target(caller, request.userId);
      const status = await findUserStatus(db, userId);
      if (status === null) {
        if (userId === caller.id) throw new FailedPreconditionError("only users and service principals have API keys", "NOT_A_USER");
        throw InvalidArgumentError.field("user_id", "no such user");
      }
      if (status === "DISABLED") throw new FailedPreconditionError("the user is disabled", "USER_DISABLED");
      if (request.expiresAt && request.expiresAt.getTime() <= now().getTime()) throw InvalidArgumentError.field("expire_time", "must be in the future");
      const { id, secret } = await createApiKey(db, userId, request.name, request.expiresAt);
      const key = await repo.findApiKey(db, id);
      if (!key) throw new NotFoundError("api key", id);
      return { key, secret };
    },
    async listApiKeys(caller, query) {
      const userId = target(caller, query.userId);
      const rows = await repo.listApiKeys(db, userId, { afterId: query.afterId, limit: query.pageSize + 1 });
      return pageOf(rows, query.pageSize, (k) => k.id);
    },
    async revokeApiKey(caller, id) {
      const key = await repo.findApiKey(db, id);
      if (!key || (key.userId !== caller.id && !isAdmin(caller))) throw new NotFoundError("api key", id);
      if (!key.revokedAt) await revokeApiKey(db, id, now());
      return (await repo.findApiKey(db, id)) ?? key;
    },
  };
}
