// The client's side of dispatcher/v1/iam.proto: users, groups, roles and API keys.
import {
  AddGroupMemberRequest,
  ApiKeyServiceService,
  CreateApiKeyRequest,
  CreateGroupRequest,
  CreateUserRequest,
  DeleteGroupRequest,
  DeleteUserRequest,
  GetGroupRequest,
  GetRoleRequest,
  GetUserRequest,
  GroupServiceService,
  ListApiKeysRequest,
  ListGroupsRequest,
  ListRolesRequest,
  ListUsersRequest,
  RemoveGroupMemberRequest,
  RevokeApiKeyRequest,
  RoleServiceService,
  SetGroupAccountsRequest,
  SetGroupRolesRequest,
  UpdateGroupRequest,
  UpdateUserRequest,
  UserServiceService,
} from "../../gen/proto/dispatcher/v1/iam.js";

export const users = {
  definition: UserServiceService,
  requests: { createUser: CreateUserRequest, getUser: GetUserRequest, listUsers: ListUsersRequest, updateUser: UpdateUserRequest, deleteUser: DeleteUserRequest },
};
export const groups = {
  definition: GroupServiceService,
  requests: {
    createGroup: CreateGroupRequest,
    getGroup: GetGroupRequest,
    listGroups: ListGroupsRequest,
    updateGroup: UpdateGroupRequest,
    deleteGroup: DeleteGroupRequest,
    addGroupMember: AddGroupMemberRequest,
    removeGroupMember: RemoveGroupMemberRequest,
    setGroupRoles: SetGroupRolesRequest,
    setGroupAccounts: SetGroupAccountsRequest,
  },
};
export const roles = { definition: RoleServiceService, requests: { listRoles: ListRolesRequest, getRole: GetRoleRequest } };
export const apiKeys = { definition: ApiKeyServiceService, requests: { createApiKey: CreateApiKeyRequest, listApiKeys: ListApiKeysRequest, revokeApiKey: RevokeApiKeyRequest } };
