// The agent services as the dispatcher role (and tests) serve them.
import type { Config } from "../config.js";
import type { SqlPool } from "../db/sql.js";
import type { JobService } from "../jobs/service.js";
import type { Logger } from "../log.js";
import type { RpcService } from "../rpc/adapter.js";
import { agentCaOf } from "./ca.js";
import { agentEndpointRules } from "./endpoints.js";
import { registrationHandlers, serverAgentHandlers } from "./handlers.js";
import { createRegistrationService } from "./registration.js";
import { credentialKeyOf } from "./secrets.js";
import { createServerAgentService } from "./service.js";
import { createFleetService } from "./fleet.js";

export function agentRpcServices(deps: { config: Config; sql: SqlPool; jobs: Pick<JobService, "createJob" | "findByIdempotencyKey">; log: Logger; now?: () => Date }): RpcService[] {
  const credentialKey = (): Buffer => credentialKeyOf(deps.config);
  const registration = createRegistrationService({
    sql: deps.sql,
    credentialKey,
    ca: () => agentCaOf(deps.config),
    certificateTtlMs: () => deps.config.agent.certificateTtlMs,
    pingIntervalMs: deps.config.agent.pingIntervalMs,
    endpoints: agentEndpointRules(deps.config),
    log: deps.log,
    now: deps.now,
  });
  return [registrationHandlers(registration), serverAgentHandlers(createServerAgentService(deps.sql, deps.jobs, credentialKey), createFleetService(deps.sql, deps.jobs, credentialKey))];
}
