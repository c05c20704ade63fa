// Helpers shared by the commands: configuration + logger in one step, and progress lines for long commands.
import { loadConfig, type Config } from "../config.js";
import { createLogger, type Logger } from "../log.js";

export interface CommandOptions {
  configFile?: string;
}

export function setup(options: CommandOptions): { config: Config; log: Logger } {
  const config = loadConfig(process.env, options.configFile ?? process.env.DISPATCHER_CONFIG);
  const log = createLogger({ level: config.logging.level, pretty: config.logging.pretty });
  return { config, log };
}

/** A progress line on stderr, so that stdout stays parseable. */
export function progress(message: string): void {
  process.stderr.write(`dispatcher: ${message}\n`);
}
