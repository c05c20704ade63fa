// Provisioning test fixtures: a migrated provisioning database, a user with each built-in role and their API keys,
// and a real gRPC server serving SystemService, the IAM services, the provisioning services and JobService behind the
// DB-backed API key authenticator. Host names resolve through a fixed table, so SSRF checks of names need no DNS.
import type { DispatcherClients } from "../../src/client/index.js";
import { createSqlPool, type SqlPool } from "../../src/db/sql.js";
import { jobHandlers } from "../../src/jobs/handlers.js";
import { buildCatalog } from "../../src/app/catalog.js";
import { createJobService, type JobService } from "../../src/jobs/service.js";
import { createLogger } from "../../src/log.js";
import type { TestServer } from "../rpc/fixtures.js";
import type { TestDatabases } from "../support/db.js";
import { NotFoundError } from "../../src/errors.js";
import type { CredentialMetadata, KmClient } from "../../src/km/client.js";
import type { CredentialStore } from "../../src/provisioning/accounts/service.js";
import { provisioningRpcServices } from "../../src/provisioning/rpc-services.js";
import type { RpcService } from "../../src/rpc/adapter.js";
import { testSubjectPrefix } from "../mq/support.js";
import { BUILT_IN, insertUser, startIamFixture, type BuiltIn } from "../iam/support.js";

export { BUILT_IN, insertUser, type BuiltIn };

/** What the fixture's resolver answers; any other name does not resolve. */
export const HOSTS: Readonly<Record<string, string[]>> = {
  "api.cloud.test": ["203.0.113.10"],
  "rebind.cloud.test": ["203.0.113.11", "169.254.169.254"],
  "v6meta.cloud.test": ["fd00:ec2::254"],
};

export async function fixedResolve(host: string): Promise<string[]> {
  const answer = HOSTS[host];
  if (!answer) throw new Error(`ENOTFOUND ${host}`);
  return answer;
}

/** An in-memory stand-in for KM's StoreCredential/DeleteCredential/GetCredential that records what it was given. */
export interface FakeKm extends CredentialStore, Pick<KmClient, "useCredential"> {
  stored: Map<string, { accountId: string; type: string; fields: Record<string, string> }>;
  deleted: string[];
  /** When set, the next calls fail with it (e.g. an UnavailableError for a KM outage). */
  failWith: Error | null;
}

export function fakeKm(): FakeKm {
  let n = 0;
  const km: FakeKm = {
    stored: new Map(),
    deleted: [],
    failWith: null,
    async storeCredential(input) {
      if (km.failWith) throw km.failWith;
      const id = `cred-${++n}`;
      km.stored.set(id, { accountId: input.accountId, type: input.type, fields: { ...input.fields } });
      const meta: CredentialMetadata = { id, accountId: input.accountId, type: input.type, labels: input.labels ?? {}, keyVersion: 1, createTime: new Date() };
      return meta;
    },
    async useCredential(input, use) {
      if (km.failWith) throw km.failWith;
      const stored = km.stored.get(input.id);
      if (!stored || stored.accountId !== input.accountId) throw new NotFoundError("credential", input.id);
      return use(Object.freeze({ ...stored.fields }));
    },
    async deleteCredential(input) {
      if (km.failWith) throw km.failWith;
      km.deleted.push(input.id);
      km.stored.delete(input.id);
    },
  };
  return km;
}

export interface ProvisioningFixture {
  dbs: TestDatabases;
  server: TestServer;
  /** Only the provisioning services (CloudService, BudgetCodeService, AccountService). */
  services: RpcService[];
  users: Record<BuiltIn, { id: string; secret: string }>;
  km: FakeKm;
  /** The job service CreateAccount and DiscoverAccount start jobs through (also served: JobService). No relay runs. */
  jobs: JobService;
  sql: SqlPool;
  /** Subjects the fixture's jobs are published on (when a relay runs: see discovery-support.ts). */
  subjectPrefix: string;
  client(token?: string): DispatcherClients;
  close(): Promise<void>;
}

/** Default discovery interval of the fixture's account service. */
export const FIXTURE_DISCOVERY_INTERVAL_MS = 3_600_000;

export async function startProvisioningFixture(label: string): Promise<ProvisioningFixture> {
  const km = fakeKm();
  let services: RpcService[] = [];
  let sql: SqlPool | undefined;
  let jobs: JobService | undefined;
  const subjectPrefix = testSubjectPrefix(label);
  const fixture = await startIamFixture(label, (dbs) => {
    sql = createSqlPool(dbs.urls.provisioning, 4);
    jobs = createJobService({ sql, catalog: buildCatalog(), subjectPrefix, log: createLogger({ level: "silent" }) });
    services = provisioningRpcServices(dbs.provisioning, { allowInsecure: false, allowLinkLocal: false, resolve: fixedResolve }, () => km, jobs, { discoveryIntervalMs: FIXTURE_DISCOVERY_INTERVAL_MS });
    return [...services, jobHandlers(jobs)];
  });
  const pool = sql as SqlPool;
  return {
    ...fixture,
    services,
    km,
    jobs: jobs as JobService,
    sql: pool,
    subjectPrefix,
    async close() {
      await pool.end();
      await fixture.close();
    },
  };
}
