// What an audit row may say about a change: per object type, the fields allowed in its diff (an allow-list: a field
// not named here never reaches the trail, so a secret added to a view later cannot leak into it), and the diff of
// two snapshots over those fields.

/** The objects whose changes are audited. Cloud resources (firewalls, addresses, key pairs, volumes …) share "resource" fields. */
export const AUDIT_FIELDS = Object.freeze({
  user: ["email", "name", "kind", "status", "roles"],
  group: ["name", "description", "memberUserIds", "roles", "accountIds"],
  // Never the secret, its hash nor its prefix (the first characters of the secret).
  api_key: ["userId", "name", "expiresAt", "revokedAt"],
  cloud: ["name", "driver", "endpoint", "regions"],
  // Never the credential fields (they go to KM and are not kept here).
  account: ["name", "cloudId", "defaultBudgetCode", "status"],
  budget_code: ["code", "name", "financeCode", "hardQuotaCents", "softQuotaCents", "state", "userIds", "replacementCode"],
  // A resource and the payload of a job on it: never a private key (key pairs made here return theirs to the caller
  // alone) nor a public key's text (long, and of no use to the reader: the fingerprint names it).
  resource: ["name", "accountId", "regionId", "budgetCode", "tags", "description", "fingerprint", "keyType", "rule", "serverId", "set", "remove", "sizeGiB", "volumeType", "dataCenter", "snapshotId", "volumeId", "device"],
} satisfies Record<string, readonly string[]>);

export type AuditFieldSet = keyof typeof AUDIT_FIELDS;

/** One field's change: `from` is absent for a created object, `to` for a deleted one. */
export interface FieldChange {
  from?: unknown;
  to?: unknown;
}

export type AuditDiff = Record<string, FieldChange>;

/** The longest string value kept (longer ones are cut, with "…" at the end). */
const MAX_STRING = 512;

/** A JSON-safe copy: dates as ISO strings, bigints as decimal strings, long strings cut; functions dropped. */
function plain(value: unknown, depth = 0): unknown {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "string") return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value;
  if (typeof value === "number" || typeof value === "boolean") return value;
  if (depth >= 4) return null;
  if (Array.isArray(value)) return value.map((v) => plain(v, depth + 1));
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) if (typeof v !== "function") out[k] = plain(v, depth + 1);
    return out;
  }
  return null;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
const empty = (v: unknown): boolean => v === null || v === "" || (Array.isArray(v) && v.length === 0) || (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);

/**
 * The allowed fields that differ between `before` and `after` (null: the object did not exist / no longer exists).
 * A created object lists its non-empty allowed fields as `to`; a deleted one its allowed fields as `from`.
 */
export function auditDiff(fields: AuditFieldSet | string, before: object | null | undefined, after: object | null | undefined): AuditDiff {
  const out: AuditDiff = {};
  const b = (before ?? null) as Record<string, unknown> | null;
  const a = (after ?? null) as Record<string, unknown> | null;
  // An object type without an allow-list of its own records which object changed, and no field.
  const allowed: readonly string[] = (AUDIT_FIELDS as Readonly<Record<string, readonly string[]>>)[fields] ?? [];
  for (const field of allowed) {
    const has = (o: Record<string, unknown> | null): o is Record<string, unknown> => o !== null && Object.hasOwn(o, field);
    const from = has(b) ? plain(b[field]) : undefined;
    const to = has(a) ? plain(a[field]) : undefined;
    if (b && a) {
      if (from === undefined && to === undefined) continue;
      if (!same(from, to)) out[field] = { from: from ?? null, to: to ?? null };
    } else if (a && to !== undefined && !empty(to)) out[field] = { to };
    else if (b && from !== undefined && !empty(from)) out[field] = { from };
  }
  return out;
}
