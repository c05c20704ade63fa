// Analytics test fixtures: migrated provisioning and analytics databases with driver pools on both, and row builders
// for clouds, accounts, servers (with their state history at chosen times) and budget codes.
import { createAnalyticsSql } from "../../src/analytics/db.js";
import { createSqlPool, type Sql, type SqlPool } from "../../src/db/sql.js";
import { createTestDatabases, type TestDatabases } from "../support/db.js";
import { insertAccount, insertBudgetCode, insertServer as insertServerRow } from "../support/rows.js";

export interface AnalyticsFixture {
  dbs: TestDatabases;
  /** The provisioning database. */
  sql: SqlPool;
  analytics: SqlPool;
  accountId: string;
  close(): Promise<void>;
}

export async function openAnalyticsFixture(label: string): Promise<AnalyticsFixture> {
  const dbs = await createTestDatabases(label, 2);
  const sql = createSqlPool(dbs.urls.provisioning, 3);
  const analytics = createAnalyticsSql(dbs.urls.analytics, 3);
  const accountId = await insertAccount(sql);
  return {
    dbs,
    sql,
    analytics,
    accountId,
    async close() {
      await Promise.allSettled([sql.end(), analytics.end()]);
      await dbs.drop();
    },
  };
}

export { insertAccount, insertBudgetCode };

export type State = "PENDING" | "RUNNING" | "STOPPING" | "STOPPED" | "REBOOTING" | "TERMINATING" | "TERMINATED";

export interface TestServer {
  id: string;
  /** Records a state change at `at` (event + row), as the inventory does. */
  change(to: State, at: Date): Promise<void>;
}

/** A server created PENDING at `createdAt`, billed `hourlyPriceMicros` to `budgetCode`. */
export async function insertServer(
  sql: SqlPool,
  s: { accountId: string; budgetCode: string; hourlyPriceMicros: bigint; createdAt: Date; accruesWhenStopped?: boolean },
): Promise<TestServer> {
  const id = await insertServerRow(sql, { ...s, state: "PENDING", providerId: null });
  await sql.execute`INSERT INTO server_events (server_id, type, to_state, message, created_at) VALUES (${id}, 'LAUNCH_REQUESTED', 'PENDING', 'launch', ${s.createdAt})`;
  let state: State = "PENDING";
  return {
    id,
    async change(to, at) {
      await sql.execute`INSERT INTO server_events (server_id, type, from_state, to_state, message, created_at) VALUES (${id}, 'STATE_CHANGED', ${state}, ${to}, 'change', ${at})`;
      await sql.execute`UPDATE servers SET state = ${to}, state_changed_at = ${at}, version = version + 1 WHERE id = ${id}`;
      state = to;
    },
  };
}

export const MINUTE = 60_000;
export const HOUR = 3_600_000;

/** Sum of amount_micros and accruing_ms of a server's accrual rows. */
export async function accrued(analytics: SqlPool, serverId: string): Promise<{ micros: bigint; ms: number; rows: number }> {
  const rows = await analytics.query<{ micros: string | null; ms: string | null; n: bigint }>`
    SELECT SUM(amount_micros) AS micros, SUM(accruing_ms) AS ms, COUNT(*) AS n FROM cost_accruals WHERE server_id = ${serverId}`;
  return { micros: BigInt(rows[0]?.micros ?? 0), ms: Number(rows[0]?.ms ?? 0), rows: Number(rows[0]?.n ?? 0) };
}

/** The rows and index entries read so far by the statements of `sql`'s connection (a pool of one). */
async function handlerReads(sql: Sql): Promise<number> {
  const rows = await sql.query<{ Value: string }>`SHOW SESSION STATUS WHERE Variable_name IN ('Handler_read_key', 'Handler_read_next', 'Handler_read_prev', 'Handler_read_rnd_next')`;
  return rows.reduce((n, r) => n + Number(r.Value), 0);
}

/** What `run` reads through `sql`, a pool of one connection: rows and index entries, the counters' own reads taken out. */
export async function rowsReadBy(sql: Sql, run: () => Promise<unknown>): Promise<number> {
  const a = await handlerReads(sql);
  const b = await handlerReads(sql);
  await run();
  return (await handlerReads(sql)) - b - (b - a);
}
