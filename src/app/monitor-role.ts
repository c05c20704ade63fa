// The monitor role: completion checks, the reconciler, retention (jobs, ended servers and resources, the audit trail,
// account events), the discovery scheduler, and an outbox relay poll loop (so rows a crashed dispatcher left
// unpublished go out even when no dispatcher runs). Safe as several replicas.
import { jetstreamManager } from "@nats-io/jetstream";
import { agentConnector } from "../agent/connect.js";
import { agentEndpointRules } from "../agent/endpoints.js";
import { createAgentChannels } from "../agent/agent-channels.js";
import { startAgentPinger } from "../agent/pinger.js";
import { prepareAgentSecrets } from "../agent/ca.js";
import { ingestSamples } from "../analytics/metrics.js";
import { startAnalyticsTasks } from "../analytics/tasks.js";
import { JobExecution } from "../jobs/execution.js";
import { buildCatalog } from "./catalog.js";
import { enqueuePublication, type OutboxRef } from "../jobs/outbox.js";
import { createAckedPublisher } from "../mq/acked-publisher.js";
import { createOutboxRelay } from "../jobs/relay.js";
import { createJobService } from "../jobs/service.js";
import { ensureJobsStream } from "../mq/jobs-stream.js";
import { whileJetStreamStarts } from "../mq/jetstream-wait.js";
import { startCompletionChecks } from "../monitor/completion-checks.js";
import { startReconciler } from "../monitor/reconciler.js";
import { startAuditTrailRetention } from "../audit/retention.js";
import { startAccountEventRetention } from "../provisioning/discovery/event-retention.js";
import { startInventoryRetention } from "../servers/retention.js";
import { startRetention } from "../monitor/retention.js";
import { startScheduler } from "../monitor/scheduler.js";
import { observeQueues } from "../telemetry/metrics-observers.js";
import { discoverySchedule } from "../provisioning/discovery/schedule.js";
import { resourceSyncSchedule } from "../resources/sync.js";
import { serverSyncSchedule } from "../servers/kinds/sync-schedule.js";
import type { Resources } from "./resources.js";
import type { RunningRole } from "./role.js";

/** Longest a stopping monitor waits for its relay's publications under way. */
const RELAY_FLUSH_MS = 5_000;

export async function startMonitorRole(resources: Resources): Promise<RunningRole> {
  const { config, nats, log } = resources;
  prepareAgentSecrets(config, log);
  const jsm = await jetstreamManager(nats);
  await whileJetStreamStarts(log, "set up the jobs stream", () => ensureJobsStream(jsm, { stream: config.mq.jobsStream, subjectPrefix: config.mq.subjectPrefix, replicas: config.mq.jobsStreamReplicas, log }), config.startup.waitForStoresMs);
  const ex = new JobExecution({ sql: resources.sql, nc: nats });
  const relay = createOutboxRelay({ sql: resources.sql, js: createAckedPublisher(nats), log: log.child({ component: "relay" }) });
  relay.start();
  const catalog = buildCatalog();
  const checks = startCompletionChecks({ resources, catalog, ex });
  // The scheduler starts jobs like any caller: through a job service, published by this role's relay.
  const jobs = createJobService({ sql: resources.sql, catalog, subjectPrefix: config.mq.subjectPrefix, log: log.child({ component: "jobs" }), relay, nats, now: resources.now });
  const schedules = [discoverySchedule(config.discovery.intervalMs), serverSyncSchedule(config.discovery.serverSyncIntervalMs), resourceSyncSchedule(config.discovery.serverSyncIntervalMs)];
  const discovery = startScheduler({ resources, jobs, schedules });
  // Agents are pinged over mutual TLS (a plaintext channel in development) on channels kept between pings (opening one
  // per ping cost several times the ping); each answered ping's metrics go to analytics.
  const pingChannels = createAgentChannels({ idleMs: config.agent.channelIdleMs, maxChannels: config.agent.maxChannels, log: log.child({ component: "agent-pinger" }) });
  const pinger = startAgentPinger({
    channels: pingChannels,
    sql: resources.sql,
    log: log.child({ component: "agent-pinger" }),
    connect: agentConnector(config),
    endpoints: agentEndpointRules(config),
    pingIntervalMs: config.agent.pingIntervalMs,
    maxMissedPings: config.agent.maxMissedPings,
    onMetrics: async (samples) => void (await ingestSamples(resources.analyticsSql, samples)),
    now: resources.now,
  });
  const analytics = startAnalyticsTasks({ config, log, sql: resources.sql, analytics: resources.analyticsSql, now: resources.now });
  const reconciler = startReconciler<OutboxRef>({
    resources,
    ex,
    republish: (tx, job) => enqueuePublication(tx, { ...job, subjectPrefix: config.mq.subjectPrefix }),
    onPublished: (entries) => entries.forEach((e) => relay.submit(e)),
  });
  const retention = startRetention({
    sql: resources.sql,
    log,
    retentionDays: config.jobs.retentionDays,
    batch: config.jobs.purgeBatch,
    share: config.jobs.purgeShare,
    intervalMs: config.jobs.purgeIntervalMs,
  });
  const inventoryRetention = startInventoryRetention({ sql: resources.sql, analytics: resources.analyticsSql, log, retentionDays: config.inventory.retentionDays, now: resources.now });
  const auditRetention = startAuditTrailRetention({ sql: resources.sql, log, retentionDays: config.provisioning.auditRetentionDays, now: resources.now });
  const accountEventRetention = startAccountEventRetention({ sql: resources.sql, log, retentionDays: config.provisioning.accountEventRetentionDays, now: resources.now });
  // The deployment's queues, observed at each metrics collection.
  const unobserve = observeQueues({ sql: resources.sql, jsm: await jetstreamManager(nats), stream: config.mq.jobsStream, durable: config.mq.workerDurable });
  log.info("monitor running: completion checks, reconciler, discovery scheduler, retention (jobs, inventory, audit trail, account events), outbox relay poll");
  return {
    async stop(graceMs) {
      await Promise.all([checks.stop(graceMs), reconciler.stop(graceMs), retention.stop(graceMs), inventoryRetention.stop(graceMs), auditRetention.stop(graceMs), accountEventRetention.stop(graceMs), discovery.stop(graceMs), pinger.stop(graceMs), analytics.stop(graceMs)]);
      pingChannels.close();
      await relay.stop(Math.min(graceMs, RELAY_FLUSH_MS));
      unobserve();
    },
  };
}
