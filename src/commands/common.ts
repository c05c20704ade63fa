// Helpers shared by the commands: configuration + logger in one step, and progress lines for long commands.
import type { Config } from "../config.js";
import type { Logger } from "../log.js";

export interface CommandOptions {
  configFile?: string;
}

/** Loads the configuration and the logger (imported here, so that commands which need neither never load them). */
export async function setup(options: CommandOptions): Promise<{ config: Config; log: Logger }> {
  const [{ loadConfig }, { createLogger }] = await Promise.all([import("../config.js"), import("../log.js")]);
  const config = loadConfig(process.env, options.configFile ?? process.env.DISPATCHER_CONFIG);
  const log = createLogger({ level: config.logging.level, pretty: config.logging.pretty });
  return { config, log };
}

/** A progress line on stderr, so that stdout stays parseable. */
export function progress(message: string): void {
  process.stderr.write(`dispatcher: ${message}\n`);
}
