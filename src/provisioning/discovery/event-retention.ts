// Account events' retention: what discovery recorded of an account (regions and subscriptions added or removed,
// validations passed or failed) older than provisioning.accountEventRetentionDays leaves account_events in batches, so
// that the history of a long-lived (or long-broken) account does not grow without bound.
import type { SqlPool } from "../../db/sql.js";
import type { Logger } from "../../log.js";
import { startAgeRetention } from "../../monitor/age-retention.js";
import type { Loop } from "../../monitor/loop.js";
import { deleteAccountEventsBefore } from "./repository.js";

export interface AccountEventRetentionOptions {
  sql: SqlPool;
  log: Logger;
  /** Events older than this many days go; 0 keeps them all. */
  retentionDays: number;
  now: () => Date;
  /** Events per batch (one statement, its own commit). */
  batch?: number;
  /** Share of the time a backlog's deletes may take (src/monitor/loop.ts). */
  share?: number;
  intervalMs?: number;
}

/** Small rows without dependants: a batch of 1,000 is one short statement. */
const BATCH = 1_000;
const SHARE = 0.1;
const INTERVAL_MS = 3_600_000;

/** The monitor's account-event retention loop; a stopped loop when retention is off (0 days). */
export function startAccountEventRetention(options: AccountEventRetentionOptions): Loop {
  return startAgeRetention({
    name: "account-event-retention",
    log: options.log.child({ component: "account-event-retention" }),
    retentionDays: options.retentionDays,
    now: options.now,
    batch: options.batch ?? BATCH,
    share: options.share ?? SHARE,
    intervalMs: options.intervalMs ?? INTERVAL_MS,
    purge: (before, limit) => deleteAccountEventsBefore(options.sql, before, limit),
    message: "deleted account events past retention",
    attribute: "dispatcher.purged_account_events",
  });
}
