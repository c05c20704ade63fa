// The roles one `dispatcher` process can run, each started with the shared resources and stopped gracefully.
import { startDispatcherRole } from "./dispatcher-role.js";
import { startKmRole } from "./km-role.js";
import { startMonitorRole } from "./monitor-role.js";
import type { Role } from "./role.js";
import { startWorkerRole } from "./worker-role.js";

export type { Role, RunningRole } from "./role.js";

export const ROLES: readonly Role[] = [
  // KM first and stopped last: workers and the dispatcher fetch credentials from it until they stop.
  { name: "km", description: "key management (km.v1) on km.port over the credentials database, mutual TLS", start: startKmRole },
  // Started in this order and stopped in reverse: the API stops taking work first, the workers finish theirs last.
  { name: "worker", description: "runs jobs from the JetStream jobs stream", start: startWorkerRole },
  { name: "monitor", description: "completion checks, reconciler (expired leases, lost messages, deadlines), outbox relay poll", start: startMonitorRole },
  { name: "dispatcher", description: "gRPC API on server.port", start: startDispatcherRole },
];

export const ROLE_NAMES: string[] = ROLES.map((r) => r.name);
