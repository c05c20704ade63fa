// dispatcher.v1 AccountService over gRPC: request validation (credential fields are checked for shape only and never
// echoed back in violations), object scope from the caller's principal, then the account service.
import { type Account, AccountServiceService as A, AccountStatus } from "../gen/proto/dispatcher/v1/provisioning.js";
import { afterIdFromToken, ID_RULES, nextToken } from "../iam/mapper.js";
import { FailedPreconditionError } from "../errors.js";
import { defineService, unary, type RpcService } from "../rpc/adapter.js";
import { requireString, validateOne, type Violations } from "../rpc/validate.js";
import { scopeOf, type AccountService, type AccountView } from "./account-service.js";
import { BUDGET_CODE_RULES, CLOUD_NAME_RULES } from "./mapper.js";

const CREDENTIAL_TYPE_RULES = { max: 64, pattern: /^[a-z0-9][a-z0-9_.-]*$/, patternHint: "lower-case letters, digits, _ . - (starting with a letter or digit)" };
const FIELD_KEY = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_FIELDS = 32;
const MAX_FIELD_VALUE = 8192;

const STATUS: Readonly<Record<AccountView["status"], AccountStatus>> = {
  PENDING: AccountStatus.ACCOUNT_STATUS_PENDING,
  ACTIVE: AccountStatus.ACCOUNT_STATUS_ACTIVE,
  FAILED: AccountStatus.ACCOUNT_STATUS_FAILED,
  DISABLED: AccountStatus.ACCOUNT_STATUS_DISABLED,
};

export function accountToProto(a: AccountView): Account {
  return { id: a.id, name: a.name, cloudId: a.cloudId, defaultBudgetCode: a.defaultBudgetCode, status: STATUS[a.status], credentialId: a.credentialId, etag: a.etag, createTime: a.createdAt, updateTime: a.updatedAt, providerAccountId: a.providerAccountId, statusMessage: a.statusMessage, validateTime: a.validatedAt ?? undefined, discoverTime: a.discoveredAt ?? undefined };
}

/** Credential fields: 1..32 entries, keys of a safe shape, values non-empty and bounded. Values are never echoed. */
function credentialFields(v: Violations, fields: Record<string, string> | undefined): Record<string, string> {
  const entries = Object.entries(fields ?? {});
  if (entries.length === 0) v.add("credentials.fields", "is required");
  else if (entries.length > MAX_FIELDS) v.add("credentials.fields", `at most ${MAX_FIELDS} entries`);
  else if (entries.some(([k]) => !FIELD_KEY.test(k))) v.add("credentials.fields", "keys must be 1-64 letters, digits, _ . -");
  else if (entries.some(([, value]) => typeof value !== "string" || value.length === 0 || value.length > MAX_FIELD_VALUE)) v.add("credentials.fields", `values must be 1-${MAX_FIELD_VALUE} characters`);
  else return Object.fromEntries(entries);
  return {};
}

export function accountHandlers(accounts: AccountService): RpcService {
  return defineService(A, {
    createAccount: unary(A.createAccount, async (req, ctx) => {
      const input = validateOne((v) => ({
        name: v.string("name", req.name, CLOUD_NAME_RULES),
        cloudId: v.string("cloud_id", req.cloudId, ID_RULES),
        defaultBudgetCode: v.optionalString("default_budget_code", req.defaultBudgetCode, BUDGET_CODE_RULES),
        credentialType: v.string("credentials.type", req.credentials?.type, CREDENTIAL_TYPE_RULES),
        credentialFields: credentialFields(v, req.credentials?.fields),
      }));
      return { account: accountToProto(await accounts.createAccount(input, { signal: ctx.signal, deadline: ctx.deadline })) };
    }),
    getAccount: unary(A.getAccount, async (req, ctx) => ({ account: accountToProto(await accounts.getAccount(scopeOf(ctx.principal), requireString("id", req.id, ID_RULES))) })),
    listAccounts: unary(A.listAccounts, async (req, ctx) => {
      const q = validateOne((v) => {
        const cloudId = v.optionalString("cloud_id", req.cloudId, ID_RULES);
        return { cloudId: cloudId || undefined, pageSize: v.pageSize("page_size", req.pageSize), afterId: afterIdFromToken(v, req.pageToken, { cloudId }) };
      });
      const page = await accounts.listAccounts(scopeOf(ctx.principal), q);
      return { accounts: page.items.map(accountToProto), nextPageToken: nextToken(page, { cloudId: q.cloudId ?? "" }) };
    }),
    // PLACEHOLDER until discovery lands (replaced by src/provisioning discovery handlers).
    discoverAccount: unary(A.discoverAccount, () => Promise.reject(new FailedPreconditionError("account discovery is not available", "NOT_AVAILABLE"))),
    listSubscriptions: unary(A.listSubscriptions, () => Promise.reject(new FailedPreconditionError("subscriptions are not available", "NOT_AVAILABLE"))),
    listAccountEvents: unary(A.listAccountEvents, () => Promise.reject(new FailedPreconditionError("account events are not available", "NOT_AVAILABLE"))),
  });
}
