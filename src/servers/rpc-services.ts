// ServerService wired over the provisioning database and the job service, as the dispatcher role (and tests) serve it.
import type { RpcService } from "../rpc/adapter.js";
import { createResourceService } from "../resources/service.js";
import { createStorageService } from "../storage/service.js";
import { serverHandlers } from "./handlers.js";
import { createServerService, type ServerServiceDeps } from "./service.js";

export function serverRpcServices(deps: ServerServiceDeps): RpcService[] {
  // Volumes named at launch go through the storage service (its rules, jobs and budget admission).
  const storage = createStorageService({ sql: deps.sql, resources: createResourceService(deps) });
  return [serverHandlers(createServerService(deps), storage)];
}
