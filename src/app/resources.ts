// The resources bag every role receives: configuration, logger, database clients, NATS, clock. Built once per process.
import { randomUUID } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { createProvisioningClient, type ProvisioningClient } from "../db/clients.js";
import { STARTUP_BACKOFF, waitForDatabase } from "../db/connect.js";
import { createSqlPool, type SqlPool } from "../db/sql.js";
import { createAnalyticsSql } from "../analytics/db.js";
import { connectNats } from "../mq/nats.js";
import { buildDriverRegistry } from "../clouds/index.js";
import type { DriverRegistry } from "../clouds/registry.js";
import { createKmClientFromConfig, type KmClient } from "../km/client.js";
import { processTelemetry } from "../telemetry/process.js";
import type { SpanStore } from "../telemetry/span-store.js";

export interface Resources {
  config: Config;
  log: Logger;
  provisioning: ProvisioningClient;
  /** The provisioning database through the mariadb driver: the job paths (creation, relay, worker, monitor). */
  sql: SqlPool;
  /**
   * The analytics database through the mariadb driver (ingestion, roll-ups, accruals, reports). Not critical: when it
   * is down its calls fail with UnavailableError ANALYTICS_UNAVAILABLE and nothing else waits for it.
   */
  analyticsSql: SqlPool;
  nats: NatsConnection;
  /** Cloud drivers by name (src/clouds). */
  drivers: DriverRegistry;
  /**
   * The one KM client of this process (its jobs fetch credentials with it, the dispatcher stores accounts' through
   * it), made on first use so a process that never needs credentials never needs KM settings. Throws ConfigError when
   * KM is not configured usably.
   */
  km(): KmClient;
  closeKm(): void;
  /** This process's embedded span store (telemetry.store), when tracing started with one. */
  spans?: SpanStore | undefined;
  /** The roles this process runs. */
  roles: string[];
  /** Identifies this process in leases, events and server info. */
  instanceId: string;
  startedAt: Date;
  now: () => Date;
}

/**
 * Whether `roles` need the provisioning database and NATS. KM keeps to its own credentials database, so a process
 * that runs only KM opens neither (and starts while they are down).
 */
export function needsSharedStores(roles: readonly string[]): boolean {
  return roles.some((r) => r !== "km");
}

/** What a process without the shared stores holds in their place: any use says why it is not there. */
function notOpened<T extends object>(what: string, roles: readonly string[]): T {
  return new Proxy({} as T, {
    get: () => {
      throw new Error(`${what} is not opened in a process running only the roles ${roles.join(", ")}`);
    },
  });
}

/**
 * Connects to MariaDB and NATS (when the roles need them). While either cannot be reached it waits, with backoff,
 * logging what it waits for; what waiting cannot cure (credentials, a missing database) fails at once.
 */
export async function openResources(config: Config, log: Logger, roles: string[]): Promise<Resources> {
  const shared = needsSharedStores(roles);
  const giveUpAfterMs = config.startup.waitForStoresMs;
  if (shared) await waitForDatabase(config.provisioning.url, { log, giveUpAfterMs });
  const nats = shared
    ? await connectNats({ url: config.mq.url, name: `dispatcher-${process.pid}`, timeoutMs: config.mq.connectTimeoutMs, log, wait: { ...STARTUP_BACKOFF, giveUpAfterMs } })
    : notOpened<NatsConnection>("NATS", roles);
  let km: KmClient | undefined;
  return {
    config,
    log,
    provisioning: createProvisioningClient(config.provisioning.url, config.provisioning.poolSize, { wsrepSyncWait: config.provisioning.wsrepSyncWait }),
    // The driver pool connects at once; the Prisma clients only on their first query.
    sql: shared ? createSqlPool(config.provisioning.url, sqlPoolSize(config, roles), { wsrepSyncWait: config.provisioning.wsrepSyncWait }) : notOpened<SqlPool>("the provisioning database", roles),
    analyticsSql: shared ? createAnalyticsSql(config.analytics.url, config.analytics.poolSize) : notOpened<SqlPool>("the analytics database", roles),
    nats,
    drivers: buildDriverRegistry(config, log),
    km: () => (km ??= createKmClientFromConfig(config, kmIdentity(roles), log)),
    closeKm: () => km?.close(),
    spans: processTelemetry()?.spans,
    roles,
    instanceId: `${process.pid}-${randomUUID().slice(0, 8)}`,
    startedAt: new Date(),
    now: () => new Date(),
  };
}

export async function closeResources(resources: Resources): Promise<void> {
  resources.closeKm();
  const closers = [() => resources.nats.drain(), () => resources.provisioning.$disconnect(), () => resources.sql.end(), () => resources.analyticsSql.end()];
  // A store the process never opened (see needsSharedStores) throws here, and is skipped like a failed close.
  await Promise.allSettled(closers.map(async (close) => close()));
}

/**
 * Whom this process's KM client presents itself as: the dispatcher when it runs the dispatcher role (which stores
 * accounts' credentials, and may also use them), otherwise the worker (which may only use them). A process that runs
 * only workers and monitors so holds no more than they need.
 */
export function kmIdentity(roles: readonly string[]): "dispatcher" | "worker" {
  return roles.includes("dispatcher") ? "dispatcher" : "worker";
}

/**
 * Connections of the job pool: the configured size, and with the worker role enough for every running job to start
 * or commit at once (plus lease renewals and the monitor's work) without waiting for a connection.
 */
export function sqlPoolSize(config: Config, roles: string[]): number {
  const worker = roles.includes("worker") ? config.jobs.workerConcurrency + 4 : 0;
  return Math.max(config.provisioning.sqlPoolSize, worker);
}
