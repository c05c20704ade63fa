// The audit trail's retention: rows of audit_events older than provisioning.auditRetentionDays leave the table in
// batches, each batch's deletion recorded in the trail itself in the deleting transaction, so the trail says what left
// it and when. The table's trigger refuses to delete a row younger than 7 days, whoever asks (migration
// 20261207000000_history_retention); the setting refuses less.
import type { SqlPool } from "../db/sql.js";
import { startAgeRetention, type RetentionSettings } from "../monitor/age-retention.js";
import type { Loop } from "../monitor/loop.js";
import { currentTraceId } from "../telemetry/spans.js";
import { appendAuditRow, deleteAuditRowsBefore } from "./repository.js";

/** Who the trail names for its own deletions. */
export const RETENTION_PRINCIPAL = "monitor:retention";

export interface AuditTrailRetentionOptions extends RetentionSettings {
  sql: SqlPool;
}

/** Each deleted row runs the trigger; 1,000 keeps a batch's commit short beside job creation. */
const BATCH = 1_000;
const SHARE = 0.1;
const INTERVAL_MS = 3_600_000;

/** Deletes up to `limit` rows recorded before `before`, oldest first, and records the deletion; answers how many went. */
export async function pruneAuditTrail(sql: SqlPool, options: { before: Date; limit: number }): Promise<number> {
  return sql.transaction(async (tx) => {
    const deleted = await deleteAuditRowsBefore(tx, options.before, options.limit);
    if (deleted > 0) {
      // In the same transaction: if the record cannot be written, the rows stay.
      await appendAuditRow(tx, {
        principal: RETENTION_PRINCIPAL,
        traceId: currentTraceId() ?? "",
        action: "audit_trail.prune",
        objectType: "audit_trail",
        objectId: "audit_events",
        diff: JSON.stringify({ records: { to: deleted }, olderThan: { to: options.before.toISOString() } }),
      });
    }
    return deleted;
  });
}

/** The monitor's audit-trail retention loop; a stopped loop when retention is off (0 days). */
export function startAuditTrailRetention(options: AuditTrailRetentionOptions): Loop {
  return startAgeRetention(options, {
    name: "audit-retention",
    defaults: { batch: BATCH, share: SHARE, intervalMs: INTERVAL_MS },
    purge: (before, limit) => pruneAuditTrail(options.sql, { before, limit }),
    message: "deleted audit records past retention",
    attribute: "dispatcher.purged_audit_records",
  });
}
