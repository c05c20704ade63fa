// dispatcher.v1 UserService, GroupService, RoleService and ApiKeyService over gRPC: every request field validated
// here (INVALID_ARGUMENT with field violations), then the IAM services, then complete response messages.
import {
  ApiKeyServiceService as K,
  GroupServiceService as G,
  RoleServiceService as R,
  UserServiceService as U,
  type Role as RoleMessage,
} from "../../gen/proto/dispatcher/v1/iam.js";
import { defineService, unary, type RpcService } from "../adapter.js";
import { afterIdFromToken, ETAG_RULES, ID_RULES, maskPaths, nextToken, requireString, validateOne } from "../validate.js";
import type { ApiKeyService } from "../../iam/api-keys/service.js";
import type { GroupService } from "../../iam/group-service.js";
import {
  accountIdList,
  apiKeyToProto,
  DESCRIPTION_RULES,
  EMAIL_RULES,
  expiry,
  GROUP_NAME_RULES,
  groupToProto,
  KEY_NAME_RULES,
  NAME_RULES,
  roleList,
  USER_KIND,
  USER_STATUS,
  userToProto,
} from "./mapper.js";
import { getRole, listRoles, type RoleInfo } from "../../iam/roles.js";
import type { UserService } from "../../iam/user-service.js";


const roleToProto = (r: RoleInfo): RoleMessage => ({ name: r.name, description: r.description, permissions: r.permissions });

export function userHandlers(users: UserService): RpcService {
  return defineService(U, {
    createUser: unary(U.createUser, async (req) => {
      const input = validateOne((v) => ({
        email: v.string("email", req.email, EMAIL_RULES),
        name: v.string("name", req.name, NAME_RULES),
        kind: v.enumValue("kind", req.kind, USER_KIND) ?? "USER",
        roles: roleList(v, "roles", req.roles),
      }));
      return { user: userToProto(await users.createUser(input)) };
    }),
    getUser: unary(U.getUser, async (req, ctx) => ({ user: userToProto(await users.getUser(ctx.principal, requireString("id", req.id, ID_RULES))) })),
    listUsers: unary(U.listUsers, async (req, ctx) => {
      const q = validateOne((v) => {
        const status = v.optionalEnum("status", req.status, USER_STATUS);
        const pageSize = v.pageSize("page_size", req.pageSize);
        return { status, pageSize, afterId: afterIdFromToken(v, req.pageToken, { status }) };
      });
      const page = await users.listUsers(ctx.principal, q);
      return { users: page.items.map(userToProto), nextPageToken: nextToken(page, { status: q.status }) };
    }),
    updateUser: unary(U.updateUser, async (req) => {
      const { id, etag, patch } = validateOne((v) => {
        const mask = maskPaths(v, req.updateMask, ["name", "status", "roles"] as const);
        return {
          id: v.string("id", req.id, ID_RULES),
          etag: v.string("etag", req.etag, ETAG_RULES),
          patch: {
            name: mask.has("name") ? v.string("name", req.name, NAME_RULES) : undefined,
            status: mask.has("status") ? v.enumValue("status", req.status, USER_STATUS) : undefined,
            roles: mask.has("roles") ? roleList(v, "roles", req.roles) : undefined,
          },
        };
      });
      return { user: userToProto(await users.updateUser(id, etag, patch)) };
    }),
    deleteUser: unary(U.deleteUser, async (req) => {
      const { id, etag } = validateOne((v) => ({ id: v.string("id", req.id, ID_RULES), etag: v.string("etag", req.etag, ETAG_RULES) }));
      return { user: userToProto(await users.deleteUser(id, etag)) };
    }),
  });
}

export function groupHandlers(groups: GroupService): RpcService {
  const idAndEtag = (req: { groupId: string; etag: string }) => validateOne((v) => ({ id: v.string("group_id", req.groupId, ID_RULES), etag: v.string("etag", req.etag, ETAG_RULES) }));
  const member = (req: { groupId: string; userId: string }) => validateOne((v) => ({ groupId: v.string("group_id", req.groupId, ID_RULES), userId: v.string("user_id", req.userId, ID_RULES) }));
  return defineService(G, {
    createGroup: unary(G.createGroup, async (req) => {
      const input = validateOne((v) => ({
        name: v.string("name", req.name, GROUP_NAME_RULES),
        description: v.string("description", req.description, DESCRIPTION_RULES),
        roles: roleList(v, "roles", req.roles),
      }));
      return { group: groupToProto(await groups.createGroup(input)) };
    }),
    getGroup: unary(G.getGroup, async (req, ctx) => ({ group: groupToProto(await groups.getGroup(ctx.principal, requireString("id", req.id, ID_RULES))) })),
    listGroups: unary(G.listGroups, async (req, ctx) => {
      const q = validateOne((v) => ({ pageSize: v.pageSize("page_size", req.pageSize), afterId: afterIdFromToken(v, req.pageToken, {}) }));
      const page = await groups.listGroups(ctx.principal, q);
      return { groups: page.items.map(groupToProto), nextPageToken: nextToken(page, {}) };
    }),
    updateGroup: unary(G.updateGroup, async (req) => {
      const { id, etag, fields } = validateOne((v) => {
        const mask = maskPaths(v, req.updateMask, ["name", "description"] as const);
        const fields: { name?: string; description?: string } = {};
        if (mask.has("name")) fields.name = v.string("name", req.name, GROUP_NAME_RULES);
        if (mask.has("description")) fields.description = v.string("description", req.description, DESCRIPTION_RULES);
        return { id: v.string("id", req.id, ID_RULES), etag: v.string("etag", req.etag, ETAG_RULES), fields };
      });
      return { group: groupToProto(await groups.updateGroup(id, etag, fields)) };
    }),
    deleteGroup: unary(G.deleteGroup, async (req) => {
      const { id, etag } = validateOne((v) => ({ id: v.string("id", req.id, ID_RULES), etag: v.string("etag", req.etag, ETAG_RULES) }));
      await groups.deleteGroup(id, etag);
      return {};
    }),
    addGroupMember: unary(G.addGroupMember, async (req) => {
      const { groupId, userId } = member(req);
      return { group: groupToProto(await groups.addMember(groupId, userId)) };
    }),
    removeGroupMember: unary(G.removeGroupMember, async (req) => {
      const { groupId, userId } = member(req);
      return { group: groupToProto(await groups.removeMember(groupId, userId)) };
    }),
    setGroupRoles: unary(G.setGroupRoles, async (req) => {
      const { id, etag } = idAndEtag(req);
      const roles = validateOne((v) => roleList(v, "roles", req.roles));
      return { group: groupToProto(await groups.setRoles(id, etag, roles)) };
    }),
    setGroupAccounts: unary(G.setGroupAccounts, async (req) => {
      const { id, etag } = idAndEtag(req);
      const accountIds = validateOne((v) => accountIdList(v, "account_ids", req.accountIds));
      return { group: groupToProto(await groups.setAccounts(id, etag, accountIds)) };
    }),
  });
}

export function roleHandlers(): RpcService {
  return defineService(R, {
    listRoles: unary(R.listRoles, async () => ({ roles: listRoles().map(roleToProto) })),
    getRole: unary(R.getRole, async (req) => ({ role: roleToProto(getRole(requireString("name", req.name, { max: 64 }))) })),
  });
}

export function apiKeyHandlers(keys: ApiKeyService, now: () => Date = () => new Date()): RpcService {
  return defineService(K, {
    createApiKey: unary(K.createApiKey, async (req, ctx) => {
      const input = validateOne((v) => ({
        userId: v.optionalString("user_id", req.userId, ID_RULES),
        name: v.string("name", req.name, KEY_NAME_RULES),
        expiresAt: expiry(v, req.expireTime, now()),
      }));
      const { key, secret } = await keys.createApiKey(ctx.principal, input);
      return { apiKey: apiKeyToProto(key), secret };
    }),
    listApiKeys: unary(K.listApiKeys, async (req, ctx) => {
      const q = validateOne((v) => {
        const userId = v.optionalString("user_id", req.userId, ID_RULES);
        return { userId, pageSize: v.pageSize("page_size", req.pageSize), afterId: afterIdFromToken(v, req.pageToken, { userId }) };
      });
      const page = await keys.listApiKeys(ctx.principal, q);
      return { apiKeys: page.items.map(apiKeyToProto), nextPageToken: nextToken(page, { userId: q.userId }) };
    }),
    revokeApiKey: unary(K.revokeApiKey, async (req, ctx) => ({ apiKey: apiKeyToProto(await keys.revokeApiKey(ctx.principal, requireString("id", req.id, ID_RULES))) })),
  });
}
