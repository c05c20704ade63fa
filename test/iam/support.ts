// IAM test fixtures: a migrated provisioning database, users with each built-in role and their API keys, and a real
// gRPC server serving SystemService and the IAM services behind the DB-backed API key authenticator.
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { newId } from "../../src/db/ids.js";
import { createApiKey } from "../../src/iam/api-keys/keys.js";
import { createApiKeyAuthenticator } from "../../src/iam/api-keys/authenticator.js";
import { iamRpcServices } from "../../src/rpc/iam/rpc-services.js";
import { auditRpcServices } from "../../src/audit/rpc-services.js";
import { sqlOfPrisma } from "../../src/db/sql.js";
import type { RpcService } from "../../src/rpc/adapter.js";
import { createSystemService } from "../../src/system/service.js";
import { systemHandlers } from "../../src/system/handlers.js";
import { createTestDatabases, type TestDatabases } from "../support/db.js";
import { startTestServer, type TestServer } from "../rpc/fixtures.js";

export const BUILT_IN = ["admin", "operator", "finance", "reader"] as const;
export type BuiltIn = (typeof BUILT_IN)[number];

export interface IamFixture {
  dbs: TestDatabases;
  server: TestServer;
  services: RpcService[];
  /** The user id and API key secret of a user holding exactly this role. */
  users: Record<BuiltIn, { id: string; secret: string }>;
  /** Moves the authenticator's clock (its 10 s cache) forward. */
  advance(ms: number): void;
  client(token?: string): DispatcherClients;
  close(): Promise<void>;
}

export async function insertUser(dbs: TestDatabases, roles: string[], kind: "USER" | "SERVICE" = "USER"): Promise<string> {
  const id = newId();
  await dbs.provisioning.user.create({ data: { id, email: `${id.toLowerCase()}@example.test`, name: `User ${id.slice(-4)}`, kind, roles: { create: roles.map((role) => ({ role })) } } });
  return id;
}

/** Inserts a cloud and an account with each of these ids (groups may only name accounts that exist). */
export async function insertAccounts(dbs: TestDatabases, ids: string[]): Promise<void> {
  const cloudId = newId();
  await dbs.provisioning.cloud.create({ data: { id: cloudId, name: `cloud ${cloudId.slice(-6)}`, driver: "test", endpoint: "https://api.cloud.test" } });
  await dbs.provisioning.account.createMany({ data: ids.map((id) => ({ id, name: id, cloudId, credentialId: `cred-${id}` })) });
}

/** Serves SystemService, the IAM services, the audit trail and whatever `extra` makes over the fixture's database. */
export async function startIamFixture(label: string, extra: (dbs: TestDatabases) => RpcService[] = () => []): Promise<IamFixture> {
  const dbs = await createTestDatabases(label);
  let skew = 0;
  const services = [systemHandlers(createSystemService({ roles: ["dispatcher"] })), ...iamRpcServices(dbs.provisioning), ...auditRpcServices({ sql: sqlOfPrisma(dbs.provisioning) }), ...extra(dbs)];
  const server = await startTestServer({ services, authenticate: createApiKeyAuthenticator(dbs.provisioning, () => Date.now() + skew) });
  const users = {} as IamFixture["users"];
  for (const role of BUILT_IN) {
    const id = await insertUser(dbs, [role]);
    users[role] = { id, secret: (await createApiKey(dbs.provisioning, id, `${role} key`)).secret };
  }
  const open: DispatcherClients[] = [];
  return {
    dbs,
    server,
    services,
    users,
    advance: (ms) => void (skew += ms),
    client(token) {
      const c = createDispatcherClients({ address: server.address, token, retry: false });
      open.push(c);
      return c;
    },
    async close() {
      for (const c of open) c.close();
      await server.stop();
      await dbs.drop();
    },
  };
}
