// `dispatcher health`: asks grpc.health.v1 and exits 0 only on SERVING, like grpc-health-probe.
import { checkHealth } from "../client/index.js";
import { loadConfig } from "../config.js";
import type { CommandOptions } from "./common.js";

export interface HealthOptions extends CommandOptions {
  address?: string;
  service: string;
  timeout: number;
}

export async function runHealth(options: HealthOptions): Promise<number> {
  // The address option alone must be enough to probe another host, so a bad local config only matters without it.
  const address = options.address ?? `127.0.0.1:${loadConfig(process.env, options.configFile ?? process.env.DISPATCHER_CONFIG).server.port}`;
  try {
    const status = await checkHealth(address, options.service, options.timeout);
    process.stdout.write(`${status}\n`);
    return status === "SERVING" ? 0 : 1;
  } catch (err) {
    process.stderr.write(`dispatcher health: ${address}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
