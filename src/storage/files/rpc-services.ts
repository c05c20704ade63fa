// FileService wired over the generic resource service and the bucket's cloud (drivers, credentials from KM), as the
// dispatcher role (and tests) serve it.
import type { DriverRegistry } from "../../clouds/registry.js";
import type { KmClient } from "../../km/client.js";
import type { RpcService } from "../../rpc/adapter.js";
import { createResourceService, type ResourceServiceDeps } from "../../resources/service.js";
import { filesCloud } from "./cloud.js";
import { fileHandlers } from "./handlers.js";
import { createFilesService } from "./service.js";

export function fileRpcServices(deps: ResourceServiceDeps & { drivers: DriverRegistry; km: () => KmClient }): RpcService[] {
  const resources = createResourceService(deps);
  return [fileHandlers(createFilesService({ sql: deps.sql, resources, jobs: deps.jobs, cloud: filesCloud(deps) }))];
}
