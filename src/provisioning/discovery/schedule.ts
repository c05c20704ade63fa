// When the monitor re-discovers an account: discovery.intervalMs after it was last scheduled (at once when it never
// was), never while it is disabled. The claim moves accounts.next_discovery_at.
import type { AccountSchedule } from "../../monitor/scheduler.js";
import { ACCOUNT_DISCOVER_KIND } from "./kind.js";

export function discoverySchedule(intervalMs: number): AccountSchedule {
  return {
    name: "discovery",
    kind: ACCOUNT_DISCOVER_KIND,
    intervalMs,
    // Never-scheduled accounts (NULL) are due at once; disabled ones never.
    due: (sql, now, limit) => sql.query`
      SELECT id, next_discovery_at AS dueAt FROM accounts
       WHERE status <> 'DISABLED' AND (next_discovery_at IS NULL OR next_discovery_at <= ${now})
       ORDER BY next_discovery_at LIMIT ${limit}`,
    claim: async (tx, id, dueAt, next) => (await tx.execute`UPDATE accounts SET next_discovery_at = ${next} WHERE id = ${id} AND next_discovery_at <=> ${dueAt}`) === 1,
  };
}
