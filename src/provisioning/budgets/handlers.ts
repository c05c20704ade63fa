// dispatcher.v1 BudgetCodeService over gRPC: every request field validated here (INVALID_ARGUMENT with field
// violations), then the budget code service, then complete response messages.
import { BudgetCodeServiceService as B } from "../../gen/proto/dispatcher/v1/provisioning.js";
import { defineService, unary, type RpcService } from "../../rpc/adapter.js";
import { afterIdFromToken, ETAG_RULES, ID_RULES, maskPaths, nextToken, requireString, validateOne } from "../../rpc/validate.js";
import { BUDGET_CODE_RULES, BUDGET_STATE, budgetCodeToProto, cents, FINANCE_CODE_RULES, PRINTABLE_RULES } from "../mapper.js";
import type { BudgetCodeService, BudgetPatch } from "./service.js";

export function budgetCodeHandlers(budgets: BudgetCodeService): RpcService {
  const holder = (req: { code: string; userId: string }) => validateOne((v) => ({ code: v.string("code", req.code, BUDGET_CODE_RULES), userId: v.string("user_id", req.userId, ID_RULES) }));
  return defineService(B, {
    createBudgetCode: unary(B.createBudgetCode, async (req) => {
      const input = validateOne((v) => {
        const hardQuotaCents = cents(v, "hard_quota_cents", req.hardQuotaCents, 1n);
        const softQuotaCents = cents(v, "soft_quota_cents", req.softQuotaCents);
        if (softQuotaCents > hardQuotaCents && hardQuotaCents > 0n) v.add("soft_quota_cents", "must not exceed hard_quota_cents");
        return {
          code: v.string("code", req.code, BUDGET_CODE_RULES),
          name: v.string("name", req.name, PRINTABLE_RULES),
          financeCode: v.string("finance_code", req.financeCode, FINANCE_CODE_RULES),
          hardQuotaCents,
          softQuotaCents,
          state: v.optionalEnum("state", req.state, BUDGET_STATE) ?? "ACTIVE",
        };
      });
      return { budgetCode: budgetCodeToProto(await budgets.createBudgetCode(input)) };
    }),
    getBudgetCode: unary(B.getBudgetCode, async (req, ctx) => ({ budgetCode: budgetCodeToProto(await budgets.getBudgetCode(ctx.principal, requireString("code", req.code, BUDGET_CODE_RULES))) })),
    listBudgetCodes: unary(B.listBudgetCodes, async (req, ctx) => {
      const q = validateOne((v) => {
        const state = v.optionalEnum("state", req.state, BUDGET_STATE);
        return { state, pageSize: v.pageSize("page_size", req.pageSize), afterCode: afterIdFromToken(v, req.pageToken, { state }) };
      });
      const page = await budgets.listBudgetCodes(ctx.principal, q);
      return { budgetCodes: page.items.map(budgetCodeToProto), nextPageToken: nextToken(page, { state: q.state }) };
    }),
    updateBudgetCode: unary(B.updateBudgetCode, async (req) => {
      const { code, etag, patch } = validateOne((v) => {
        const mask = maskPaths(v, req.updateMask, ["name", "finance_code", "hard_quota_cents", "soft_quota_cents", "state"] as const);
        const patch: BudgetPatch = {};
        if (mask.has("name")) patch.name = v.string("name", req.name, PRINTABLE_RULES);
        if (mask.has("finance_code")) patch.financeCode = v.string("finance_code", req.financeCode, FINANCE_CODE_RULES);
        if (mask.has("hard_quota_cents")) patch.hardQuotaCents = cents(v, "hard_quota_cents", req.hardQuotaCents, 1n);
        if (mask.has("soft_quota_cents")) patch.softQuotaCents = cents(v, "soft_quota_cents", req.softQuotaCents);
        if (mask.has("state")) {
          const state = v.enumValue("state", req.state, BUDGET_STATE);
          if (state) patch.state = state;
        }
        return { code: v.string("code", req.code, BUDGET_CODE_RULES), etag: v.string("etag", req.etag, ETAG_RULES), patch };
      });
      return { budgetCode: budgetCodeToProto(await budgets.updateBudgetCode(code, etag, patch)) };
    }),
    deleteBudgetCode: unary(B.deleteBudgetCode, async (req) => {
      const input = validateOne((v) => ({
        code: v.string("code", req.code, BUDGET_CODE_RULES),
        etag: v.string("etag", req.etag, ETAG_RULES),
        replacement: v.optionalString("replacement_code", req.replacementCode, BUDGET_CODE_RULES),
      }));
      await budgets.deleteBudgetCode(input.code, input.etag, input.replacement);
      return {};
    }),
    grantBudgetCode: unary(B.grantBudgetCode, async (req) => {
      const { code, userId } = holder(req);
      return { budgetCode: budgetCodeToProto(await budgets.grant(code, userId)) };
    }),
    revokeBudgetCode: unary(B.revokeBudgetCode, async (req) => {
      const { code, userId } = holder(req);
      return { budgetCode: budgetCodeToProto(await budgets.revoke(code, userId)) };
    }),
  });
}
