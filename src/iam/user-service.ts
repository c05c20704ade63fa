// Users: create, read, list, update with an etag, and disable (users are never deleted, so history keeps its actors).
import { inTransaction, type ProvisioningDb } from "../db/clients.js";
import { isUniqueViolation } from "../db/errors.js";
import { newId } from "../db/ids.js";
import { pageOf, type Page } from "../db/page.js";
import { AlreadyExistsError, NotFoundError } from "../errors.js";
import { etagOf, keepAnAdmin, staleEtag, versionOf } from "./etag.js";
import type { Role } from "./roles.js";
import * as repo from "./user-repository.js";
import { seesEveryone, userSeenBy, type IamViewer } from "./visibility.js";
import { recordChange } from "../audit/trail.js";

export interface UserView {
  id: string;
  email: string;
  name: string;
  kind: "USER" | "SERVICE";
  status: "ACTIVE" | "DISABLED";
  roles: string[];
  effectiveRoles: string[];
  groupIds: string[];
  etag: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewUserInput {
  email: string;
  name: string;
  kind: "USER" | "SERVICE";
  roles: Role[];
}

export interface UserUpdate {
  name?: string | undefined;
  status?: "ACTIVE" | "DISABLED" | undefined;
  roles?: Role[] | undefined;
}

export interface UserService {
  createUser(input: NewUserInput): Promise<UserView>;
  /** NOT_FOUND when `viewer` may not see the user (src/iam/visibility.ts); others' emails are blank to non-admins. */
  getUser(viewer: IamViewer, id: string): Promise<UserView>;
  listUsers(viewer: IamViewer, query: { status?: "ACTIVE" | "DISABLED" | undefined; pageSize: number; afterId?: string | undefined }): Promise<Page<UserView>>;
  /**
   * ABORTED when `etag` is not "" and no longer current; FAILED_PRECONDITION (LAST_ADMIN) when the change would leave
   * no active admin. Nothing changes then.
   */
  updateUser(id: string, etag: string, update: UserUpdate): Promise<UserView>;
  /** Disables the user (their API keys stop authenticating). */
  deleteUser(id: string, etag: string): Promise<UserView>;
}

export function toUserView(row: repo.UserRow): UserView {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    kind: row.kind,
    status: row.status,
    roles: row.roles,
    effectiveRoles: [...new Set([...row.roles, ...row.groupRoles])].sort(),
    groupIds: row.groupIds,
    etag: etagOf(row.version),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

export function createUserService(db: ProvisioningDb): UserService {
  async function get(id: string): Promise<UserView> {
    const row = await repo.findUser(db, id);
    if (!row) throw new NotFoundError("user", id);
    return toUserView(row);
  }

  async function update(id: string, etag: string, patch: UserUpdate, action = "user.update"): Promise<UserView> {
    return inTransaction(db, async (tx) => {
      const before = await repo.findUser(tx, id);
      const outcome = await repo.updateUser(tx, id, versionOf(etag), patch);
      if (outcome === "missing") throw new NotFoundError("user", id);
      if (outcome === "stale") throw staleEtag("user", id);
      if (patch.status === "DISABLED" || patch.roles) await keepAnAdmin(() => repo.countActiveAdmins(tx));
      const row = await repo.findUser(tx, id);
      if (!row) throw new NotFoundError("user", id);
      await recordChange(tx, { action, objectType: "user", objectId: id, before, after: row });
      return toUserView(row);
    });
  }

  return {
    async createUser(input) {
      const id = newId();
      try {
        const user = { id, email: input.email, name: input.name, kind: input.kind, roles: [...new Set(input.roles)] };
        await inTransaction(db, async (tx) => {
          await repo.insertUser(tx, user);
          await recordChange(tx, { action: "user.create", objectType: "user", objectId: id, after: { ...user, status: "ACTIVE" } });
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw new AlreadyExistsError("user", input.email);
        throw err;
      }
      return get(id);
    },
    async getUser(viewer, id) {
      const user = await get(id);
      if (seesEveryone(viewer)) return user;
      const mine = await repo.groupIdsOf(db, viewer.id);
      if (user.id !== viewer.id && !user.groupIds.some((g) => mine.includes(g))) throw new NotFoundError("user", id);
      return userSeenBy(user, viewer, mine);
    },
    async listUsers(viewer, query) {
      const all = seesEveryone(viewer);
      const mine = all ? [] : await repo.groupIdsOf(db, viewer.id);
      const circle = all ? undefined : { userId: viewer.id, groupIds: mine };
      const rows = await repo.listUsers(db, { status: query.status, afterId: query.afterId, circle, limit: query.pageSize + 1 });
      const views = rows.map(toUserView).map((u) => (all ? u : userSeenBy(u, viewer, mine)));
      return pageOf(views, query.pageSize, (u) => u.id);
    },
    updateUser: (id, etag, patch) => update(id, etag, { ...patch, roles: patch.roles ? [...new Set(patch.roles)] : undefined }),
    deleteUser: (id, etag) => update(id, etag, { status: "DISABLED" }, "user.disable"),
  };
}
