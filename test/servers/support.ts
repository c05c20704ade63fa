// Server test fixtures: the jobs harness (its own database and stream) with a worker and the monitor's completion
// checks reaching an in-memory cloud through a fake KM; a gRPC server with ServerService and JobService behind the
// DB-backed authenticator; users of each role plus a scoped operator; and builders for an account with its
// discovered regions, subscriptions, catalog and budget codes.
import type { KmClient } from "../../src/km/client.js";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { createDriverRegistry } from "../../src/clouds/registry.js";
import { newId } from "../../src/db/ids.js";
import { createApiKey } from "../../src/iam/api-keys/keys.js";
import { createApiKeyAuthenticator } from "../../src/iam/api-keys/authenticator.js";
import { jobHandlers } from "../../src/jobs/handlers.js";
import { createOutboxRelay, type OutboxRelay } from "../../src/jobs/relay.js";
import { createJobService, type JobService } from "../../src/jobs/service.js";
import { startWorker, type RunningWorker } from "../../src/jobs/worker.js";
import { startCompletionChecks } from "../../src/monitor/completion-checks.js";
import type { Loop } from "../../src/monitor/loop.js";
import { networkRpcServices } from "../../src/network/rpc-services.js";
import { storageRpcServices } from "../../src/storage/rpc-services.js";
import { serverRpcServices } from "../../src/servers/rpc-services.js";
import { credentialKeyOf } from "../../src/agent/secrets.js";
import type { Resources } from "../../src/app/resources.js";
import type { RpcService } from "../../src/rpc/adapter.js";
import { insertUser } from "../iam/support.js";
import { openExecHarness, type ExecHarness } from "../jobs/exec-support.js";
import { startTestServer, type TestServer } from "../rpc/fixtures.js";
import { fakeCloud, type FakeCloud } from "./fake-driver.js";
import { insertAccount, insertBudgetCode } from "../support/rows.js";

export interface ServersFixture {
  h: ExecHarness;
  cloud: FakeCloud;
  jobs: JobService;
  resources: Resources;
  server: TestServer;
  users: { admin: User; operator: User; reader: User; scoped: User };
  /** The fake KM's calls: which credential for which job and purpose. */
  kmCalls: { id: string; accountId: string; jobId?: string | undefined; purpose?: string | undefined }[];
  client(user: User): DispatcherClients;
  /** Every job message published to NATS since the fixture started, body and headers as text (what crossed the wire). */
  publications(): string[];
  /** Makes the scoped operator's group (or the operator's and reader's: "every") cover this account too. */
  scope(accountId: string, group?: "scoped" | "every"): Promise<void>;
  close(): Promise<void>;
}

export interface User {
  id: string;
  secret: string;
}

export interface AccountSeed {
  status?: "PENDING" | "ACTIVE" | "FAILED" | "DISABLED";
  defaultBudgetCode?: string | null;
  /** Regions r1 (compute) and r2 (no compute) by default. */
  regions?: { id: string; dataCenters: string[]; capabilities: string[] }[];
}

export async function startServersFixture(label: string, options: { run?: boolean; prepare?: (cloud: FakeCloud) => void; services?: (deps: { jobs: JobService; resources: Resources }) => RpcService[] } = {}): Promise<ServersFixture> {
  const h = await openExecHarness(label);
  h.config.jobs.checkPollMs = 50;
  const cloud = fakeCloud();
  // Before the registry wraps the driver: e.g. resource services a test adds.
  options.prepare?.(cloud);
  const kmCalls: ServersFixture["kmCalls"] = [];
  const km = {
    async useCredential<T>(input: ServersFixture["kmCalls"][number], use: (fields: Readonly<Record<string, string>>) => Promise<T>): Promise<T> {
      kmCalls.push(input);
      return use({ key: "fake-secret" });
    },
  } as unknown as KmClient;
  const resources: Resources = { ...h.resources("servers"), drivers: createDriverRegistry([cloud]), km: () => km };
  const relay: OutboxRelay = createOutboxRelay({ sql: h.sql, js: h.js, log: h.log, pollIntervalMs: 200 });
  relay.start();
  const jobs = createJobService({ sql: h.sql, catalog: h.catalog, subjectPrefix: h.config.mq.subjectPrefix, log: h.log, relay, nats: h.nc, watchIntervalMs: 200 });
  // Group changes reach a principal when the authenticator's cache entry expires: scope() moves its clock past that.
  let skew = 0;
  const authenticate = createApiKeyAuthenticator(h.db, () => Date.now() + skew);
  const server = await startTestServer({ services: [jobHandlers(jobs), ...serverRpcServices({ sql: h.sql, db: h.db, jobs, credentialKey: () => credentialKeyOf(h.config) }), ...networkRpcServices({ sql: h.sql, db: h.db, jobs }), ...storageRpcServices({ sql: h.sql, db: h.db, jobs }), ...(options.services?.({ jobs, resources }) ?? [])], authenticate });
  const run = options.run ?? true;
  let worker: RunningWorker | undefined;
  let checks: Loop | undefined;
  if (run) {
    worker = await startWorker({ resources, catalog: h.catalog });
    checks = startCompletionChecks({ resources, catalog: h.catalog, ex: h.ex, pollMs: 50 });
  }
  const user = async (roles: string[]): Promise<User> => {
    const id = await insertUser(h.dbs, roles);
    return { id, secret: (await createApiKey(h.db, id, "test")).secret };
  };
  const users = { admin: await user(["admin"]), operator: await user(["operator"]), reader: await user(["reader"]), scoped: await user([]) };
  // The scoped operator gets its role and its accounts from a group of its own; the operator and the reader see
  // every account seedAccount makes through another.
  const groupId = newId();
  await h.db.group.create({ data: { id: groupId, name: `scoped-${groupId}`, roles: { create: [{ role: "operator" }] }, members: { create: [{ userId: users.scoped.id }] } } });
  const everyId = newId();
  await h.db.group.create({ data: { id: everyId, name: `every-${everyId}`, members: { create: [{ userId: users.operator.id }, { userId: users.reader.id }] } } });
  const open: DispatcherClients[] = [];
  // A plain subscription sees every publication on the jobs subjects, whether or not a worker has consumed it since.
  const published: string[] = [];
  const wire = h.nc.subscribe(`${h.config.mq.subjectPrefix}.>`, {
    callback: (_err, m) => void published.push(`${new TextDecoder().decode(m.data)} ${JSON.stringify(m.headers ? [...m.headers.keys()].map((k) => [k, m.headers?.get(k)]) : [])}`),
  });
  return {
    h,
    cloud,
    jobs,
    resources,
    server,
    users,
    kmCalls,
    publications: () => [...published],
    client(u) {
      const c = createDispatcherClients({ address: server.address, token: u.secret, retry: false });
      open.push(c);
      return c;
    },
    async scope(accountId, group = "scoped") {
      await h.db.groupAccount.create({ data: { groupId: group === "scoped" ? groupId : everyId, accountId } });
      skew += 60_000;
    },
    async close() {
      for (const c of open) c.close();
      wire.unsubscribe();
      await checks?.stop();
      await worker?.stop(1_000);
      await server.stop();
      await relay.stop(1_000);
      await h.close();
    },
  };
}

/** A cloud on the fake driver and an account on it, with its discovered regions, subscriptions and catalog. */
export async function seedAccount(f: ServersFixture, seed: AccountSeed = {}): Promise<string> {
  const { h } = f;
  const accountId = newId();
  const cloud = { driver: "fake", endpoint: "https://api.cloud.test" };
  await insertAccount(h.sql, { id: accountId, cloud, credentialId: `cred-${accountId}`, defaultBudgetCode: seed.defaultBudgetCode ?? null, status: seed.status ?? "ACTIVE" });
  const regions = seed.regions ?? [
    { id: "r1", dataCenters: ["r1-a", "r1-b"], capabilities: ["compute", "block_storage"] },
    { id: "r2", dataCenters: ["r2-a"], capabilities: ["block_storage"] },
  ];
  for (const [i, r] of regions.entries()) {
    await h.sql.execute`INSERT INTO account_regions (account_id, region_id, name, data_centers, position) VALUES (${accountId}, ${r.id}, ${`Region ${r.id}`}, ${JSON.stringify(r.dataCenters)}, ${i})`;
    for (const c of r.capabilities) await h.sql.execute`INSERT INTO subscriptions (account_id, region_id, capability) VALUES (${accountId}, ${r.id}, ${c})`;
    await h.sql.execute`
      INSERT INTO catalog_products (account_id, region_id, product_id, name, cpus, memory_mb, disk_gb, hourly_price_micros, accrues_when_stopped)
      VALUES (${accountId}, ${r.id}, 'small', 'Small', 1, 512, 1, 10000, FALSE), (${accountId}, ${r.id}, 'big', 'Big', 8, 32768, 100, 2000000, TRUE)`;
    await h.sql.execute`INSERT INTO catalog_images (account_id, region_id, image_id, name, platform) VALUES (${accountId}, ${r.id}, 'img-1', 'Image one', 'linux')`;
  }
  await f.scope(accountId, "every");
  return accountId;
}

/** A budget code (quotas in cents) granted to `holders`. */
export async function seedBudgetCode(f: ServersFixture, code: string, quotas: { hard: bigint; soft?: bigint; usage?: bigint; state?: "ACTIVE" | "DISABLED" }, holders: User[]): Promise<void> {
  await insertBudgetCode(f.h.sql, code, quotas);
  for (const u of holders) await f.h.sql.execute`INSERT INTO budget_code_grants (code, user_id, created_at) VALUES (${code}, ${u.id}, NOW(3))`;
}
