// The audit gRPC service as the dispatcher role (and tests) serve it.
import type { Sql } from "../db/sql.js";
import type { RpcService } from "../rpc/adapter.js";
import { auditHandlers } from "./handlers.js";
import { createAuditService } from "./service.js";

export function auditRpcServices(deps: { sql: Sql }): RpcService[] {
  return [auditHandlers(createAuditService(deps))];
}
