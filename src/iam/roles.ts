// The built-in roles: their names, and as the API describes them — a description and the permissions each grants,
// derived from the permission table (permissions.ts) so the description can never disagree with what is enforced.
import { NotFoundError } from "../errors.js";
import { METHOD_PERMISSIONS, PUBLIC, roleGrants, SERVICE_ONLY_PERMISSIONS } from "./permissions.js";

/** The built-in roles, most powerful first. */
export const ROLES = ["admin", "operator", "finance", "reader"] as const;
export type Role = (typeof ROLES)[number];

export interface RoleInfo {
  name: Role;
  description: string;
  /** Sorted. Service-only permissions (credentials.use) are left out: no person exercises them, whatever the role. */
  permissions: string[];
}

const DESCRIPTIONS: Readonly<Record<Role, string>> = {
  admin: "Everything, including users, groups, other users' API keys, key rotation, diagnostics and the audit trail.",
  operator: "Runs and controls work; cannot change who may do what (admin.*) nor budget codes (finance.*).",
  finance: "Creates, renames, enables, disables and sets the quotas of budget codes (finance.*); reads like a reader.",
  reader: "Reads everything it may see and manages its own API keys; changes nothing else.",
};

export function isRole(name: string): name is Role {
  return (ROLES as readonly string[]).includes(name);
}

/** Every permission some method needs, sorted. */
export function allPermissions(): string[] {
  return [...new Set(Object.values(METHOD_PERMISSIONS))].filter((p) => p !== PUBLIC).sort();
}

export function describeRole(name: Role): RoleInfo {
  const permissions = allPermissions().filter((p) => !SERVICE_ONLY_PERMISSIONS.has(p) && roleGrants(name, p));
  return { name, description: DESCRIPTIONS[name], permissions };
}

export function listRoles(): RoleInfo[] {
  return ROLES.map(describeRole);
}

export function getRole(name: string): RoleInfo {
  if (!isRole(name)) throw new NotFoundError("role", name);
  return describeRole(name);
}
