// The resources bag every role receives: configuration, logger, database clients, NATS, clock. Built once per process.
import { randomUUID } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { checkDatabase, createAnalyticsClient, createProvisioningClient, type AnalyticsClient, type ProvisioningClient } from "../db/clients.js";
import { connectNats } from "../mq/nats.js";

export interface Resources {
  config: Config;
  log: Logger;
  provisioning: ProvisioningClient;
  analytics: AnalyticsClient;
  nats: NatsConnection;
  /** The roles this process runs. */
  roles: string[];
  /** Identifies this process in leases, events and server info. */
  instanceId: string;
  startedAt: Date;
  now: () => Date;
}

/** Connects to MariaDB and NATS, failing fast with a message that says what to start. */
export async function openResources(config: Config, log: Logger, roles: string[]): Promise<Resources> {
  await checkDatabase(config.provisioning.url);
  const nats = await connectNats({ url: config.mq.url, name: `dispatcher-${process.pid}`, timeoutMs: config.mq.connectTimeoutMs, log });
  return {
    config,
    log,
    provisioning: createProvisioningClient(config.provisioning.url, config.provisioning.poolSize),
    analytics: createAnalyticsClient(config.analytics.url, config.analytics.poolSize),
    nats,
    roles,
    instanceId: `${process.pid}-${randomUUID().slice(0, 8)}`,
    startedAt: new Date(),
    now: () => new Date(),
  };
}

export async function closeResources(resources: Resources): Promise<void> {
  await Promise.allSettled([resources.nats.drain(), resources.provisioning.$disconnect(), resources.analytics.$disconnect()]);
}
