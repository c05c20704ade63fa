// Inventory retention: the monitor deletes servers TERMINATED and resources DELETED past inventory.retentionDays, with
// their histories and a server's agent, once cost accrual has passed the hour they ended in; live and recent ones stay,
// and nothing goes while the analytics database cannot say where accrual is.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACCRUAL_TASK } from "../../src/analytics/accrual.js";
import { createAnalyticsSql } from "../../src/analytics/db.js";
import { saveProgress } from "../../src/analytics/rollup.js";
import { newId } from "../../src/db/ids.js";
import { createSqlPool, type SqlPool } from "../../src/db/sql.js";
import { withDatabase } from "../../src/db/url.js";
import { inventoryCutoff, purgeEndedInventory, startInventoryRetention } from "../../src/servers/retention.js";
import { captureLogger } from "../mq/support.js";
import { createTestDatabases, type TestDatabases } from "../support/db.js";
import { until } from "../support/poll.js";
import { insertAccount, insertServer } from "../support/rows.js";

const DAY = 86_400_000;
let dbs: TestDatabases;
let sql: SqlPool;
let analytics: SqlPool;
let accountId: string;

beforeAll(async () => {
  dbs = await createTestDatabases("invret");
  sql = createSqlPool(dbs.urls.provisioning, 2);
  analytics = createAnalyticsSql(dbs.urls.analytics, 2);
  accountId = await insertAccount(sql);
});

afterAll(async () => {
  await sql?.end();
  await analytics?.end();
  await dbs?.drop();
});

/** A server that changed to `state` `daysAgo` days ago, with two events and a registered agent. */
async function server(state: string, daysAgo: number): Promise<string> {
  const at = new Date(Date.now() - daysAgo * DAY);
  const id = await insertServer(sql, { accountId, state, createdAt: at });
  for (const type of ["LAUNCH_REQUESTED", "STATE_CHANGED"]) {
    await sql.execute`INSERT INTO server_events (server_id, type, to_state, message, created_at) VALUES (${id}, ${type}, ${state}, 'test', ${at})`;
  }
  await sql.execute`
    INSERT INTO agents (id, server_id, credential_hash, version, hostname, address, port, state, next_ping_at)
    VALUES (${newId()}, ${id}, ${"0".repeat(64)}, '1', 'h', '127.0.0.1', 2003, 'GONE', NOW(3))`;
  await analytics.execute`INSERT INTO server_metric_samples (server_id, time, cpu_percent, memory_used_bytes) VALUES (${id}, ${at}, 5, 100)`;
  await analytics.execute`
    INSERT INTO server_metric_rollups (server_id, resolution, metric, bucket_start, count, sum, min, max, avg)
    VALUES (${id}, 'DAY', 'cpu_percent', ${at}, 1, 5, 5, 5, 5)`;
  await analytics.execute`
    INSERT INTO cost_accruals (server_id, period_start, account_id, budget_code, hourly_price_micros, accruing_ms, amount_micros)
    VALUES (${id}, ${at}, ${accountId}, 'b', 1000, 3600000, 1000)`;
  return id;
}

/** A volume that changed to `state` `daysAgo` days ago, with one event. */
async function resource(state: string, daysAgo: number): Promise<string> {
  const id = newId();
  const at = new Date(Date.now() - daysAgo * DAY);
  await sql.execute`
    INSERT INTO resources (id, account_id, region_id, type, provider_id, name, state, origin, budget_code, tags, details, hourly_price_micros,
                           created_by, version, state_changed_at, deleted_at, created_at, updated_at)
    VALUES (${id}, ${accountId}, 'r1', 'VOLUME', ${`vol-${id}`}, 'v', ${state}, 'CREATED', '', '{}', '{}', 0, 'u', 1, ${at},
            ${state === "DELETED" ? at : null}, ${at}, ${at})`;
  await sql.execute`INSERT INTO resource_events (resource_id, type, to_state, message, created_at) VALUES (${id}, 'STATE_CHANGED', ${state}, 'test', ${at})`;
  return id;
}

async function left(ids: string[]): Promise<string[]> {
  const rows = await sql.query<{ id: string }>`SELECT id FROM servers WHERE id IN (${ids}) UNION ALL SELECT id FROM resources WHERE id IN (${ids})`;
  return rows.map((r) => r.id).sort();
}

const count = async (q: Promise<{ n: bigint }[]>): Promise<number> => Number((await q)[0]?.n ?? 0);

describe("inventory retention", () => {
  it("deletes servers terminated and resources deleted past retention with their histories and agents, once accrual has passed them", async () => {
    const oldGone = [await server("TERMINATED", 100), await server("TERMINATED", 95)];
    const recentGone = await server("TERMINATED", 10);
    const oldRunning = await server("RUNNING", 200);
    const oldDeleted = await resource("DELETED", 100);
    const recentDeleted = await resource("DELETED", 10);
    const oldLive = await resource("AVAILABLE", 200);
    const all = [...oldGone, recentGone, oldRunning, oldDeleted, recentDeleted, oldLive];

    // Accrual is 120 days behind (analytics was down): the servers' last hours are still to be accrued, so they stay.
    await saveProgress(analytics, ACCRUAL_TASK, new Date(Date.now() - 120 * DAY));
    const held = await inventoryCutoff(analytics, new Date(), 90);
    expect(held.getTime()).toBeLessThan(Date.now() - 120 * DAY);
    expect(await purgeEndedInventory(sql, analytics, { before: held, limit: 10 })).toEqual({ servers: 0, serverEvents: 0, metricRows: 0, resources: 0, resourceEvents: 0 });

    // Accrual has caught up: the loop works through them a batch of one at a time.
    await saveProgress(analytics, ACCRUAL_TASK, new Date());
    const { log, lines } = captureLogger("debug");
    const loop = startInventoryRetention({ sql, analytics, log, retentionDays: 90, now: () => new Date(), batch: 1, share: 1, intervalMs: 60_000 });
    try {
      await until(async () => (await left([...oldGone, oldDeleted])).length === 0 || undefined, 10_000, "old servers and resources deleted");
    } finally {
      await loop.stop(1_000);
    }
    expect(await left(all)).toEqual([recentGone, oldRunning, recentDeleted, oldLive].sort());
    expect(await count(sql.query`SELECT COUNT(*) AS n FROM server_events WHERE server_id IN (${oldGone})`)).toBe(0);
    expect(await count(sql.query`SELECT COUNT(*) AS n FROM agents WHERE server_id IN (${oldGone})`)).toBe(0);
    expect(await count(sql.query`SELECT COUNT(*) AS n FROM resource_events WHERE resource_id = ${oldDeleted}`)).toBe(0);
    expect(await count(sql.query`SELECT COUNT(*) AS n FROM server_events WHERE server_id IN (${[recentGone, oldRunning]})`)).toBe(4);
    expect(await count(sql.query`SELECT COUNT(*) AS n FROM agents WHERE server_id IN (${[recentGone, oldRunning]})`)).toBe(2);
    expect(await count(sql.query`SELECT COUNT(*) AS n FROM resource_events WHERE resource_id IN (${[recentDeleted, oldLive]})`)).toBe(2);
    // Their metrics went with them (nothing reads a server's metrics but through its row); their costs stay.
    const metrics = (ids: string[]): Promise<number> =>
      count(analytics.query`SELECT (SELECT COUNT(*) FROM server_metric_samples WHERE server_id IN (${ids})) + (SELECT COUNT(*) FROM server_metric_rollups WHERE server_id IN (${ids})) AS n`);
    expect(await metrics(oldGone)).toBe(0);
    expect(await metrics([recentGone, oldRunning])).toBe(4);
    expect(await count(analytics.query`SELECT COUNT(*) AS n FROM cost_accruals WHERE server_id IN (${oldGone})`)).toBe(2);
    const said = lines.filter((l) => l.msg === "deleted servers and resources past retention");
    expect(said.reduce((n, l) => n + Number(l.servers), 0)).toBe(2);
    expect(said.reduce((n, l) => n + Number(l.resources), 0)).toBe(1);

    // A shorter retention takes the recent ones too; live ones never go, however old.
    expect(await purgeEndedInventory(sql, analytics, { before: new Date(Date.now() - DAY), limit: 10 })).toEqual({ servers: 1, serverEvents: 2, metricRows: 2, resources: 1, resourceEvents: 1 });
    expect(await left(all)).toEqual([oldRunning, oldLive].sort());
  });

  it("keeps everything while the analytics database is unavailable, saying so once", async () => {
    const gone = await server("TERMINATED", 400);
    const down = createAnalyticsSql(withDatabase(dbs.urls.analytics, "dispatcher_no_such_analytics"), 1, { acquireTimeoutMs: 200 });
    const { log, lines } = captureLogger("debug");
    const loop = startInventoryRetention({ sql, analytics: down, log, retentionDays: 90, now: () => new Date(), intervalMs: 50 });
    try {
      // Several passes (50 ms apart), one warning.
      await until(() => lines.filter((l) => l.msg.startsWith("analytics database unavailable")).length >= 1 || undefined, 5_000, "the warning");
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      await loop.stop(1_000);
      await down.end();
    }
    expect(lines.filter((l) => l.msg.startsWith("analytics database unavailable"))).toHaveLength(1);
    expect(lines.filter((l) => l.level === "error")).toEqual([]);
    expect(await left([gone])).toEqual([gone]);
  });
});
