// The analytics gRPC service as the dispatcher role (and tests) serve it, with the probe its health detail reads.
import type { Sql } from "../db/sql.js";
import type { RpcService } from "../rpc/adapter.js";
import { analyticsStatus, type ComponentStatus } from "./db.js";
import { analyticsHandlers } from "./handlers.js";
import { createAnalyticsService } from "./service.js";

export function analyticsRpcServices(deps: { provisioning: Sql; analytics: Sql; now?: () => Date }): { services: RpcService[]; status: () => Promise<ComponentStatus> } {
  const probe = analyticsStatus(deps.analytics);
  return { services: [analyticsHandlers(createAnalyticsService(deps), deps.now)], status: () => probe.check() };
}
