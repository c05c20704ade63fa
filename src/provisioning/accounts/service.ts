// Cloud accounts: connecting one stores its credentials through KM, keeps only the credential id and starts the job
// that validates them; discovery on demand; subscriptions and account events. Everything is scoped to the accounts
// the caller's groups may use (admins: all), and anything else is NOT_FOUND.
import { isUniqueViolation } from "../../db/errors.js";
import { inTransaction, type ProvisioningDb } from "../../db/clients.js";
import { newId } from "../../db/ids.js";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../../errors.js";
import { etagOf } from "../../iam/etag.js";
import type { Principal } from "../../iam/principal.js";
import { inScope, scopeOf, type AccountScope } from "../../iam/scope.js";
import { pageOf, type Page } from "../../db/page.js";
import type { Job } from "../../jobs/model.js";
import type { JobService } from "../../jobs/service.js";
import type { KmCallOptions, KmClient } from "../../km/client.js";
import * as repo from "./repository.js";
import { recordChange } from "../../audit/trail.js";
import { ACCOUNT_DISCOVER_KIND } from "../discovery/kind.js";

export type AccountStatus = repo.AccountStatus;

/** What the account service needs from KM. */
export type CredentialStore = Pick<KmClient, "storeCredential" | "deleteCredential">;

/** What the account service needs from the job service: validation and discovery run as `account.discover` jobs. */
export type AccountJobs = Pick<JobService, "createJob">;

export interface AccountServiceOptions {
  /** config.discovery.intervalMs: a new account is next discovered this long after its validation job. */
  discoveryIntervalMs: number;
  now?: () => Date;
}

export interface RegionView {
  id: string;
  name: string;
  dataCenters: string[];
}

export interface SubscriptionView {
  regionId: string;
  capability: string;
  discoveredAt: Date;
}

export interface AccountEventView {
  /** Increasing per event; a decimal string (the column is 64-bit). */
  id: string;
  accountId: string;
  type: string;
  regionId: string;
  jobId: string;
  message: string;
  createdAt: Date;
}

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

export interface AccountService {
  /**
   * INVALID_ARGUMENT (cloud_id, default_budget_code) for unknown references; ALREADY_EXISTS for a name taken in the
   * cloud; KM failures as KM reports them (UNAVAILABLE when it is down). The account starts PENDING.
   */
  createAccount(caller: Principal, input: NewAccount, options?: KmCallOptions): Promise<{ account: AccountView; validationJob: Job }>;
  getAccount(scope: AccountScope, id: string): Promise<AccountView>;
  listAccounts(scope: AccountScope, query: { pageSize: number; afterId?: string | undefined; cloudId?: string | undefined }): Promise<Page<AccountView>>;
  /**
   * Starts an `account.discover` job for an account in the caller's scope (NOT_FOUND otherwise, as for one that does
   * not exist); FAILED_PRECONDITION (ACCOUNT_DISABLED) for a disabled account. The same idempotency key returns the
   * same job.
   */
  discoverAccount(caller: Principal, id: string, idempotencyKey: string | null): Promise<Job>;
  /** The capabilities the account is subscribed to and its regions, as last discovered; only `regionId` when given. */
  listSubscriptions(scope: AccountScope, accountId: string, regionId: string): Promise<{ subscriptions: SubscriptionView[]; regions: RegionView[] }>;
  /** The account's history, oldest first. */
  listAccountEvents(scope: AccountScope, accountId: string, query: { pageSize: number; afterId?: string | undefined }): Promise<Page<AccountEventView>>;
}

function toView(row: repo.AccountRow): AccountView {
  const { version, defaultBudgetCode, statusMessage, providerAccountId, id, name, cloudId, credentialId, status, validatedAt, discoveredAt, createdAt, updatedAt } = row;
  return { id, name, cloudId, credentialId, status, validatedAt, discoveredAt, createdAt, updatedAt, defaultBudgetCode: defaultBudgetCode ?? "", statusMessage: statusMessage ?? "", providerAccountId: providerAccountId ?? "", etag: etagOf(version) };
}

function eventToView(e: repo.AccountEventRow): AccountEventView {
  return { id: e.id.toString(), accountId: e.accountId, type: e.type, regionId: e.regionId ?? "", jobId: e.jobId ?? "", message: e.message, createdAt: e.createdAt };
}

/** A page cursor of account events: the id of the last event seen, as a decimal string. */
function eventCursor(afterId: string | undefined): bigint | undefined {
  return afterId !== undefined && /^\d{1,19}$/.test(afterId) ? BigInt(afterId) : undefined;
}

/**
 * `km` is called on the first account connected, so a dispatcher without KM configured still serves the rest. `jobs`
 * creates the validation job in the account's own transaction, so a connected account is always validated.
 */
export function createAccountService(db: ProvisioningDb, km: () => CredentialStore, jobs: AccountJobs, options: AccountServiceOptions): AccountService {
  const now = options.now ?? (() => new Date());
  /** The account row when the scope allows it; NOT_FOUND otherwise, the same answer as for a missing account. */
  const visible = async (scope: AccountScope, id: string): Promise<repo.AccountRow> => {
    const row = inScope(scope, id) ? await repo.findAccount(db, id) : null;
    if (!row) throw new NotFoundError("account", id);
    return row;
  };
  return {
    async createAccount(caller, input, kmOptions) {
      const violations = [];
      if (!(await repo.cloudExists(db, input.cloudId))) violations.push({ field: "cloud_id", description: "no such cloud" });
      if (input.defaultBudgetCode !== "" && !(await repo.budgetCodeExists(db, input.defaultBudgetCode))) violations.push({ field: "default_budget_code", description: "no such budget code" });
      if (violations.length > 0) throw new InvalidArgumentError(violations);
      const id = newId();
      const store = km();
      const credential = await store.storeCredential({ accountId: id, type: input.credentialType, fields: input.credentialFields, labels: { account: id } }, kmOptions);
      // The scheduled discovery is due one interval after connecting: the validation job below is the first one.
      const nextDiscoveryAt = new Date(now().getTime() + options.discoveryIntervalMs);
      let created: Awaited<ReturnType<AccountJobs["createJob"]>>;
      try {
        created = await inTransaction(db, async (tx) => {
          await repo.insertAccount(tx, { id, name: input.name, cloudId: input.cloudId, credentialId: credential.id, defaultBudgetCode: input.defaultBudgetCode || null, nextDiscoveryAt });
          await recordChange(tx, { action: "account.create", objectType: "account", objectId: id, after: { name: input.name, cloudId: input.cloudId, defaultBudgetCode: input.defaultBudgetCode, status: "PENDING" } });
          return jobs.createJob({ kind: ACCOUNT_DISCOVER_KIND, payload: { accountId: id }, requester: caller, resource: { type: "account", id } }, tx);
        });
      } catch (err) {
        // Not connected after all: shred the credential rather than leave it orphaned in KM (best effort).
        await store.deleteCredential({ id: credential.id }).catch(() => undefined);
        if (isUniqueViolation(err)) throw new AlreadyExistsError("account", input.name);
        throw err;
      }
      created.afterCommit();
      const row = await repo.findAccount(db, id);
      if (!row) throw new FailedPreconditionError(`account ${id} vanished right after it was created`, "ACCOUNT_VANISHED");
      return { account: toView(row), validationJob: created.job };
    },
    getAccount: async (scope, id) => toView(await visible(scope, id)),
    async discoverAccount(caller, id, idempotencyKey) {
      const row = await visible(scopeOf(caller), id);
      if (row.status === "DISABLED") throw new FailedPreconditionError(`account ${id} is disabled`, "ACCOUNT_DISABLED", [], { accountId: id });
      const { job } = await jobs.createJob({ kind: ACCOUNT_DISCOVER_KIND, payload: { accountId: id }, requester: caller, resource: { type: "account", id }, idempotencyKey });
      return job;
    },
    async listSubscriptions(scope, accountId, regionId) {
      await visible(scope, accountId);
      const [subscriptions, regions] = await Promise.all([repo.listSubscriptions(db, accountId, regionId || undefined), repo.listAccountRegions(db, accountId, regionId || undefined)]);
      return { subscriptions, regions: regions.map((r) => ({ id: r.regionId, name: r.name, dataCenters: r.dataCenters })) };
    },
    async listAccountEvents(scope, accountId, query) {
      await visible(scope, accountId);
      const rows = await repo.listAccountEvents(db, accountId, { afterId: eventCursor(query.afterId), limit: query.pageSize + 1 });
      return pageOf(rows.map(eventToView), query.pageSize, (e) => e.id);
    },
    async listAccounts(scope, query) {
      const rows = await repo.listAccounts(db, { cloudId: query.cloudId, afterId: query.afterId, onlyIds: scope.all ? undefined : scope.accountIds, limit: query.pageSize + 1 });
      return pageOf(rows.map(toView), query.pageSize, (a) => a.id);
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
