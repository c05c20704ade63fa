// Budget codes: what users may spend on (hard and soft quotas in cents, state, usage) and who holds them. Deleting a
// code in use needs a replacement that takes over its holders and accounts. Admins and finance see every code; anyone
// else only the codes they hold (another code is NOT_FOUND), and of its holders only themselves.
import { inTransaction, type ProvisioningDb } from "../../db/clients.js";
import { isUniqueViolation } from "../../db/errors.js";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../../errors.js";
import { etagOf, staleEtag, versionOf } from "../../iam/etag.js";
import { roleGrants } from "../../iam/permissions.js";
import type { Principal } from "../../iam/principal.js";
import { userExists } from "../../iam/user-repository.js";
import { pageOf, type Page } from "../../db/page.js";
import * as repo from "./repository.js";
import { recordChange } from "../../audit/trail.js";

export type BudgetState = repo.BudgetState;

export interface BudgetCodeView {
  code: string;
  name: string;
  financeCode: string;
  hardQuotaCents: bigint;
  softQuotaCents: bigint;
  state: BudgetState;
  currentUsageCents: bigint;
  projectedUsageCents: bigint;
  userIds: string[];
  etag: string;
  createdAt: Date;
  updatedAt: Date;
}

export type BudgetPatch = repo.BudgetFields;

/** Who reads budget codes: their id and roles decide which codes they see. */
export type BudgetViewer = Pick<Principal, "id" | "roles">;

/** Admins and finance (whoever may change budget codes) see them all. */
export function seesEveryCode(viewer: BudgetViewer): boolean {
  return viewer.roles.some((role) => roleGrants(role, "finance.budgets"));
}

export interface BudgetCodeService {
  /** ALREADY_EXISTS for a taken code. */
  createBudgetCode(input: { code: string; name: string; financeCode: string; hardQuotaCents: bigint; softQuotaCents: bigint; state: BudgetState }): Promise<BudgetCodeView>;
  /** NOT_FOUND when it does not exist or `viewer` may not see it. */
  getBudgetCode(viewer: BudgetViewer, code: string): Promise<BudgetCodeView>;
  listBudgetCodes(viewer: BudgetViewer, query: { pageSize: number; afterCode?: string | undefined; state?: BudgetState | undefined }): Promise<Page<BudgetCodeView>>;
  /** INVALID_ARGUMENT (soft_quota_cents) when the result would have soft > hard. */
  updateBudgetCode(code: string, etag: string, patch: BudgetPatch): Promise<BudgetCodeView>;
  /**
   * In use (granted to users or an account's default): `replacement` is required (FAILED_PRECONDITION
   * BUDGET_CODE_IN_USE without it) and takes over every grant and account default.
   */
  deleteBudgetCode(code: string, etag: string, replacement: string): Promise<void>;
  /** INVALID_ARGUMENT (user_id) for an unknown user; granting twice changes nothing but the version. */
  grant(code: string, userId: string): Promise<BudgetCodeView>;
  revoke(code: string, userId: string): Promise<BudgetCodeView>;
}

function toView(row: repo.BudgetCodeRow): BudgetCodeView {
  const { version, ...rest } = row;
  return { ...rest, etag: etagOf(version) };
}

export function createBudgetCodeService(db: ProvisioningDb): BudgetCodeService {
  async function get(code: string, tx: ProvisioningDb = db): Promise<BudgetCodeView> {
    const row = await repo.findBudgetCode(tx, code);
    if (!row) throw new NotFoundError("budget code", code);
    return toView(row);
  }

  /** Checks and bumps the version, runs `change`, and returns the code as it ends up, all in one transaction. */
  function change(code: string, etag: string, fields: BudgetPatch, fn: (tx: ProvisioningDb) => Promise<void> = async () => {}, action = "budget_code.update"): Promise<BudgetCodeView> {
    return inTransaction(db, async (tx) => {
      const before = await repo.findBudgetCode(tx, code);
      const outcome = await repo.bumpBudgetCode(tx, code, versionOf(etag), fields);
      if (outcome === "missing") throw new NotFoundError("budget code", code);
      if (outcome === "stale") throw staleEtag("budget code", code);
      await fn(tx);
      const view = await get(code, tx);
      if (view.softQuotaCents > view.hardQuotaCents) throw InvalidArgumentError.field("soft_quota_cents", "must not exceed hard_quota_cents");
      await recordChange(tx, { action, objectType: "budget_code", objectId: code, before, after: view });
      return view;
    });
  }

  return {
    async createBudgetCode(input) {
      try {
        await inTransaction(db, async (tx) => {
          await repo.insertBudgetCode(tx, input);
          await recordChange(tx, { action: "budget_code.create", objectType: "budget_code", objectId: input.code, after: input });
        });
      } catch (err) {
        if (isUniqueViolation(err)) throw new AlreadyExistsError("budget code", input.code);
        throw err;
      }
      return get(input.code);
    },
    async getBudgetCode(viewer, code) {
      const view = await get(code);
      if (seesEveryCode(viewer)) return view;
      if (!view.userIds.includes(viewer.id)) throw new NotFoundError("budget code", code);
      return { ...view, userIds: [viewer.id] };
    },
    async listBudgetCodes(viewer, query) {
      const all = seesEveryCode(viewer);
      const rows = await repo.listBudgetCodes(db, { state: query.state, afterCode: query.afterCode, heldBy: all ? undefined : viewer.id, limit: query.pageSize + 1 });
      const views = rows.map(toView).map((v) => (all ? v : { ...v, userIds: [viewer.id] }));
      return pageOf(views, query.pageSize, (b) => b.code);
    },
    updateBudgetCode: (code, etag, patch) => change(code, etag, patch),
    async deleteBudgetCode(code, etag, replacement) {
      await inTransaction(db, async (tx) => {
        const before = await repo.findBudgetCode(tx, code);
        const outcome = await repo.bumpBudgetCode(tx, code, versionOf(etag));
        if (outcome === "missing") throw new NotFoundError("budget code", code);
        if (outcome === "stale") throw staleEtag("budget code", code);
        const uses = await repo.usesOf(tx, code);
        if (uses.grants + uses.accounts > 0) {
          if (replacement === "") {
            throw new FailedPreconditionError(`budget code ${JSON.stringify(code)} is in use (${uses.grants} holder(s), ${uses.accounts} account(s)); name a replacement_code`, "BUDGET_CODE_IN_USE", [], { code });
          }
          if (replacement === code) throw InvalidArgumentError.field("replacement_code", "must differ from the code being deleted");
          const target = await repo.bumpBudgetCode(tx, replacement, null);
          if (target === "missing") throw InvalidArgumentError.field("replacement_code", "no such budget code");
          await repo.moveUses(tx, code, replacement);
        }
        await repo.deleteBudgetCode(tx, code);
        await recordChange(tx, { action: "budget_code.delete", objectType: "budget_code", objectId: code, before: before && { ...before, replacementCode: replacement } });
      });
    },
    grant: (code, userId) =>
      change(code, "", {}, async (tx) => {
        if (!(await userExists(tx, userId))) throw InvalidArgumentError.field("user_id", "no such user");
        await repo.grant(tx, code, userId);
      }, "budget_code.grant"),
    revoke: (code, userId) => change(code, "", {}, (tx) => repo.revoke(tx, code, userId), "budget_code.revoke"),
  };
}
