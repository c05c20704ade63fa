// When the monitor syncs an account's servers: discovery.serverSyncIntervalMs after the last sync was scheduled (at
// once when none was), for ACTIVE accounts only. The claim moves accounts.next_server_sync_at.
import { sqlFragment } from "../../db/sql.js";
import { accountsDueBy, type AccountSchedule } from "../../monitor/scheduler.js";
import { SERVERS_SYNC_KIND } from "./names.js";

export function serverSyncSchedule(intervalMs: number): AccountSchedule {
  return accountsDueBy({ name: "server_sync", kind: SERVERS_SYNC_KIND, intervalMs, dueColumn: sqlFragment`next_server_sync_at`, eligible: sqlFragment`status = 'ACTIVE'` });
}
