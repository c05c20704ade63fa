// Inventory retention: servers TERMINATED and resources DELETED longer ago than inventory.retentionDays leave the
// provisioning database in small batches with their event histories (and a server's agent and metrics), so that the
// inventory grows with the fleet rather than with its churn. Only once cost accrual has passed the hour they ended in:
// the accrual reads an ended server's row and history for its last hours. Their costs stay in analytics (reports).
import { deleteAgentsOfServers } from "../agent/repository.js";
import { firstOpenHour } from "../analytics/accrual.js";
import { analyticsOutageGuard } from "../analytics/db.js";
import { deleteServerMetrics } from "../analytics/retention.js";
import type { Sql, SqlPool } from "../db/sql.js";
import type { RetentionSettings } from "../monitor/age-retention.js";
import { startLoop, type Loop } from "../monitor/loop.js";
import { PURGE_IN_CHUNK } from "../monitor/retention.js";
import { deleteResourcesWithEvents, lockResourcesDeletedBefore } from "../resources/repository.js";
import { deleteServersWithEvents, lockServersTerminatedBefore } from "./repository.js";

/** Servers and resources that ended more than `retentionDays` ago go; `batch` of each per transaction. */
export interface InventoryRetentionOptions extends RetentionSettings {
  sql: SqlPool;
  analytics: Sql;
}

export interface InventoryPurge {
  servers: number;
  serverEvents: number;
  /** Metric samples and roll-ups of the servers deleted (analytics). */
  metricRows: number;
  resources: number;
  resourceEvents: number;
}

/** A server with its handful of events is a few rows: batches as small as the jobs purge's keep commits short. */
const BATCH = 200;
const SHARE = 0.1;
const INTERVAL_MS = 600_000;

/**
 * Deletes up to `limit` servers and `limit` resources that ended before `before`, with their histories, and the
 * servers' metrics from analytics.
 */
export async function purgeEndedInventory(sql: SqlPool, analytics: Sql, options: { before: Date; limit: number }): Promise<InventoryPurge> {
  const out: InventoryPurge = { servers: 0, serverEvents: 0, metricRows: 0, resources: 0, resourceEvents: 0 };
  await sql.transaction(async (tx) => {
    const ids = await lockServersTerminatedBefore(tx, options.before, options.limit);
    for (let i = 0; i < ids.length; i += PURGE_IN_CHUNK) {
      const chunk = ids.slice(i, i + PURGE_IN_CHUNK);
      // Metrics first, in their own database: should this transaction then fail, the servers go with the next pass,
      // and no metrics are left behind that nothing could reach.
      out.metricRows += await deleteServerMetrics(analytics, chunk);
      await deleteAgentsOfServers(tx, chunk);
      const n = await deleteServersWithEvents(tx, chunk);
      out.servers += n.servers;
      out.serverEvents += n.events;
    }
  });
  await sql.transaction(async (tx) => {
    const ids = await lockResourcesDeletedBefore(tx, options.before, options.limit);
    for (let i = 0; i < ids.length; i += PURGE_IN_CHUNK) {
      const n = await deleteResourcesWithEvents(tx, ids.slice(i, i + PURGE_IN_CHUNK));
      out.resources += n.resources;
      out.resourceEvents += n.events;
    }
  });
  return out;
}

/**
 * The end of what may go: `retentionDays` before now, and never past the first hour cost accrual may still rewrite
 * (analytics' mark; the month's start before the first run).
 */
export async function inventoryCutoff(analytics: Sql, now: Date, retentionDays: number): Promise<Date> {
  const byAge = now.getTime() - retentionDays * 86_400_000;
  return new Date(Math.min(byAge, (await firstOpenHour(analytics, now)).getTime()));
}

/** The monitor's inventory retention loop; a stopped loop when retention is off (0 days). */
export function startInventoryRetention(options: InventoryRetentionOptions): Loop {
  if (options.retentionDays <= 0) return { stop: async () => undefined };
  const log = options.log.child({ component: "inventory-retention" });
  const limit = options.batch ?? BATCH;
  // Without accrual's mark nothing is known to be accrued (and a server's metrics cannot go with it): wait for analytics.
  const guarded = analyticsOutageGuard(log, {
    down: "analytics database unavailable: ended servers and resources are kept until cost accrual can be checked",
    back: "analytics database is back: the inventory's retention resumes",
  });
  return startLoop({
    name: "inventory-retention",
    intervalMs: options.intervalMs ?? INTERVAL_MS,
    log,
    share: options.share ?? SHARE,
    run: (span) =>
      guarded(async () => {
        const before = await inventoryCutoff(options.analytics, options.now(), options.retentionDays);
        const purged = await purgeEndedInventory(options.sql, options.analytics, { before, limit });
        span.setAttribute("dispatcher.purged_servers", purged.servers);
        span.setAttribute("dispatcher.purged_resources", purged.resources);
        if (purged.servers + purged.resources > 0) log.info({ ...purged, before: before.toISOString(), retentionDays: options.retentionDays }, "deleted servers and resources past retention");
        return purged.servers >= limit || purged.resources >= limit;
      }),
  });
}
