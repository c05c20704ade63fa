// KM's audit retention: rows of audit_events older than km.auditRetentionDays leave the table in batches, each batch's
// deletion recorded in the trail itself (row and file line, in the deleting transaction), so the trail says what left
// it and when. The table's trigger refuses to delete a row younger than 7 days, whoever asks (migration
// 20261206180000_audit_retention; km.auditRetentionDays refuses less); the audit file keeps every record for as long
// as its rotation does.
import { startAgeRetention, type RetentionSettings } from "../monitor/age-retention.js";
import type { Loop } from "../monitor/loop.js";
import type { AuditLog } from "./audit.js";
import { deleteAuditRowsBefore, inTransaction, type CredentialsPool } from "./repository.js";

/** Who the trail names for its own deletions. */
export const RETENTION_PRINCIPAL = "km:retention";

export interface AuditRetentionOptions extends RetentionSettings {
  pool: CredentialsPool;
  audit: AuditLog;
}

/**
 * Rows per batch: each deleted row runs the trigger, and a batch holds its rows' locks until it commits (the oldest
 * rows', which no insert touches); 5,000 rows took 60–110 ms on 2 cores.
 */
const BATCH = 5_000;
const SHARE = 0.1;
const INTERVAL_MS = 600_000;

/** Deletes up to `limit` rows older than `before`, oldest first, and records the deletion; answers how many went. */
export async function pruneAuditRows(pool: CredentialsPool, audit: AuditLog, options: { before: Date; limit: number; now: Date }): Promise<number> {
  return inTransaction(pool, async (tx) => {
    const deleted = await deleteAuditRowsBefore(tx, options.before, options.limit);
    if (deleted > 0) {
      // In the same transaction: if the record cannot be written, the rows stay.
      await audit.recordInTransaction(tx, { time: options.now, action: "prune", principal: RETENTION_PRINCIPAL, result: "OK", detail: `${deleted} record(s) older than ${options.before.toISOString()}` });
    }
    return deleted;
  });
}

/** KM's audit retention loop; a stopped loop when retention is off (0 days). */
export function startAuditRetention(options: AuditRetentionOptions): Loop {
  return startAgeRetention(options, {
    name: "km-audit-retention",
    defaults: { batch: BATCH, share: SHARE, intervalMs: INTERVAL_MS },
    purge: (before, limit) => pruneAuditRows(options.pool, options.audit, { before, limit, now: options.now() }),
    message: "deleted audit records past retention",
    attribute: "km.audit.deleted",
  });
}
