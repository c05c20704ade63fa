// The budget check every launch or change that costs money runs: the caller must hold an active budget code, and the
// spend must fit its hard quota (FAILED_PRECONDITION with QuotaFailure otherwise); the soft quota only warns.
import type { ProvisioningDb } from "../../db/clients.js";
import { FailedPreconditionError, PermissionDeniedError } from "../../errors.js";
import type { Principal } from "../../iam/principal.js";
import { findBudgetCode, holds } from "./repository.js";

export interface BudgetCheck {
  /** The spend goes past the soft quota: allowed, and the caller should record a warning event. */
  softQuotaExceeded: boolean;
  /** Usage after the spend, in cents. */
  usageAfterCents: bigint;
}

/**
 * Checks that `principal` may spend `costCents` on `code`. PERMISSION_DENIED when the principal does not hold the
 * code, or the code does not exist (the same answer, so codes cannot be guessed); FAILED_PRECONDITION
 * BUDGET_CODE_DISABLED for a disabled code; FAILED_PRECONDITION QUOTA_EXCEEDED with a quota violation when the
 * current usage plus the cost exceeds the hard quota. Admins too must hold the code: spending is never implied.
 * The check does not reserve the amount; callers that record usage do so in their own transaction.
 */
export async function requireBudgetCode(db: ProvisioningDb, principal: Pick<Principal, "id">, code: string, costCents: bigint): Promise<BudgetCheck> {
  if (costCents < 0n) throw new RangeError("costCents must not be negative");
  const row = code === "" ? null : await findBudgetCode(db, code);
  if (!row || !(await holds(db, code, principal.id))) {
    throw new PermissionDeniedError(`you do not hold budget code ${JSON.stringify(code)}`, "BUDGET_CODE_NOT_HELD", { code });
  }
  if (row.state !== "ACTIVE") throw new FailedPreconditionError(`budget code ${JSON.stringify(code)} is disabled`, "BUDGET_CODE_DISABLED", [], { code });
  const usageAfterCents = row.currentUsageCents + costCents;
  if (usageAfterCents > row.hardQuotaCents) {
    const description = `spending ${costCents} cents would bring usage to ${usageAfterCents} cents, over the hard quota of ${row.hardQuotaCents} cents`;
    throw new FailedPreconditionError(`budget code ${JSON.stringify(code)}: ${description}`, "QUOTA_EXCEEDED", [{ subject: `budget_codes/${code}`, description }], { code });
  }
  return { softQuotaExceeded: row.softQuotaCents > 0n && usageAfterCents > row.softQuotaCents, usageAfterCents };
}
