// The roles one `dispatcher` process can run, each started with the shared resources and stopped gracefully.
import type { Resources } from "./resources.js";
import { startDispatcherRole } from "./dispatcher-role.js";

export interface RunningRole {
  /** Stops accepting work, lets in-flight work finish for up to graceMs, then releases what it holds. */
  stop(graceMs: number): Promise<void>;
}

export interface Role {
  name: string;
  description: string;
  start(resources: Resources): Promise<RunningRole>;
}

export const ROLES: readonly Role[] = [
  { name: "dispatcher", description: "gRPC API on server.port", start: startDispatcherRole },
];

export const ROLE_NAMES: string[] = ROLES.map((r) => r.name);
