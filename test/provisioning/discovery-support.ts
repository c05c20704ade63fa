// Discovery test harness: the provisioning fixture (gRPC server, job service) plus what runs the jobs it creates — an
// outbox relay into a JetStream stream of this run, a worker, and optionally the monitor's discovery scheduler — with
// a small in-test cloud driver whose regions, capabilities and catalog a test changes between discovery cycles.
import { randomBytes } from "node:crypto";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { z } from "zod";
import { createAnalyticsSql } from "../../src/analytics/db.js";
import type { Resources } from "../../src/app/resources.js";
import { DriverError, type Capability, type CloudDriver, type DriverImage, type DriverProduct, type DriverRegion } from "../../src/clouds/driver.js";
import { createDriverRegistry } from "../../src/clouds/registry.js";
import { loadConfig, type Config } from "../../src/config.js";
import { JobCatalog, type JobKind } from "../../src/jobs/catalog.js";
import { createOutboxRelay, type OutboxRelay } from "../../src/jobs/relay.js";
import { createJobService } from "../../src/jobs/service.js";
import { startWorker, type RunningWorker } from "../../src/jobs/worker.js";
import type { KmClient } from "../../src/km/client.js";
import { createLogger } from "../../src/log.js";
import { ensureJobsStream } from "../../src/mq/jobs-stream.js";
import type { Loop } from "../../src/monitor/loop.js";
import { startScheduler } from "../../src/monitor/scheduler.js";
import { discoverySchedule } from "../../src/provisioning/discovery/schedule.js";
import { serverSyncSchedule } from "../../src/servers/kinds/sync-schedule.js";
import { SERVERS_SYNC_KIND } from "../../src/servers/kinds/names.js";
import { accountDiscoverKind } from "../../src/provisioning/discovery/kind.js";
import { deleteStream, sharedNatsUrl, testStreamName } from "../mq/support.js";
import { startProvisioningFixture, type ProvisioningFixture } from "./support.js";

export const TEST_DRIVER = "testcloud";
/** The credentials the test cloud accepts. */
export const GOOD_KEY = "good-key";

export interface TestRegion {
  region: DriverRegion;
  capabilities: string[];
  products: DriverProduct[];
  images: DriverImage[];
}

/** The cloud as the test driver reports it; tests change it between discoveries. */
export interface TestCloud {
  regions: TestRegion[];
  calls: string[];
}

export const product = (id: string, priceMicros = 10_000): DriverProduct => ({ id, name: id, cpus: 1, memoryMb: 512, diskGb: 10, hourlyPriceMicros: priceMicros, accruesWhenStopped: false });
export const image = (id: string): DriverImage => ({ id, name: id, platform: "linux" });

export function region(id: string, capabilities: string[], products: DriverProduct[] = [product("small")], images: DriverImage[] = [image("base")]): TestRegion {
  return { region: { id, name: `Region ${id}`, dataCenters: [`${id}a`] }, capabilities, products, images };
}

function testDriver(cloud: TestCloud): CloudDriver {
  const find = (id: string): TestRegion => {
    const r = cloud.regions.find((x) => x.region.id === id);
    if (!r) throw new DriverError("NOT_FOUND", `no region ${id}`);
    return r;
  };
  const unsupported = async (): Promise<never> => {
    throw new DriverError("UNSUPPORTED", "the test cloud runs no servers");
  };
  return {
    name: TEST_DRIVER,
    async testContext(target) {
      cloud.calls.push("testContext");
      if (target.credentials.key !== GOOD_KEY) throw new DriverError("AUTH", "the access key was refused by the provider");
      return { providerAccountId: "test-account-42" };
    },
    listRegions: async () => cloud.regions.map((r) => r.region),
    probeCapabilities: async (_t, id) => find(id).capabilities as Capability[],
    listProducts: async (_t, id) => find(id).products,
    listImages: async (_t, id) => find(id).images,
    launch: unsupported,
    start: unsupported,
    stop: unsupported,
    reboot: unsupported,
    terminate: unsupported,
    getServer: unsupported,
    listServers: unsupported,
  };
}

/** Stands in for the servers' sync kind: the scheduler starts it only when the catalog has one. */
export const fakeServersSyncKind: JobKind<{ accountId: string }> = {
  kind: SERVERS_SYNC_KIND,
  payload: z.object({ accountId: z.string() }),
  handle: async () => ({ status: "succeeded" }),
  ackWaitMs: 30_000,
  maxAttempts: 1,
  backoffMs: [100],
  timeoutMs: 60_000,
  permission: "accounts.discover",
};

export interface DiscoveryHarness {
  f: ProvisioningFixture;
  cloud: TestCloud;
  config: Config;
  nc: NatsConnection;
  resources(): Resources;
  /** Starts a discovery scheduler (a monitor replica) over the harness's database. */
  startScheduler(options?: { pollMs?: number }): Loop;
  close(): Promise<void>;
}

export interface DiscoveryHarnessOptions {
  discoveryIntervalMs?: number;
  serverSyncIntervalMs?: number;
}

export async function openDiscoveryHarness(label: string, options: DiscoveryHarnessOptions = {}): Promise<DiscoveryHarness> {
  const f = await startProvisioningFixture(label);
  const cloud: TestCloud = { regions: [region("r1", ["compute", "block_storage"])], calls: [] };
  const config = loadConfig(process.env, "");
  const stream = testStreamName(label);
  config.mq.jobsStream = stream;
  config.mq.subjectPrefix = f.subjectPrefix;
  config.mq.workerDurable = "workers";
  config.jobs.leaseMs = 5_000;
  config.discovery.intervalMs = options.discoveryIntervalMs ?? 3_600_000;
  config.discovery.serverSyncIntervalMs = options.serverSyncIntervalMs ?? 3_600_000;
  const nc = await connect({ servers: sharedNatsUrl(), timeout: 5_000 });
  const jsm: JetStreamManager = await jetstreamManager(nc);
  await ensureJobsStream(jsm, { stream, subjectPrefix: f.subjectPrefix });
  const log = createLogger({ level: "silent" });
  const drivers = createDriverRegistry([testDriver(cloud)]);
  const km = f.km as unknown as KmClient;
  const catalog = new JobCatalog();
  catalog.register(accountDiscoverKind);
  catalog.register(fakeServersSyncKind);
  const analyticsSql = createAnalyticsSql(f.dbs.urls.analytics, 1);
  const resources = (): Resources => ({
    config,
    log,
    provisioning: f.dbs.provisioning,
    sql: f.sql,
    analyticsSql,
    nats: nc,
    drivers,
    km: () => km,
    closeKm: () => undefined,
    roles: ["worker", "monitor"],
    instanceId: randomBytes(4).toString("hex"),
    startedAt: new Date(),
    now: () => new Date(),
  });
  const relay: OutboxRelay = createOutboxRelay({ sql: f.sql, js: jetstream(nc), log, pollIntervalMs: 100, staleAfterMs: 50 });
  relay.start();
  const worker: RunningWorker = await startWorker({ resources: resources(), catalog, concurrency: 4 });
  const loops: Loop[] = [];
  return {
    f,
    cloud,
    config,
    nc,
    resources,
    startScheduler(o = {}) {
      const r = resources();
      const jobs = createJobService({ sql: f.sql, catalog, subjectPrefix: f.subjectPrefix, log, relay, nats: nc });
      const schedules = [discoverySchedule(config.discovery.intervalMs), serverSyncSchedule(config.discovery.serverSyncIntervalMs)];
      const loop = startScheduler({ resources: r, jobs, schedules, pollMs: o.pollMs ?? 100 });
      loops.push(loop);
      return loop;
    },
    async close() {
      await Promise.all(loops.map((l) => l.stop(0)));
      await worker.stop(0);
      await relay.stop(1_000);
      await analyticsSql.end();
      await deleteStream(jsm, stream);
      await nc.close();
      await f.close();
    },
  };
}

