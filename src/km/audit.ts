// KM's audit trail, written twice: a row in audit_events (append-only) and a line in an append-only JSON-lines file.
// Fail closed: a request is answered only after both copies of its record are durable — the row committed, the line
// written to disk (O_DSYNC); if either cannot be written the request fails (as Vault does when no audit device
// succeeds). Records of concurrent requests share one multi-row insert (one commit) and one durable file write
// (group commit), the two written side by side, so auditing costs one round trip and one disk flush per batch.
import { UnavailableError } from "../errors.js";
import { createAuditFile } from "./audit-file.js";
import { createBatcher, fulfilled } from "../db/batcher.js";
import type { Sql } from "../db/sql.js";
import { appendAuditRows, type AuditRow, type CredentialsPool } from "./repository.js";
import { recordKmAuditFailure } from "../telemetry/metrics.js";

export type AuditAction = "store" | "get" | "list" | "delete" | "rotate" | "rewrap" | "denied" | "prune";

/** One audited event. No field ever holds a secret: ids, names, codes and counts only. */
export interface AuditRecord {
  time: Date;
  action: AuditAction;
  /** Principal id, e.g. "cert:worker". */
  principal: string;
  credentialId?: string | undefined;
  accountId?: string | undefined;
  jobId?: string | undefined;
  traceId?: string | undefined;
  /** "OK" or the gRPC code name of the failure. */
  result: string;
  /** A short non-secret note: the caller's purpose, a key version, the method refused. */
  detail?: string | undefined;
}

export interface AuditLog {
  /** Writes the record (row + file line), batched with concurrent ones; rejects with UnavailableError when it cannot. */
  record(entry: AuditRecord): Promise<void>;
  /** Writes the record's row in `tx` and its file line now: a failure throws and so rolls back the caller's change. */
  recordInTransaction(tx: Sql, entry: AuditRecord): Promise<void>;
  /** Waits for the batches under way. */
  flush(): Promise<void>;
  /** Waits for the batches under way and closes the file (a later record opens it again). */
  close(): Promise<void>;
}

const cut = (s: string | undefined, n: number): string | null => (s ? s.slice(0, n) : null);

function toRow(e: AuditRecord): AuditRow {
  return {
    time: e.time,
    action: e.action,
    principal: e.principal.slice(0, 128),
    credentialId: cut(e.credentialId, 64),
    accountId: cut(e.accountId, 64),
    jobId: cut(e.jobId, 64),
    traceId: cut(e.traceId, 32),
    result: e.result.slice(0, 32),
    detail: cut(e.detail, 255),
  };
}

function toLine(e: AuditRecord): string {
  const r = toRow(e);
  return `${JSON.stringify({ time: r.time.toISOString(), action: r.action, principal: r.principal, credential_id: r.credentialId, account_id: r.accountId, job_id: r.jobId, trace_id: r.traceId, result: r.result, detail: r.detail })}\n`;
}

/** Records in one batch at most (one INSERT statement). */
const MAX_BATCH = 500;

export function createAuditLog(options: { pool: CredentialsPool; file: string }): AuditLog {
  const { pool, file } = options;
  const lines = createAuditFile(file);
  const appendLines = (text: string): Promise<void> => lines.append(text);

  const failure = (err: unknown): UnavailableError => new UnavailableError("the audit trail cannot be written: request refused", "AUDIT_UNAVAILABLE", { cause: err });

  // Two batches under way at most: a record that arrives while one batch waits for the disk starts the next at once
  // instead of waiting for that flush to end. The guarantee is per record: a batch's callers are answered only when
  // that batch's row and line are both durable, and all of them fail if either fails (a copy may then hold records of
  // calls that were refused — never the other way round). Batches do not wait for each other, so the order of
  // concurrent batches may differ between the table and the file; each record carries its time.
  const batches = createBatcher<AuditRecord, void>({
    maxInFlight: 2,
    maxBatch: MAX_BATCH,
    gather: "turn",
    async run(entries) {
      const [rows, lines] = await Promise.allSettled([appendAuditRows(pool, entries.map(toRow)), appendLines(entries.map(toLine).join(""))]);
      if (rows.status === "rejected") recordKmAuditFailure("database");
      if (lines.status === "rejected") recordKmAuditFailure("file");
      if (rows.status === "rejected") throw failure(rows.reason);
      if (lines.status === "rejected") throw failure(lines.reason);
      return fulfilled(entries.map(() => undefined));
    },
  });

  return {
    record: (entry) => batches.submit(entry),

    async recordInTransaction(tx, entry) {
      let sink: "database" | "file" = "database";
      try {
        await appendAuditRows(tx, [toRow(entry)]);
        sink = "file";
        await appendLines(toLine(entry));
      } catch (err) {
        recordKmAuditFailure(sink);
        throw failure(err);
      }
    },

    flush: () => batches.flush(),

    async close() {
      await batches.flush();
      await lines.close();
    },
  };
}
