// Every cloud driver the dispatcher ships, registered by name.
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { createAwsDriver } from "./aws/driver.js";
import { createDriverRegistry, type DriverRegistry } from "./registry.js";

export function buildDriverRegistry(config: Config, log: Logger): DriverRegistry {
  void config;
  void log;
  return createDriverRegistry([createAwsDriver()]);
}
