// `dispatcher config`: the effective configuration, secrets hidden.
import { loadConfig, redactedConfig } from "../config.js";
import type { CommandOptions } from "./common.js";

export function runPrintConfig(options: CommandOptions): number {
  const config = loadConfig(process.env, options.configFile ?? process.env.DISPATCHER_CONFIG);
  process.stdout.write(`${JSON.stringify(redactedConfig(config), null, 2)}\n`);
  return 0;
}
