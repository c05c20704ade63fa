// The worker role: consumes the jobs stream and runs every kind's handler (src/jobs/worker.ts), with an outbox relay
// on the fast path only, for what handlers commit themselves (a parent job releasing its children).
import { createAgentChannels } from "../agent/agent-channels.js";
import { prepareAgentSecrets } from "../agent/ca.js";
import { buildCatalog } from "./catalog.js";
import { createAckedPublisher } from "../mq/acked-publisher.js";
import { createOutboxRelay } from "../jobs/relay.js";
import { startWorker } from "../jobs/worker.js";
import type { Resources } from "./resources.js";
import type { RunningRole } from "./role.js";

/** Longest a stopping worker waits for its relay's publications under way. */
const RELAY_FLUSH_MS = 2_000;

export async function startWorkerRole(resources: Resources): Promise<RunningRole> {
  // agent.run_script calls agents: without the agent key and CA the role refuses to start.
  prepareAgentSecrets(resources.config, resources.log);
  // Rows the fast path cannot publish are left to the poll loops of the dispatcher and monitor roles.
  const relay = createOutboxRelay({ sql: resources.sql, js: createAckedPublisher(resources.nats), log: resources.log.child({ component: "relay" }), poll: false });
  relay.start();
  const agentChannels = createAgentChannels({ idleMs: resources.config.agent.channelIdleMs, maxChannels: resources.config.agent.maxChannels, log: resources.log.child({ component: "agent-channels" }) });
  const worker = await startWorker({ resources: { ...resources, relay }, catalog: buildCatalog({ agentChannels }) });
  return {
    stop: async (graceMs) => {
      await worker.stop(graceMs);
      agentChannels.close();
      await relay.stop(Math.min(graceMs, RELAY_FLUSH_MS));
    },
  };
}
