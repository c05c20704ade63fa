// Groups: what they are called, who belongs, which roles they grant and which accounts their members may use.
// Every change bumps the group's version; calls that take an etag fail with ABORTED when it is stale.
import { inTransaction, type ProvisioningDb, type Tx } from "../db/clients.js";
import { isUniqueViolation } from "../db/errors.js";
import { newId } from "../db/ids.js";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errors.js";
import { etagOf, keepAnAdmin, staleEtag, versionOf } from "./etag.js";
import * as repo from "./group-repository.js";
import type { Role } from "./roles.js";
import { pageOf, type Page } from "../db/page.js";
import { countActiveAdmins, userExists } from "./user-repository.js";
import { existingAccountIds } from "../provisioning/accounts/repository.js";
import { seesEveryone, type IamViewer } from "./visibility.js";
import { recordChange } from "../audit/trail.js";

export interface GroupView {
  id: string;
  name: string;
  description: string;
  memberUserIds: string[];
  roles: string[];
  accountIds: string[];
  etag: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface GroupService {
  createGroup(input: { name: string; description: string; roles: Role[] }): Promise<GroupView>;
  /** NOT_FOUND for a group `viewer` does not belong to, unless an admin (src/iam/visibility.ts). */
  getGroup(viewer: IamViewer, id: string): Promise<GroupView>;
  listGroups(viewer: IamViewer, query: { pageSize: number; afterId?: string | undefined }): Promise<Page<GroupView>>;
  updateGroup(id: string, etag: string, fields: { name?: string; description?: string }): Promise<GroupView>;
  deleteGroup(id: string, etag: string): Promise<void>;
  /** Adding a member twice changes nothing but the version. INVALID_ARGUMENT (user_id) for an unknown user. */
  addMember(groupId: string, userId: string): Promise<GroupView>;
  /** This and setRoles and deleteGroup: FAILED_PRECONDITION (LAST_ADMIN) when no active admin would be left. */
  removeMember(groupId: string, userId: string): Promise<GroupView>;
  setRoles(groupId: string, etag: string, roles: Role[]): Promise<GroupView>;
  /** INVALID_ARGUMENT (account_ids) naming each id that is not an account. */
  setAccounts(groupId: string, etag: string, accountIds: string[]): Promise<GroupView>;
}

function toView(row: repo.GroupRow): GroupView {
  const { version, ...rest } = row;
  return { ...rest, etag: etagOf(version) };
}

export function createGroupService(db: ProvisioningDb): GroupService {
  async function get(id: string, tx: ProvisioningDb = db): Promise<GroupView> {
    const row = await repo.findGroup(tx, id);
    if (!row) throw new NotFoundError("group", id);
    return toView(row);
  }

  /** Checks and bumps the version, runs `change`, and returns the group as it ends up, all in one transaction. */
  function change(action: string, id: string, etag: string, change: (tx: Tx) => Promise<void>, fields: { name?: string; description?: string } = {}): Promise<GroupView> {
    return uniqueName(fields.name, () =>
      inTransaction(db, async (tx) => {
        const before = await repo.findGroup(tx, id);
        const outcome = await repo.bumpGroup(tx, id, versionOf(etag), fields);
        if (outcome === "missing") throw new NotFoundError("group", id);
        if (outcome === "stale") throw staleEtag("group", id);
        await change(tx);
        const after = await get(id, tx);
        await recordChange(tx, { action, objectType: "group", objectId: id, before, after });
        return after;
      }),
    );
  }

  return {
    async createGroup(input) {
      const id = newId();
      const group = { id, name: input.name, description: input.description, roles: [...new Set(input.roles)] };
      await uniqueName(input.name, () =>
        inTransaction(db, async (tx) => {
          await repo.insertGroup(tx, group);
          await recordChange(tx, { action: "group.create", objectType: "group", objectId: id, after: group });
        }),
      );
      return get(id);
    },
    async getGroup(viewer, id) {
      const group = await get(id);
      if (!seesEveryone(viewer) && !group.memberUserIds.includes(viewer.id)) throw new NotFoundError("group", id);
      return group;
    },
    async listGroups(viewer, query) {
      const memberId = seesEveryone(viewer) ? undefined : viewer.id;
      const rows = await repo.listGroups(db, { afterId: query.afterId, memberId, limit: query.pageSize + 1 });
      return pageOf(rows.map(toView), query.pageSize, (g) => g.id);
    },
    updateGroup: (id, etag, fields) => change("group.update", id, etag, async () => {}, fields),
    async deleteGroup(id, etag) {
      await inTransaction(db, async (tx) => {
        const before = await repo.findGroup(tx, id);
        const outcome = await repo.bumpGroup(tx, id, versionOf(etag));
        if (outcome === "missing") throw new NotFoundError("group", id);
        if (outcome === "stale") throw staleEtag("group", id);
        await repo.deleteGroup(tx, id);
        await recordChange(tx, { action: "group.delete", objectType: "group", objectId: id, before });
        await keepAnAdmin(() => countActiveAdmins(tx));
      });
    },
    addMember: (groupId, userId) =>
      change("group.add_member", groupId, "", async (tx) => {
        if (!(await userExists(tx, userId))) throw InvalidArgumentError.field("user_id", "no such user");
        await repo.addMember(tx, groupId, userId);
      }),
    removeMember: (groupId, userId) =>
      change("group.remove_member", groupId, "", async (tx) => {
        await repo.removeMember(tx, groupId, userId);
        await keepAnAdmin(() => countActiveAdmins(tx));
      }),
    setRoles: (groupId, etag, roles) =>
      change("group.set_roles", groupId, etag, async (tx) => {
        await repo.replaceRoles(tx, groupId, [...new Set(roles)]);
        await keepAnAdmin(() => countActiveAdmins(tx));
      }),
    setAccounts: (groupId, etag, accountIds) =>
      change("group.set_accounts", groupId, etag, async (tx) => {
        const wanted = [...new Set(accountIds)];
        const known = await existingAccountIds(tx, wanted);
        const unknown = wanted.filter((id) => !known.has(id));
        if (unknown.length > 0) throw new InvalidArgumentError(unknown.map((id) => ({ field: "account_ids", description: `no such account ${JSON.stringify(id)}` })));
        await repo.replaceAccounts(tx, groupId, wanted);
      }),
  };
}

/** Runs `fn`, turning a duplicate group name into ALREADY_EXISTS. */
async function uniqueName<T>(name: string | undefined, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (name !== undefined && isUniqueViolation(err)) throw new AlreadyExistsError("group", name);
    throw err;
  }
}
