// The worker role: consumes the jobs stream and runs every kind's handler (src/jobs/worker.ts).
import { prepareAgentSecrets } from "../agent/ca.js";
import { buildCatalog } from "./catalog.js";
import { startWorker } from "../jobs/worker.js";
import type { Resources } from "./resources.js";
import type { RunningRole } from "./role.js";

export async function startWorkerRole(resources: Resources): Promise<RunningRole> {
  // agent.run_script calls agents: without the agent key and CA the role refuses to start.
  prepareAgentSecrets(resources.config, resources.log);
  const worker = await startWorker({ resources, catalog: buildCatalog() });
  return { stop: (graceMs) => worker.stop(graceMs) };
}
