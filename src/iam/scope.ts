// Object scope (tenancy): which cloud accounts — and so which servers, jobs, metrics and costs — a principal may see.
// Admins see every account; everyone else those its groups may use. Outside the scope an object is NOT_FOUND.
import type { Principal } from "./principal.js";

/** Which accounts a caller may see: every one (admins), or those its groups may use. */
export type AccountScope = { all: true } | { all: false; accountIds: readonly string[] };

export function scopeOf(principal: Pick<Principal, "roles" | "accountIds">): AccountScope {
  return principal.roles.includes("admin") ? { all: true } : { all: false, accountIds: principal.accountIds ?? [] };
}

export function inScope(scope: AccountScope, accountId: string): boolean {
  return scope.all || scope.accountIds.includes(accountId);
}
