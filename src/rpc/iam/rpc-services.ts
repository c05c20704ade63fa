// The IAM gRPC services wired over one provisioning database, as the dispatcher role (and tests) serve them.
import type { ProvisioningDb } from "../../db/clients.js";
import type { RpcService } from "../adapter.js";
import { createApiKeyService } from "../../iam/api-keys/service.js";
import { createGroupService } from "../../iam/group-service.js";
import { apiKeyHandlers, groupHandlers, roleHandlers, userHandlers } from "./handlers.js";
import { createUserService } from "../../iam/user-service.js";

/** UserService, GroupService, RoleService and ApiKeyService. */
export function iamRpcServices(db: ProvisioningDb, now: () => Date = () => new Date()): RpcService[] {
  return [userHandlers(createUserService(db)), groupHandlers(createGroupService(db)), roleHandlers(), apiKeyHandlers(createApiKeyService(db, now), now)];
}
