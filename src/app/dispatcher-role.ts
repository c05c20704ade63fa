// The dispatcher role: the gRPC API on server.port with every dispatcher.v1 service, health and reflection, its gRPC-Web
// bridge, the operations console's web server, and the outbox relay that publishes the jobs its calls create (fast
// path after commit, poll loop for rows left behind).
import { jetstreamManager } from "@nats-io/jetstream";
import { withJoinTokens } from "../agent/join-tokens.js";
import { prepareAgentSecrets } from "../agent/ca.js";
import { agentRpcServices } from "../agent/rpc-services.js";
import { analyticsRpcServices } from "../analytics/rpc-services.js";
import { auditRpcServices } from "../audit/rpc-services.js";
import { connectLocalCloudInBackground } from "../clouds/local/bootstrap.js";
import { createConsoleServer } from "../console/server.js";
import { createApiKeyAuthenticator } from "../iam/api-keys/authenticator.js";
import { iamRpcServices } from "../rpc/iam/rpc-services.js";
import { jobHandlers } from "../jobs/handlers.js";
import { readConsumerStats } from "../mq/consumer-stats.js";
import { queueHandlers } from "../queues/handlers.js";
import { createQueueService } from "../queues/service.js";
import { buildCatalog } from "./catalog.js";
import { createAckedPublisher } from "../mq/acked-publisher.js";
import { createOutboxRelay, type OutboxPublisher } from "../jobs/relay.js";
import { createJobService } from "../jobs/service.js";
import { RequestLog } from "../log.js";
import { ensureJobsStream } from "../mq/jobs-stream.js";
import { whileJetStreamStarts } from "../mq/jetstream-wait.js";
import { provisioningRpcServices } from "../provisioning/rpc-services.js";
import { createGrpcWebBridge } from "../rpc/grpc-web/bridge.js";
import { createRpcServer } from "../rpc/server.js";
import { watchStoreHealth } from "../rpc/store-health.js";
import { createDatabaseProbe } from "../db/probe.js";
import { UnavailableError } from "../errors.js";
import { networkRpcServices } from "../network/rpc-services.js";
import { storageRpcServices } from "../storage/rpc-services.js";
import { fileRpcServices } from "../storage/files/rpc-services.js";
import { serverRpcServices } from "../servers/rpc-services.js";
import { credentialKeyOf } from "../agent/secrets.js";
import { systemHandlers } from "../system/handlers.js";
import { createSystemService } from "../system/service.js";
import { traceHandlers } from "../traces/handlers.js";
import { createTraceService } from "../traces/service.js";
import type { RunningRole } from "./role.js";
import type { Resources } from "./resources.js";

/** What calls get while the health probe finds the provisioning database gone: what a failed query would answer. */
const DATABASE_UNAVAILABLE = new UnavailableError("the database is unavailable; retry shortly", "DATABASE_UNAVAILABLE");

/** Longest a stopping dispatcher waits for the relay's publications under way. */
const RELAY_FLUSH_MS = 5_000;

export async function startDispatcherRole(resources: Resources): Promise<RunningRole> {
  const { config, log, nats } = resources;
  prepareAgentSecrets(config, log);
  const jsm = await jetstreamManager(nats);
  await whileJetStreamStarts(log, "set up the jobs stream", () => ensureJobsStream(jsm, { stream: config.mq.jobsStream, subjectPrefix: config.mq.subjectPrefix, replicas: config.mq.jobsStreamReplicas, log }), config.startup.waitForStoresMs);
  const relay = createOutboxRelay({ sql: resources.sql, js: createAckedPublisher(nats), log: log.child({ component: "relay" }) });
  relay.start();
  if (config.faults.crashAfterJobCommit) log.warn("faults.crashAfterJobCommit is on: this process kills itself after the first job commit (testing only)");
  const jobs = createJobService({
    sql: resources.sql,
    catalog: buildCatalog(),
    subjectPrefix: config.mq.subjectPrefix,
    log: log.child({ component: "jobs" }),
    relay: config.faults.crashAfterJobCommit ? crashAfterCommit() : relay,
    nats,
    now: resources.now,
  });
  const requestLog = config.logging.dir === "-" ? undefined : new RequestLog(config.logging.dir);
  // The process's KM client is made on first use (connecting an account), so a dispatcher without KM settings serves.
  const kmClient = resources.km;
  const provisioningPolicy = { allowInsecure: config.provisioning.allowInsecureEndpoints, allowLinkLocal: config.provisioning.allowLinkLocalEndpoints };
  const analytics = analyticsRpcServices({ provisioning: resources.sql, analytics: resources.analyticsSql, now: resources.now });
  const system = createSystemService({ roles: resources.roles, startTime: resources.startedAt, instanceId: resources.instanceId, analytics: analytics.status });
  const services = [
    systemHandlers(system),
    jobHandlers(jobs),
    queueHandlers(createQueueService({ sql: resources.sql, jobs, now: resources.now, consumerStats: () => readConsumerStats(jsm, config.mq.jobsStream, config.mq.workerDurable) })),
    traceHandlers(createTraceService({ jobs, store: resources.spans, traceUiUrl: config.telemetry.traceUiUrl })),
    ...iamRpcServices(resources.provisioning, resources.now),
    ...provisioningRpcServices(resources.provisioning, provisioningPolicy, kmClient, jobs, { discoveryIntervalMs: config.discovery.intervalMs, now: resources.now }),
    ...serverRpcServices({ sql: resources.sql, db: resources.provisioning, jobs, credentialKey: () => credentialKeyOf(config) }),
    ...networkRpcServices({ sql: resources.sql, db: resources.provisioning, jobs }),
    ...storageRpcServices({ sql: resources.sql, db: resources.provisioning, jobs }),
    ...fileRpcServices({ sql: resources.sql, db: resources.provisioning, jobs, drivers: resources.drivers, km: resources.km }),
    ...analytics.services,
    ...agentRpcServices({ config, sql: resources.sql, jobs, log: log.child({ component: "agents" }), now: resources.now }),
    ...auditRpcServices({ sql: resources.sql }),
  ];
  const server = createRpcServer({
    config,
    log,
    requestLog,
    // Join tokens (agents registering) first; every other bearer token is an API key.
    authenticate: withJoinTokens(resources.sql, createApiKeyAuthenticator(resources.provisioning), resources.now),
    services,
  });
  // gRPC-Web on bridge.port, forwarded to the server above: same authentication, permissions and errors.
  const bridge = createGrpcWebBridge({
    config,
    log: log.child({ component: "grpc-web" }),
    requestLog,
    services: services.map((s) => s.definition),
    consolePort: config.console.enabled ? config.console.port : undefined,
  });
  const consoleServer = config.console.enabled ? createConsoleServer({ config, log: log.child({ component: "console" }) }) : undefined;
  try {
    await server.start();
  } catch (err) {
    await relay.stop(0);
    throw err;
  }
  try {
    await bridge.start(server.port);
    await consoleServer?.start();
  } catch (err) {
    await bridge.stop(0);
    await server.stop(0);
    await relay.stop(0);
    throw err;
  }
  // Every call needs the provisioning database (API keys, jobs): while it is gone this replica says so to health
  // checks, and answers UNAVAILABLE at once instead of after the pools' connection timeouts (15 s measured).
  const probe = createDatabaseProbe(config.provisioning.url);
  const storeHealth = watchStoreHealth({
    name: "the provisioning database",
    probe: probe.probe,
    onChange: (reason) => server.refuseCalls(reason ? DATABASE_UNAVAILABLE : null, reason ?? undefined),
    log,
  });
  // The quick start's cloud and account, connected in the background: a KM still starting delays nothing.
  const localCloud = config.localCloud.enabled ? connectLocalCloudInBackground({ config, db: resources.provisioning, jobs, km: kmClient, log: log.child({ component: "local-cloud" }), now: resources.now }) : undefined;
  return {
    async stop(graceMs) {
      storeHealth.stop();
      await probe.close();
      await localCloud?.stop();
      // Calls first (they may still create jobs), then the relay publishes what they committed.
      await Promise.all([bridge.stop(graceMs), server.stop(graceMs), consoleServer?.stop()]);
      await relay.stop(Math.min(graceMs, RELAY_FLUSH_MS));
      requestLog?.close();
    },
  };
}

/**
 * faults.crashAfterJobCommit (tests only; production mode refuses it): the job service hands a publication over right
 * after its transaction committed and before anything (job message, doorbell, reply) leaves the process — the worst
 * moment to die. Dying here proves that a committed job is still published (outbox poll, reconciler) and completes.
 */
function crashAfterCommit(): OutboxPublisher {
  return {
    submit(entry) {
      // stderr is synchronous on pipes and files, so the line is out before the signal lands.
      process.stderr.write(`faults.crashAfterJobCommit: job ${entry.jobId} committed (outbox ${entry.msgId}); SIGKILL before publishing\n`);
      process.kill(process.pid, "SIGKILL");
    },
  };
}
