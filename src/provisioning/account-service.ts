// Cloud accounts: connecting one stores its credentials through KM and keeps only the credential id; reading is
// scoped to the accounts the caller's groups may use (admins: all), and anything else is NOT_FOUND.
import { isUniqueViolation } from "../db/errors.js";
import type { ProvisioningDb } from "../db/clients.js";
import { newId } from "../db/ids.js";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";
import { etagOf } from "../iam/etag.js";
import type { Principal } from "../iam/principal.js";
import type { Page } from "../iam/user-service.js";
import type { KmCallOptions, KmClient } from "../km/client.js";
import * as repo from "./account-repository.js";

export type AccountStatus = repo.AccountStatus;

/** What the account service needs from KM. */
export type CredentialStore = Pick<KmClient, "storeCredential" | "deleteCredential">;

export interface AccountView {
  id: string;
  name: string;
  cloudId: string;
  credentialId: string;
  defaultBudgetCode: string;
  status: AccountStatus;
  statusMessage: string;
  providerAccountId: string;
  validatedAt: Date | null;
  discoveredAt: Date | null;
  etag: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewAccount {
  name: string;
  cloudId: string;
  /** "" for none. */
  defaultBudgetCode: string;
  credentialType: string;
  /** Secret: passed to KM, never stored or logged here. */
  credentialFields: Record<string, string>;
}

/** Which accounts a caller may see: every one (admins), or those its groups may use. */
export type AccountScope = { all: true } | { all: false; accountIds: readonly string[] };

export function scopeOf(principal: Pick<Principal, "roles" | "accountIds">): AccountScope {
  return principal.roles.includes("admin") ? { all: true } : { all: false, accountIds: principal.accountIds ?? [] };
}

export interface AccountService {
  /**
   * INVALID_ARGUMENT (cloud_id, default_budget_code) for unknown references; ALREADY_EXISTS for a name taken in the
   * cloud; KM failures as KM reports them (UNAVAILABLE when it is down). The account starts PENDING.
   */
  createAccount(input: NewAccount, options?: KmCallOptions): Promise<AccountView>;
  getAccount(scope: AccountScope, id: string): Promise<AccountView>;
  listAccounts(scope: AccountScope, query: { pageSize: number; afterId?: string | undefined; cloudId?: string | undefined }): Promise<Page<AccountView>>;
}

function toView(row: repo.AccountRow): AccountView {
  const { version, defaultBudgetCode, statusMessage, providerAccountId, id, name, cloudId, credentialId, status, validatedAt, discoveredAt, createdAt, updatedAt } = row;
  return { id, name, cloudId, credentialId, status, validatedAt, discoveredAt, createdAt, updatedAt, defaultBudgetCode: defaultBudgetCode ?? "", statusMessage: statusMessage ?? "", providerAccountId: providerAccountId ?? "", etag: etagOf(version) };
}

const inScope = (scope: AccountScope, id: string): boolean => scope.all || scope.accountIds.includes(id);

/** `km` is called on the first account connected, so a dispatcher without KM configured still serves the rest. */
export function createAccountService(db: ProvisioningDb, km: () => CredentialStore): AccountService {
  return {
    async createAccount(input, options) {
      const violations = [];
      if (!(await repo.cloudExists(db, input.cloudId))) violations.push({ field: "cloud_id", description: "no such cloud" });
      if (input.defaultBudgetCode !== "" && !(await repo.budgetCodeExists(db, input.defaultBudgetCode))) violations.push({ field: "default_budget_code", description: "no such budget code" });
      if (violations.length > 0) throw new InvalidArgumentError(violations);
      const id = newId();
      const store = km();
      const credential = await store.storeCredential({ accountId: id, type: input.credentialType, fields: input.credentialFields, labels: { account: id } }, options);
      try {
        await repo.insertAccount(db, { id, name: input.name, cloudId: input.cloudId, credentialId: credential.id, defaultBudgetCode: input.defaultBudgetCode || null });
      } catch (err) {
        // Not connected after all: shred the credential rather than leave it orphaned in KM (best effort).
        await store.deleteCredential({ id: credential.id }).catch(() => undefined);
        if (isUniqueViolation(err)) throw new AlreadyExistsError("account", input.name);
        throw err;
      }
      const row = await repo.findAccount(db, id);
      if (!row) throw new FailedPreconditionError(`account ${id} vanished right after it was created`, "ACCOUNT_VANISHED");
      return toView(row);
    },
    async getAccount(scope, id) {
      const row = inScope(scope, id) ? await repo.findAccount(db, id) : null;
      if (!row) throw new NotFoundError("account", id);
      return toView(row);
    },
    async listAccounts(scope, query) {
      const rows = await repo.listAccounts(db, { cloudId: query.cloudId, afterId: query.afterId, onlyIds: scope.all ? undefined : scope.accountIds, limit: query.pageSize + 1 });
      const items = rows.slice(0, query.pageSize).map(toView);
      return { items, nextAfter: rows.length > query.pageSize ? items.at(-1)?.id : undefined };
    },
  };
}

/** A CredentialStore made on first use (and kept); a configuration that cannot make one is FAILED_PRECONDITION. */
export function lazyCredentialStore(create: () => CredentialStore): () => CredentialStore {
  let store: CredentialStore | undefined;
  return () => {
    if (store) return store;
    try {
      store = create();
    } catch (err) {
      throw new FailedPreconditionError(`KM is not usable from this dispatcher: ${err instanceof Error ? err.message : String(err)}`, "KM_NOT_CONFIGURED");
    }
    return store;
  };
}
