// VolumeService, SnapshotService and ImageService wired over the generic resource service, as the dispatcher role
// (and tests) serve them.
import type { RpcService } from "../rpc/adapter.js";
import { createResourceService, type ResourceServiceDeps } from "../resources/service.js";
import { storageHandlers } from "./handlers.js";
import { createStorageService } from "./service.js";

export function storageRpcServices(deps: ResourceServiceDeps): RpcService[] {
  return storageHandlers(createStorageService({ sql: deps.sql, resources: createResourceService(deps) }));
}
