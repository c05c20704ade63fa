// Rows for integration tests, one builder per table: a test names what matters to it, the builder fills in the rest
// with valid values (fresh ids, timestamps now) and returns the row's key.
import { newId } from "../../src/db/ids.js";
import type { Sql } from "../../src/db/sql.js";

export interface CloudSeed {
  id?: string;
  name?: string;
  driver?: string;
  endpoint?: string;
}

/** A cloud (default: driver `local`, a test endpoint). */
export async function insertCloud(sql: Sql, c: CloudSeed = {}): Promise<string> {
  const id = c.id ?? newId();
  await sql.execute`
    INSERT INTO clouds (id, name, driver, endpoint, version, created_at, updated_at)
    VALUES (${id}, ${c.name ?? `cloud-${id}`}, ${c.driver ?? "local"}, ${c.endpoint ?? "https://cloud.test"}, 1, NOW(3), NOW(3))`;
  return id;
}

export interface AccountSeed {
  id?: string;
  name?: string;
  /** The account's cloud; default a new one made from `cloud`. */
  cloudId?: string;
  cloud?: CloudSeed;
  credentialId?: string;
  status?: "PENDING" | "ACTIVE" | "FAILED" | "DISABLED";
  defaultBudgetCode?: string | null;
}

/** An account (default ACTIVE, on a new cloud). */
export async function insertAccount(sql: Sql, a: AccountSeed = {}): Promise<string> {
  const id = a.id ?? newId();
  const cloudId = a.cloudId ?? (await insertCloud(sql, a.cloud));
  await sql.execute`
    INSERT INTO accounts (id, name, cloud_id, credential_id, default_budget_code, status, version, created_at, updated_at)
    VALUES (${id}, ${a.name ?? `acct-${id}`}, ${cloudId}, ${a.credentialId ?? "cred"}, ${a.defaultBudgetCode ?? null}, ${a.status ?? "ACTIVE"}, 1, NOW(3), NOW(3))`;
  return id;
}

export interface BudgetCodeSeed {
  hard: bigint;
  soft?: bigint;
  usage?: bigint;
  state?: "ACTIVE" | "DISABLED";
}

/** A budget code with its quotas in cents. */
export async function insertBudgetCode(sql: Sql, code: string, b: BudgetCodeSeed): Promise<void> {
  await sql.execute`
    INSERT INTO budget_codes (code, name, finance_code, hard_quota_cents, soft_quota_cents, state, current_usage_cents, projected_usage_cents, version, created_at, updated_at)
    VALUES (${code}, ${code}, 'F-1', ${b.hard}, ${b.soft ?? 0n}, ${b.state ?? "ACTIVE"}, ${b.usage ?? 0n}, 0, 1, NOW(3), NOW(3))`;
}

export interface ServerSeed {
  id?: string;
  accountId: string;
  regionId?: string;
  dataCenter?: string;
  providerId?: string | null;
  name?: string;
  productId?: string;
  imageId?: string;
  budgetCode?: string;
  state?: string;
  privateAddresses?: string[];
  hourlyPriceMicros?: bigint;
  accruesWhenStopped?: boolean;
  agentState?: "NONE" | "PENDING" | "CONNECTED" | "LOST" | "GONE";
  createdBy?: string;
  /** created_at, updated_at and state_changed_at; default now. */
  createdAt?: Date;
}

/** A server (default RUNNING in r1, a provider id of its own, no agent). */
export async function insertServer(sql: Sql, s: ServerSeed): Promise<string> {
  const id = s.id ?? newId();
  const at = s.createdAt ?? new Date();
  const addresses = JSON.stringify({ private: s.privateAddresses ?? [], public: [] });
  await sql.execute`
    INSERT INTO servers (id, account_id, region_id, data_center, provider_id, name, product_id, image_id, budget_code, state, origin,
                         addresses, details, hourly_price_micros, accrues_when_stopped, agent_state, state_changed_at, created_by,
                         version, created_at, updated_at)
    VALUES (${id}, ${s.accountId}, ${s.regionId ?? "r1"}, ${s.dataCenter ?? "dc1"}, ${s.providerId === undefined ? `p-${id}` : s.providerId},
            ${s.name ?? `srv-${id}`}, ${s.productId ?? "small"}, ${s.imageId ?? "img"}, ${s.budgetCode ?? "b"}, ${s.state ?? "RUNNING"}, 'LAUNCHED',
            ${addresses}, '{}', ${s.hourlyPriceMicros ?? 0n}, ${s.accruesWhenStopped ?? false}, ${s.agentState ?? "NONE"}, ${at},
            ${s.createdBy ?? "u-test"}, 1, ${at}, ${at})`;
  return id;
}
