// What a role is: started with the shared resources, stopped gracefully. Apart from the list of roles (roles.ts), so
// that each role's file can name these types without importing the list that imports it.
import type { Resources } from "./resources.js";

export interface RunningRole {
  /** Stops accepting work, lets in-flight work finish for up to graceMs, then releases what it holds. */
  stop(graceMs: number): Promise<void>;
}

export interface Role {
  name: string;
  description: string;
  start(resources: Resources): Promise<RunningRole>;
}
