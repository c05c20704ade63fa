// The roles one `dispatcher` process can run, each started with the shared resources and stopped gracefully.
import { startDispatcherRole } from "./dispatcher-role.js";
import { startKmRole } from "./km-role.js";
import { startMonitorRole } from "./monitor-role.js";
import type { Role } from "./role.js";
import { ROLE_NAMES, type RoleName } from "./role-names.js";
import { startWorkerRole } from "./worker-role.js";

export type { Role, RunningRole } from "./role.js";
export { ROLE_NAMES } from "./role-names.js";

const BY_NAME: Record<RoleName, Omit<Role, "name">> = {
  km: { description: "key management (km.v1) on km.port over the credentials database, mutual TLS", start: startKmRole },
  worker: { description: "runs jobs from the JetStream jobs stream", start: startWorkerRole },
  monitor: { description: "completion checks, reconciler (expired leases, lost messages, deadlines), outbox relay poll", start: startMonitorRole },
  dispatcher: { description: "gRPC API on server.port", start: startDispatcherRole },
};

// In ROLE_NAMES' order, started in it and stopped in reverse: KM first and stopped last (workers and the dispatcher
// fetch credentials from it until they stop); the API stops taking work first, the workers finish theirs last.
export const ROLES: readonly Role[] = ROLE_NAMES.map((name) => ({ name, ...BY_NAME[name] }));
