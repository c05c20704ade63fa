// Every cloud driver the dispatcher ships, registered by name.
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import type { CloudDriver } from "./driver.js";
import { createLocalDriver } from "./local/driver.js";
import { createAwsDriver } from "./aws/driver.js";
import { createDriverRegistry, type DriverRegistry } from "./registry.js";

export function buildDriverRegistry(config: Config, log: Logger): DriverRegistry {
  const drivers: CloudDriver[] = [];
  if (config.localCloud.enabled) drivers.push(createLocalDriver({ dataDir: config.dataDir, catalogFile: config.localCloud.catalogFile, stopGraceMs: config.localCloud.stopGraceMs, log }));
  drivers.push(createAwsDriver());
  return createDriverRegistry(drivers);
}
