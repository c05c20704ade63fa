// Reading the audit trail: filters by object, principal and time, newest first, keyset pages by event id. Who may read
// it is the permission table's business (admin.audit).
import type { Page } from "../db/page.js";
import type { Sql } from "../db/sql.js";
import { listAuditRows } from "./repository.js";

export interface AuditEventView {
  /** Decimal string of the event's 64-bit id. */
  id: string;
  time: Date;
  principal: string;
  traceId: string;
  action: string;
  objectType: string;
  objectId: string;
  /** JSON of the allow-listed diff; "" when no shown field changed. */
  diffJson: string;
}

export interface AuditQuery {
  objectType?: string | undefined;
  objectId?: string | undefined;
  principal?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  /** The id of the last event of the previous page (its next_page_token). */
  beforeId?: string | undefined;
  pageSize: number;
}

export interface AuditService {
  listAuditEvents(query: AuditQuery): Promise<Page<AuditEventView>>;
}

export function createAuditService(deps: { sql: Sql }): AuditService {
  return {
    async listAuditEvents(q) {
      const beforeId = q.beforeId !== undefined && /^\d{1,19}$/.test(q.beforeId) ? BigInt(q.beforeId) : undefined;
      const rows = await listAuditRows(deps.sql, { objectType: q.objectType, objectId: q.objectId, principal: q.principal, since: q.since, until: q.until, beforeId, limit: q.pageSize + 1 });
      const items = rows.slice(0, q.pageSize).map(
        (r): AuditEventView => ({ id: r.id.toString(), time: r.time, principal: r.principal, traceId: r.traceId ?? "", action: r.action, objectType: r.objectType, objectId: r.objectId, diffJson: r.diff ?? "" }),
      );
      return { items, nextAfter: rows.length > q.pageSize ? items.at(-1)?.id : undefined };
    },
  };
}
