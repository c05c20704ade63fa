// The agent pinger as the monitor role runs it: settings from agent.*, and the metrics of each answered ping stored
// in analytics (src/analytics/metrics.ts ingestSamples).
import { ingestSamples } from "../analytics/metrics.js";
import type { Resources } from "../app/resources.js";
import type { Loop } from "../monitor/loop.js";
import { startAgentPinger } from "./pinger.js";
import { credentialKeyOf } from "./run-script-kind.js";

export function startMonitorAgentPinger(resources: Resources): Loop {
  const { config } = resources;
  return startAgentPinger({
    sql: resources.sql,
    log: resources.log.child({ component: "agent-pinger" }),
    credentialKey: () => credentialKeyOf(config),
    pingIntervalMs: config.agent.pingIntervalMs,
    maxMissedPings: config.agent.maxMissedPings,
    onMetrics: async (sample) => void (await ingestSamples(resources.analyticsSql, [sample])),
    now: resources.now,
  });
}
