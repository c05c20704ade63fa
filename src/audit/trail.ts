// Recording a change in the audit trail: one row in the caller's transaction (so the change and its record commit or
// roll back together), attributed to the current actor (src/audit/actor.ts), with a diff that holds only allow-listed
// fields (src/audit/diff.ts).
import type { ProvisioningDb } from "../db/clients.js";
import { isSql, sqlOfPrisma, type Sql } from "../db/sql.js";
import { currentActor } from "./actor.js";
import { auditDiff, type AuditFieldSet } from "./diff.js";
import { appendAuditRow } from "./repository.js";

export interface AuditChange {
  /** "<object type>.<verb>", e.g. "group.set_roles", "firewall.authorize". */
  action: string;
  /** "user", "group", "api_key", "cloud", "account", "budget_code", or a resource type ("firewall", …). */
  objectType: string;
  objectId: string;
  /** Which allow-list the diff is cut by (default: the object type's own). */
  fields?: AuditFieldSet | undefined;
  /** The object before the change (absent or null: it did not exist) and after it (absent or null: it is gone). */
  before?: object | null | undefined;
  after?: object | null | undefined;
}

/** Appends the change's row in `db` (pass the change's own transaction, Prisma or src/db/sql.ts). */
export async function recordChange(db: ProvisioningDb | Sql, change: AuditChange): Promise<void> {
  const actor = currentActor();
  const diff = auditDiff(change.fields ?? change.objectType, change.before, change.after);
  await appendAuditRow(isSql(db) ? db : sqlOfPrisma(db), {
    principal: actor.principal,
    traceId: actor.traceId,
    action: change.action,
    objectType: change.objectType,
    objectId: change.objectId,
    diff: Object.keys(diff).length > 0 ? JSON.stringify(diff) : null,
  });
}
