// What the monitor's loops need of their process: the job services (completion checks run each kind's check with
// them), a logger and the monitor's settings. Owned here, so the monitor depends on nothing above it.
import type { Config } from "../config.js";
import type { JobServices } from "../jobs/catalog.js";
import type { Logger } from "../log.js";

export interface MonitorResources extends JobServices {
  config: JobServices["config"] & Pick<Config, "jobs" | "discovery">;
  log: Logger;
}
