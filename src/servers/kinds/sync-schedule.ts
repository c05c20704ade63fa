// When the monitor syncs an account's servers: discovery.serverSyncIntervalMs after the last sync was scheduled (at
// once when none was), for ACTIVE accounts only. The claim moves accounts.next_server_sync_at.
import type { AccountSchedule } from "../../monitor/scheduler.js";
import { SERVERS_SYNC_KIND } from "./names.js";

export function serverSyncSchedule(intervalMs: number): AccountSchedule {
  return {
    name: "server_sync",
    kind: SERVERS_SYNC_KIND,
    intervalMs,
    due: (sql, now, limit) => sql.query`
      SELECT id, next_server_sync_at AS dueAt FROM accounts
       WHERE status = 'ACTIVE' AND (next_server_sync_at IS NULL OR next_server_sync_at <= ${now})
       ORDER BY next_server_sync_at LIMIT ${limit}`,
    claim: async (tx, id, dueAt, next) => (await tx.execute`UPDATE accounts SET next_server_sync_at = ${next} WHERE id = ${id} AND next_server_sync_at <=> ${dueAt}`) === 1,
  };
}
