// FirewallService, AddressService and KeyPairService wired over the generic resource service, as the dispatcher role
// (and tests) serve them.
import type { RpcService } from "../rpc/adapter.js";
import { createResourceService, type ResourceServiceDeps } from "../resources/service.js";
import { networkHandlers } from "./handlers.js";
import { createNetworkService } from "./service.js";

export function networkRpcServices(deps: ResourceServiceDeps): RpcService[] {
  return networkHandlers(createNetworkService({ sql: deps.sql, resources: createResourceService(deps) }));
}
