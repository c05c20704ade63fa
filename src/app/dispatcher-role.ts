// The dispatcher role: the gRPC API on server.port with every dispatcher.v1 service, health and reflection.
import { createApiKeyAuthenticator } from "../iam/authenticator.js";
import { RequestLog } from "../log.js";
import { createRpcServer } from "../rpc/server.js";
import { systemHandlers } from "../system/handlers.js";
import { createSystemService } from "../system/service.js";
import type { RunningRole } from "./roles.js";
import type { Resources } from "./resources.js";

export async function startDispatcherRole(resources: Resources): Promise<RunningRole> {
  const { config, log } = resources;
  const requestLog = config.logging.dir === "-" ? undefined : new RequestLog(config.logging.dir);
  const system = createSystemService({ roles: resources.roles, startTime: resources.startedAt, instanceId: resources.instanceId });
  const server = createRpcServer({
    config,
    log,
    requestLog,
    authenticate: createApiKeyAuthenticator(resources.provisioning),
    services: [systemHandlers(system)],
  });
  await server.start();
  return {
    async stop(graceMs) {
      await server.stop(graceMs);
      requestLog?.close();
    },
  };
}
