// ServerService wired over the provisioning database and the job service, as the dispatcher role (and tests) serve it.
import type { RpcService } from "../rpc/adapter.js";
import { serverHandlers } from "./handlers.js";
import { createServerService, type ServerServiceDeps } from "./service.js";

export function serverRpcServices(deps: ServerServiceDeps): RpcService[] {
  return [serverHandlers(createServerService(deps))];
}
