// dispatcher.v1 AuditService over gRPC: filters validated here (INVALID_ARGUMENT with field violations), then the
// audit service, then complete response messages.
import { AuditServiceService as A, type AuditEvent } from "../gen/proto/dispatcher/v1/audit.js";
import { defineService, unary, type RpcService } from "../rpc/adapter.js";
import { afterIdFromToken, ID_RULES, nextToken, validateOne } from "../rpc/validate.js";
import type { AuditEventView, AuditService } from "./service.js";

const OBJECT_TYPE_RULES = { max: 32, pattern: /^[a-z][a-z0-9_]*$/, patternHint: "an object type such as user, group, budget_code, firewall" };
const PRINCIPAL_RULES = { max: 128 };
/** The times a filter may name (the column's range, and nothing was recorded before 1970). */
const EARLIEST = 0;
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59);

/** What a page token is bound to: the same filters must come with it. */
const tokenQuery = (f: { objectType?: string | undefined; objectId?: string | undefined; principal?: string | undefined; since?: Date | undefined; until?: Date | undefined }) => [f.objectType, f.objectId, f.principal, f.since?.toISOString(), f.until?.toISOString()];

const toProto = (e: AuditEventView): AuditEvent => ({ id: e.id, time: e.time, principal: e.principal, traceId: e.traceId, action: e.action, objectType: e.objectType, objectId: e.objectId, diffJson: e.diffJson });

export function auditHandlers(audit: AuditService): RpcService {
  return defineService(A, {
    listAuditEvents: unary(A.listAuditEvents, async (req) => {
      const q = validateOne((v) => {
        const filters = {
          objectType: v.optionalString("object_type", req.objectType, OBJECT_TYPE_RULES) || undefined,
          objectId: v.optionalString("object_id", req.objectId, ID_RULES) || undefined,
          principal: v.optionalString("principal", req.principal, PRINCIPAL_RULES) || undefined,
          since: req.startTime,
          until: req.endTime,
        };
        if (filters.objectId && !filters.objectType) v.add("object_type", "is required with object_id");
        for (const [field, t] of [["start_time", filters.since], ["end_time", filters.until]] as const) {
          if (t && !(t.getTime() >= EARLIEST && t.getTime() <= LATEST)) v.add(field, "must be between 1970-01-01 and 9999-12-31");
        }
        if (filters.since && filters.until && filters.since.getTime() >= filters.until.getTime()) v.add("end_time", "must be after start_time");
        const pageSize = v.pageSize("page_size", req.pageSize);
        return { ...filters, pageSize, beforeId: afterIdFromToken(v, req.pageToken, tokenQuery(filters)) };
      });
      const page = await audit.listAuditEvents(q);
      return { events: page.items.map(toProto), nextPageToken: nextToken(page, tokenQuery(q)) };
    }),
  });
}
