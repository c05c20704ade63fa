// The client's side of dispatcher/v1/audit.proto: the audit trail (admins only).
import { AuditServiceService, ListAuditEventsRequest } from "../../gen/proto/dispatcher/v1/audit.js";

export const audit = { definition: AuditServiceService, requests: { listAuditEvents: ListAuditEventsRequest } };
