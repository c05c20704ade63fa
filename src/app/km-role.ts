// The KM role: key management (km.v1) on km.port over its own credentials database; see src/km/server.ts.
import { RequestLog } from "../log.js";
import { startKm } from "../km/server.js";
import type { Resources } from "./resources.js";
import type { RunningRole } from "./role.js";

export async function startKmRole(resources: Resources): Promise<RunningRole> {
  const { config, log } = resources;
  const requestLog = config.logging.dir === "-" ? undefined : new RequestLog(config.logging.dir);
  try {
    const km = await startKm({ config, log, requestLog, now: resources.now });
    return {
      async stop(graceMs) {
        await km.stop(graceMs);
        requestLog?.close();
      },
    };
  } catch (err) {
    requestLog?.close();
    throw err;
  }
}
