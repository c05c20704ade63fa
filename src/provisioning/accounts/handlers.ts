// dispatcher.v1 AccountService over gRPC: request validation (credential fields are checked for shape only and never
// echoed back in violations), object scope from the caller's principal, then the account service: connecting, reading,
// discovery on demand, subscriptions and account events.
import { type Account, type AccountEvent, AccountServiceService as A, AccountStatus } from "../../gen/proto/dispatcher/v1/provisioning.js";
import { IDEMPOTENCY_KEY_RULES, jobToProto } from "../../jobs/mapper.js";
import { defineService, unary, type RpcService } from "../../rpc/adapter.js";
import { afterIdFromToken, ID_RULES, nextToken, requireString, validateOne, type Violations } from "../../rpc/validate.js";
import { scopeOf } from "../../iam/scope.js";
import { type AccountEventView, type AccountService, type AccountView } from "./service.js";
import { BUDGET_CODE_RULES, CLOUD_NAME_RULES, REGION_ID_RULES } from "../mapper.js";

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

function accountEventToProto(e: AccountEventView): AccountEvent {
  return { id: e.id, accountId: e.accountId, type: e.type, regionId: e.regionId, jobId: e.jobId, message: e.message, createTime: e.createdAt };
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
      const { account, validationJob } = await accounts.createAccount(ctx.principal, input, { signal: ctx.signal, deadline: ctx.deadline });
      return { account: accountToProto(account), validationJob: jobToProto(validationJob) };
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
    discoverAccount: unary(A.discoverAccount, async (req, ctx) => {
      const { id, key } = validateOne((v) => ({ id: v.string("id", req.id, ID_RULES), key: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES) }));
      return { job: jobToProto(await accounts.discoverAccount(ctx.principal, id, key || null)) };
    }),
    listSubscriptions: unary(A.listSubscriptions, async (req, ctx) => {
      const { accountId, regionId } = validateOne((v) => ({ accountId: v.string("account_id", req.accountId, ID_RULES), regionId: v.optionalString("region_id", req.regionId, REGION_ID_RULES) }));
      const found = await accounts.listSubscriptions(scopeOf(ctx.principal), accountId, regionId);
      return {
        subscriptions: found.subscriptions.map((s) => ({ regionId: s.regionId, capability: s.capability, discoverTime: s.discoveredAt })),
        regions: found.regions.map((r) => ({ id: r.id, name: r.name, dataCenters: r.dataCenters })),
      };
    }),
    listAccountEvents: unary(A.listAccountEvents, async (req, ctx) => {
      const q = validateOne((v) => {
        const id = v.string("id", req.id, ID_RULES);
        return { id, pageSize: v.pageSize("page_size", req.pageSize), afterId: afterIdFromToken(v, req.pageToken, { id }) };
      });
      const page = await accounts.listAccountEvents(scopeOf(ctx.principal), q.id, q);
      return { events: page.items.map(accountEventToProto), nextPageToken: nextToken(page, { id: q.id }) };
    }),
  });
}
