// The rules of the server API: who may see which server (object scope by account), what a launch must satisfy
// (account active, region/product/image discovered, compute subscribed, budget code held and within quota), and how
// each action becomes one job written in the same transaction as the rows it implies.
import type { ProvisioningDb } from "../db/clients.js";
import { newId } from "../db/ids.js";
import type { Sql } from "../db/sql.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, type FieldViolation } from "../errors.js";
import type { Principal } from "../iam/principal.js";
import { inScope, scopeOf } from "../iam/scope.js";
import { pageOf, type Page } from "../db/page.js";
import type { Job } from "../jobs/model.js";
import type { JobService } from "../jobs/service.js";
import { requireBudgetCode } from "../provisioning/budgets/guard.js";
import { ACTION_KINDS, SERVER_LAUNCH_KIND, SERVER_SET_FIREWALLS_KIND, SERVER_TAG_KIND } from "./kinds/names.js";
import { tagViolations } from "../clouds/resources.js";
import { launchOptions, type LaunchPayload } from "./launch-options.js";
import { sealUserData } from "./user-data.js";
import { monthlyCostCents, type AgentState, type CatalogImage, type CatalogProduct, type Server, type ServerAction, type ServerEvent, type ServerState } from "./model.js";
import * as repo from "./repository.js";

export interface LaunchInput {
  accountId: string;
  regionId: string;
  /** "" for the region's first data center. */
  dataCenter: string;
  productId: string;
  imageId: string;
  /** "" for a name made from the server's id. */
  name: string;
  /** "" for the account's default budget code. */
  budgetCode: string;
  idempotencyKey: string;
  /** Dispatcher ids of firewalls of the account and region; none: the cloud's default. */
  firewallIds?: readonly string[];
  /** "" or the dispatcher id of a key pair of the account and region. */
  keyPairId?: string;
  /** "" or a script for the guest's first boot (at most MAX_USER_DATA_BYTES); sealed before it is stored. */
  userData?: string;
  /** "" or the dispatcher id of an ALLOCATED static address, associated once the server runs. */
  addressId?: string;
  tags?: Readonly<Record<string, string>>;
}

export interface ListServersQuery {
  accountId?: string | undefined;
  regionId?: string | undefined;
  state?: ServerState | undefined;
  budgetCode?: string | undefined;
  agentState?: AgentState | undefined;
  tags?: Readonly<Record<string, string>> | undefined;
  afterId?: string | undefined;
  pageSize: number;
}

export interface ServerService {
  /** The launch job and the server it launches (for a repeated idempotency key: the first request's). */
  launch(principal: Readonly<Principal>, input: LaunchInput): Promise<{ job: Job; server: Server }>;
  /** Starts a start/stop/reboot/terminate job; FAILED_PRECONDITION when the server's state does not allow it. */
  control(principal: Readonly<Principal>, action: ServerAction, id: string, idempotencyKey: string): Promise<Job>;
  /** A job setting and removing tags of the server on its cloud. */
  setTags(principal: Readonly<Principal>, id: string, change: { set: Record<string, string>; remove: string[] }, idempotencyKey: string): Promise<Job>;
  /** A job putting the server in exactly these firewalls (dispatcher ids, at least one, of its account and region). */
  setFirewalls(principal: Readonly<Principal>, id: string, firewallIds: readonly string[], idempotencyKey: string): Promise<Job>;
  getServer(principal: Readonly<Principal>, id: string): Promise<Server>;
  listServers(principal: Readonly<Principal>, query: ListServersQuery): Promise<Page<Server>>;
  listEvents(principal: Readonly<Principal>, id: string, query: { pageSize: number; afterId?: string | undefined }): Promise<Page<ServerEvent>>;
  listProducts(principal: Readonly<Principal>, accountId: string, regionId: string): Promise<CatalogProduct[]>;
  listImages(principal: Readonly<Principal>, accountId: string, regionId: string): Promise<CatalogImage[]>;
}

export interface ServerServiceDeps {
  sql: Sql;
  /** For the budget check (src/provisioning/budget-guard.ts). */
  db: ProvisioningDb;
  jobs: Pick<JobService, "createJob" | "findByIdempotencyKey">;
  /** agent.credentialKey (src/agent/secrets.ts): seals a launch's user data in its job payload. */
  credentialKey: () => Buffer;
}

/** The states each action may start from. */
const ALLOWED_FROM: Readonly<Record<ServerAction, readonly ServerState[]>> = {
  start: ["STOPPED"],
  stop: ["RUNNING", "REBOOTING"],
  reboot: ["RUNNING"],
  terminate: ["PENDING", "RUNNING", "STOPPING", "STOPPED", "REBOOTING", "TERMINATING"],
};

const REQUESTED_EVENT: Readonly<Record<ServerAction, ServerEvent["type"]>> = {
  start: "START_REQUESTED",
  stop: "STOP_REQUESTED",
  reboot: "REBOOT_REQUESTED",
  terminate: "TERMINATE_REQUESTED",
};

export function createServerService(deps: ServerServiceDeps): ServerService {
  const { sql, db, jobs } = deps;
  const options = launchOptions(sql);

  /** The server if the principal's scope covers its account; NOT_FOUND otherwise, as for a server that does not exist. */
  const visibleServer = async (principal: Readonly<Principal>, id: string, tx: Sql = sql, lock = false): Promise<Server> => {
    const server = await repo.findServer(tx, id, lock);
    if (!server || !inScope(scopeOf(principal), server.accountId)) throw new NotFoundError("server", id);
    return server;
  };

  const visibleAccount = async (principal: Readonly<Principal>, accountId: string): Promise<repo.LaunchAccount> => {
    const account = inScope(scopeOf(principal), accountId) ? await repo.findAccount(sql, accountId) : null;
    if (!account) throw new NotFoundError("account", accountId);
    return account;
  };

  const knownRegion = async (accountId: string, regionId: string) => {
    const region = await repo.findRegion(sql, accountId, regionId);
    if (!region) throw InvalidArgumentError.field("region_id", `account ${accountId} has no region ${JSON.stringify(regionId)}`);
    return region;
  };

  /** The job of an earlier launch with this key, with its server; null when the key is new. */
  const replayedLaunch = async (principal: Readonly<Principal>, key: string): Promise<{ job: Job; server: Server } | null> => {
    if (!key) return null;
    const job = await jobs.findByIdempotencyKey(principal, key);
    if (!job) return null;
    if (job.kind !== SERVER_LAUNCH_KIND || job.resource?.type !== "server") {
      throw new FailedPreconditionError(`idempotency key ${JSON.stringify(key)} was used for a ${job.kind} job (${job.id})`, "IDEMPOTENCY_KEY_REUSED", [], { jobId: job.id });
    }
    return { job, server: await visibleServer(principal, job.resource.id) };
  };

  return {
    async launch(principal, input) {
      const earlier = await replayedLaunch(principal, input.idempotencyKey);
      if (earlier) return earlier;

      const account = await visibleAccount(principal, input.accountId);
      if (account.status !== "ACTIVE") {
        throw new FailedPreconditionError(`account ${account.id} is ${account.status}; servers can be launched only on an ACTIVE account`, "ACCOUNT_NOT_ACTIVE", [], { account: account.id, status: account.status });
      }
      const [region, product, image, compute] = await Promise.all([
        repo.findRegion(sql, account.id, input.regionId),
        repo.findProduct(sql, account.id, input.regionId, input.productId),
        repo.findImage(sql, account.id, input.regionId, input.imageId),
        repo.hasCapability(sql, account.id, input.regionId, "compute"),
      ]);
      if (!region) throw InvalidArgumentError.field("region_id", `account ${account.id} has no region ${JSON.stringify(input.regionId)}`);
      // Before the catalog: discovery records no products or images where there is no compute, and "no compute
      // here" is the answer that tells the caller what to do.
      if (!compute) {
        throw new FailedPreconditionError(`account ${account.id} has no compute subscription in region ${region.id}`, "NO_COMPUTE_SUBSCRIPTION", [], { account: account.id, region: region.id });
      }
      const violations: FieldViolation[] = [];
      if (!product) violations.push({ field: "product_id", description: `no product ${JSON.stringify(input.productId)} in region ${input.regionId}` });
      if (!image) violations.push({ field: "image_id", description: `no image ${JSON.stringify(input.imageId)} in region ${input.regionId}` });
      if (input.dataCenter && !region.dataCenters.includes(input.dataCenter)) violations.push({ field: "data_center", description: `region ${input.regionId} has no data center ${JSON.stringify(input.dataCenter)}` });
      if (violations.length > 0 || !product || !image) throw new InvalidArgumentError(violations);
      const budgetCode = input.budgetCode || account.defaultBudgetCode || "";
      if (!budgetCode) throw InvalidArgumentError.field("budget_code", `is required: account ${account.id} has no default budget code`);
      const costCents = monthlyCostCents(product.hourlyPriceMicros);
      const budget = await requireBudgetCode(db, principal, budgetCode, costCents);
      const overSoftQuota = budget.softQuotaExceeded
        ? `budget code ${budgetCode} is over its soft quota: usage would be ${budget.usageAfterCents} cents with this server's month (${costCents} cents)`
        : null;

      const resolved = await options.resolve(principal, account.id, region.id, input);

      const serverId = newId();
      const payload: LaunchPayload = { serverId, ...resolved.payload };
      if (input.userData) payload.userData = sealUserData(deps.credentialKey(), serverId, input.userData);
      const { job } = await jobs.createJob({
        kind: SERVER_LAUNCH_KIND,
        payload,
        requester: principal,
        resource: { type: "server", id: serverId, accountId: account.id },
        idempotencyKey: input.idempotencyKey || null,
        // The job's history says so too, where the person who launched will look.
        notes: overSoftQuota ? [`warning: ${overSoftQuota}`] : [],
        effects: async (tx, created) => {
          await repo.insertServer(tx, {
            id: serverId,
            accountId: account.id,
            regionId: region.id,
            dataCenter: input.dataCenter || region.dataCenters[0] || "",
            providerId: null,
            name: input.name || `server-${serverId.slice(-8).toLowerCase()}`,
            productId: product.id,
            imageId: image.id,
            budgetCode,
            state: "PENDING",
            origin: "LAUNCHED",
            addresses: { private: [], public: [] },
            details: {},
            tags: { ...(input.tags ?? {}) },
            hourlyPriceMicros: product.hourlyPriceMicros,
            accruesWhenStopped: product.accruesWhenStopped,
            launchedAt: null,
            createdBy: principal.id,
          });
          await repo.insertServerEvents(tx, [
            { serverId, type: "LAUNCH_REQUESTED", toState: "PENDING", jobId: created.id, message: `launch of ${product.id} with ${image.id} in ${region.id} requested by ${principal.id}${resolved.summary}`, details: { budgetCode, monthlyCostCents: costCents.toString(), ...resolved.details, userData: input.userData ? "given" : "none" } },
          ]);
          await options.recordRequested(tx, principal, serverId, created.id, resolved);
          if (overSoftQuota) {
            const details = { serverId, costCents: costCents.toString(), usageAfterCents: budget.usageAfterCents.toString() };
            await repo.insertBudgetEvent(tx, { code: budgetCode, type: "SOFT_QUOTA_EXCEEDED", jobId: created.id, message: overSoftQuota, details });
          }
        },
      });
      // A concurrent request with the same key may have won the insert: its server is the one to answer with.
      const launchedId = job.resource?.id ?? serverId;
      return { job, server: await visibleServer(principal, launchedId) };
    },

    async control(principal, action, id, idempotencyKey) {
      await visibleServer(principal, id);
      const { job } = await jobs.createJob({
        kind: ACTION_KINDS[action],
        payload: { serverId: id },
        requester: principal,
        resource: { type: "server", id },
        idempotencyKey: idempotencyKey || null,
        // Checked in the job's transaction with the server locked, and only for a new job: a repeated key answers
        // with its job whatever the server's state has become.
        effects: async (tx, created) => {
          const server = await visibleServer(principal, id, tx, true);
          if (!ALLOWED_FROM[action].includes(server.state)) {
            throw new FailedPreconditionError(`server ${id} is ${server.state}; ${action} needs it ${ALLOWED_FROM[action].join(" or ")}`, "SERVER_STATE", [], { server: id, state: server.state });
          }
          if (action !== "terminate") {
            const busy = await repo.activeJobs(tx, id, created.id);
            if (busy.length > 0) {
              throw new FailedPreconditionError(`server ${id} has a job under way (${busy.map((j) => `${j.kind} ${j.id}`).join(", ")}); wait for it to end`, "SERVER_BUSY", [], { server: id, job: busy[0]?.id ?? "" });
            }
          }
          await repo.insertServerEvents(tx, [{ serverId: id, type: REQUESTED_EVENT[action], fromState: server.state, jobId: created.id, message: `${action} requested by ${principal.id}` }]);
        },
      });
      return job;
    },

    async setTags(principal, id, change, idempotencyKey) {
      await visibleServer(principal, id);
      const earlier = idempotencyKey ? await jobs.findByIdempotencyKey(principal, idempotencyKey) : null;
      if (earlier?.kind === SERVER_TAG_KIND && earlier.resource?.id === id) return earlier;
      const violations: FieldViolation[] = tagViolations(change.set).map((t) => ({ field: t.key ? `set[${JSON.stringify(t.key.slice(0, 64))}]` : "set", description: t.description }));
      for (const k of change.remove) if (k.length < 1 || k.length > 128 || /^(dispatcher|aws):/i.test(k)) violations.push({ field: "remove", description: `${JSON.stringify(k.slice(0, 64))} is not a tag key you may remove` });
      if (Object.keys(change.set).length === 0 && change.remove.length === 0) violations.push({ field: "set", description: "set or remove at least one tag" });
      if (violations.length > 0) throw new InvalidArgumentError(violations);
      const { job } = await jobs.createJob({
        kind: SERVER_TAG_KIND,
        payload: { serverId: id, set: change.set, remove: change.remove },
        requester: principal,
        resource: { type: "server", id },
        idempotencyKey: idempotencyKey || null,
        effects: async (tx, created) => {
          const locked = await visibleServer(principal, id, tx, true);
          if (!locked.providerId || locked.state === "TERMINATED") {
            throw new FailedPreconditionError(`server ${id} is ${locked.providerId ? locked.state : "not on its cloud yet"}; it cannot be tagged`, "SERVER_STATE", [], { server: id, state: locked.state });
          }
          await repo.insertServerEvents(tx, [{ serverId: id, type: "TAGS_REQUESTED", fromState: locked.state, jobId: created.id, message: `tags: set ${Object.keys(change.set).join(", ") || "none"}; remove ${change.remove.join(", ") || "none"}; requested by ${principal.id}` }]);
        },
      });
      return job;
    },

    async setFirewalls(principal, id, firewallIds, idempotencyKey) {
      const server = await visibleServer(principal, id);
      // A retry answers its job whatever has become of the firewalls since.
      const earlier = idempotencyKey ? await jobs.findByIdempotencyKey(principal, idempotencyKey) : null;
      if (earlier?.kind === SERVER_SET_FIREWALLS_KIND && earlier.resource?.id === id) return earlier;
      if (firewallIds.length === 0) throw InvalidArgumentError.field("firewall_ids", "name at least one firewall");
      const firewalls = await options.firewalls(principal, server.accountId, server.regionId, firewallIds);
      const { job } = await jobs.createJob({
        kind: SERVER_SET_FIREWALLS_KIND,
        payload: { serverId: id, firewallIds: firewalls.map((f) => f.id) },
        requester: principal,
        resource: { type: "server", id },
        idempotencyKey: idempotencyKey || null,
        effects: async (tx, created) => {
          const locked = await visibleServer(principal, id, tx, true);
          if (locked.state !== "RUNNING" && locked.state !== "STOPPED") {
            throw new FailedPreconditionError(`server ${id} is ${locked.state}; its firewalls can be set while it is RUNNING or STOPPED`, "SERVER_STATE", [], { server: id, state: locked.state });
          }
          const busy = (await repo.activeJobs(tx, id, created.id)).filter((j) => j.kind !== SERVER_SET_FIREWALLS_KIND);
          if (busy.some((j) => j.kind === SERVER_LAUNCH_KIND)) {
            throw new FailedPreconditionError(`server ${id} is still being launched (${busy.map((j) => j.id).join(", ")}); wait for it to end`, "SERVER_BUSY", [], { server: id, job: busy[0]?.id ?? "" });
          }
          await repo.insertServerEvents(tx, [{ serverId: id, type: "FIREWALLS_REQUESTED", fromState: locked.state, jobId: created.id, message: `firewalls ${firewalls.map((f) => `${f.id} (${f.name})`).join(", ")} requested by ${principal.id}`, details: { firewallIds: firewalls.map((f) => f.id) } }]);
          await options.recordFirewallUse(tx, firewalls, created.id, `server ${id} put in this firewall by ${principal.id}`);
        },
      });
      return job;
    },

    getServer: (principal, id) => visibleServer(principal, id),

    async listServers(principal, q) {
      const scope = scopeOf(principal);
      const rows = await repo.listServers(sql, {
        accountIds: scope.all ? undefined : scope.accountIds,
        accountId: q.accountId,
        regionId: q.regionId,
        state: q.state,
        budgetCode: q.budgetCode,
        agentState: q.agentState,
        tags: q.tags,
        afterId: q.afterId,
        limit: q.pageSize + 1,
      });
      return pageOf(rows, q.pageSize, (s) => s.id);
    },

    async listEvents(principal, id, q) {
      await visibleServer(principal, id);
      const rows = await repo.listServerEvents(sql, id, q.afterId ? BigInt(q.afterId) : 0n, q.pageSize + 1);
      return pageOf(rows, q.pageSize, (e) => e.id.toString());
    },

    async listProducts(principal, accountId, regionId) {
      await visibleAccount(principal, accountId);
      await knownRegion(accountId, regionId);
      return repo.listProducts(sql, accountId, regionId);
    },

    async listImages(principal, accountId, regionId) {
      await visibleAccount(principal, accountId);
      await knownRegion(accountId, regionId);
      return repo.listImages(sql, accountId, regionId);
    },
  };
}
