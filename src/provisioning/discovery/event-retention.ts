// Account events' retention: what discovery recorded of an account (regions and subscriptions added or removed,
// validations passed or failed) older than provisioning.accountEventRetentionDays leaves account_events in batches, so
// that the history of a long-lived (or long-broken) account does not grow without bound.
import type { SqlPool } from "../../db/sql.js";
import { startAgeRetention, type RetentionSettings } from "../../monitor/age-retention.js";
import type { Loop } from "../../monitor/loop.js";
import { deleteAccountEventsBefore } from "./repository.js";

export interface AccountEventRetentionOptions extends RetentionSettings {
  sql: SqlPool;
}

/** Small rows without dependants: a batch of 1,000 is one short statement. */
const BATCH = 1_000;
const SHARE = 0.1;
const INTERVAL_MS = 3_600_000;

/** The monitor's account-event retention loop; a stopped loop when retention is off (0 days). */
export function startAccountEventRetention(options: AccountEventRetentionOptions): Loop {
  return startAgeRetention(options, {
    name: "account-event-retention",
    defaults: { batch: BATCH, share: SHARE, intervalMs: INTERVAL_MS },
    purge: (before, limit) => deleteAccountEventsBefore(options.sql, before, limit),
    message: "deleted account events past retention",
    attribute: "dispatcher.purged_account_events",
  });
}
