// KM's audit trail, written twice: a row in audit_events (append-only) and a line in an append-only JSON-lines file.
// Fail closed: a request is answered only after both copies of its record were written; if either cannot be written
// the request fails (as Vault does when no audit device succeeds). Records of concurrent requests share one insert
// and one file append (group commit), so auditing costs one round trip per batch, not per request.
import { appendFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { UnavailableError } from "../errors.js";
import { appendAuditRows, insertAuditRows, type AuditRow, type CredentialsDb, type CredentialsPool } from "./repository.js";

export type AuditAction = "store" | "get" | "list" | "delete" | "rotate" | "rewrap" | "denied";

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
  recordInTransaction(tx: CredentialsDb, entry: AuditRecord): Promise<void>;
  /** Waits for the batch under way. */
  flush(): Promise<void>;
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

export function createAuditLog(options: { pool: CredentialsPool; file: string }): AuditLog {
  const { pool, file } = options;
  let dirReady: Promise<unknown> | undefined;
  let queue: { entry: AuditRecord; resolve: () => void; reject: (err: Error) => void }[] = [];
  let running: Promise<void> | undefined;

  // appendFile opens the file with O_APPEND each time, so a rotated or removed file is re-created, never overwritten.
  const appendLines = async (text: string): Promise<void> => {
    dirReady ??= mkdir(dirname(file), { recursive: true, mode: 0o700 });
    await dirReady;
    await appendFile(file, text, { flag: "a", mode: 0o600 });
  };

  const failure = (err: unknown): UnavailableError => new UnavailableError("the audit trail cannot be written: request refused", "AUDIT_UNAVAILABLE", { cause: err });

  const drain = async (): Promise<void> => {
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      try {
        await appendAuditRows(pool, batch.map((b) => toRow(b.entry)));
        await appendLines(batch.map((b) => toLine(b.entry)).join(""));
        for (const b of batch) b.resolve();
      } catch (err) {
        const e = failure(err);
        for (const b of batch) b.reject(e);
      }
    }
  };

  // One batch at a time; whatever queues meanwhile goes in the next one.
  const schedule = (): void => {
    if (running) return;
    running = new Promise<void>((r) => setImmediate(r))
      .then(drain)
      .finally(() => {
        running = undefined;
        if (queue.length > 0) schedule();
      });
  };

  return {
    record(entry) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ entry, resolve, reject });
        schedule();
      });
    },

    async recordInTransaction(tx, entry) {
      try {
        await insertAuditRows(tx, [toRow(entry)]);
        await appendLines(toLine(entry));
      } catch (err) {
        throw failure(err);
      }
    },

    async flush() {
      await running;
    },
  };
}
