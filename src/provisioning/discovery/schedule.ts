// When the monitor re-discovers an account: discovery.intervalMs after it was last scheduled (at once when it never
// was), never while it is disabled. The claim moves accounts.next_discovery_at.
import { sqlFragment } from "../../db/sql.js";
import { accountsDueBy, type AccountSchedule } from "../../monitor/scheduler.js";
import { ACCOUNT_DISCOVER_KIND } from "./kind.js";

export function discoverySchedule(intervalMs: number): AccountSchedule {
  return accountsDueBy({ name: "discovery", kind: ACCOUNT_DISCOVER_KIND, intervalMs, dueColumn: sqlFragment`next_discovery_at`, eligible: sqlFragment`status <> 'DISABLED'` });
}
