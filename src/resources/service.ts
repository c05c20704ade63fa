// The rules every resource type shares, parameterised by its spec: object scope by account (another account's
// resource is NOT_FOUND, like one that does not exist), the capability gate, tag validation, budget admission for
// types that cost money, and each change as one job written in the same transaction as the rows and history it
// implies. Type services (firewalls, addresses, key pairs, volumes, …) add their own checks and payloads on top.
import type { ProvisioningDb } from "../db/clients.js";
import { newId } from "../db/ids.js";
import { pageOf, type Page } from "../db/page.js";
import type { Sql } from "../db/sql.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, type FieldViolation } from "../errors.js";
import type { Principal } from "../iam/principal.js";
import { inScope, scopeOf } from "../iam/scope.js";
import type { Job } from "../jobs/model.js";
import type { JobService } from "../jobs/service.js";
import { requireBudgetCode } from "../provisioning/budgets/guard.js";
import { tagViolations } from "../clouds/resources.js";
import { requireTypeCapability } from "./capabilities.js";
import { RESOURCE_TAG_KIND } from "./kinds.js";
import { DELETED, PENDING, type Resource, type ResourceEvent } from "./model.js";
import * as repo from "./repository.js";
import { hourlyPriceOf, isPriced, type ResourceTypeSpec } from "./types.js";
import { recordChange } from "../audit/trail.js";

const HOURS_PER_MONTH = 730n;
const MICROS_PER_CENT = 10_000n;

/** What a type's month costs, in cents rounded up: what budget admission checks against the hard quota. */
export const monthlyCostCents = (hourlyPriceMicros: bigint): bigint => (hourlyPriceMicros * HOURS_PER_MONTH + MICROS_PER_CENT - 1n) / MICROS_PER_CENT;

export interface CreateResourceInput {
  accountId: string;
  regionId: string;
  /** "" for a name made from the resource's id. */
  name: string;
  /** "" for the account's default budget code (types that cost nothing ignore it). */
  budgetCode: string;
  tags: Record<string, string>;
  idempotencyKey: string;
  /** The create kind and the payload fields it takes besides resourceId (never a secret: payloads are stored). */
  kind: string;
  payload?: Record<string, unknown>;
  /** Details known before the cloud answers (e.g. a firewall's description). */
  details?: Record<string, string>;
}

export interface ActionInput {
  kind: string;
  payload?: Record<string, unknown>;
  idempotencyKey: string;
  /** The history line ("rule added: tcp 22 from 10.0.0.0/8"). */
  message: string;
  details?: Record<string, unknown>;
  /** Checked in the job's transaction with the row locked, only for a new job; throws to refuse. */
  allowed?: (resource: Resource, tx: Sql) => Promise<void> | void;
  /** A delete: its history line says so. */
  deletes?: boolean;
}

export interface ListResourcesQuery {
  accountId?: string | undefined;
  regionId?: string | undefined;
  state?: string | undefined;
  tags?: Record<string, string> | undefined;
  includeDeleted?: boolean | undefined;
  afterId?: string | undefined;
  pageSize: number;
}

export interface ResourceService {
  create(principal: Readonly<Principal>, spec: ResourceTypeSpec, input: CreateResourceInput): Promise<{ job: Job; resource: Resource }>;
  /** A job on an existing resource (delete, a rule, an association); FAILED_PRECONDITION once it is DELETED. */
  act(principal: Readonly<Principal>, spec: ResourceTypeSpec, id: string, input: ActionInput): Promise<Job>;
  setTags(principal: Readonly<Principal>, spec: ResourceTypeSpec, id: string, change: { set: Record<string, string>; remove: string[] }, idempotencyKey: string): Promise<Job>;
  get(principal: Readonly<Principal>, spec: ResourceTypeSpec, id: string): Promise<Resource>;
  list(principal: Readonly<Principal>, spec: ResourceTypeSpec, query: ListResourcesQuery): Promise<Page<Resource>>;
  listEvents(principal: Readonly<Principal>, spec: ResourceTypeSpec, id: string, query: { pageSize: number; afterId?: string | undefined }): Promise<Page<ResourceEvent>>;
}

export interface ResourceServiceDeps {
  sql: Sql;
  /** For the budget check (src/provisioning/budgets/guard.ts). */
  db: ProvisioningDb;
  jobs: Pick<JobService, "createJob" | "findByIdempotencyKey">;
}

export function createResourceService(deps: ResourceServiceDeps): ResourceService {
  const { sql, db, jobs } = deps;

  /** The resource if it is of this type and the principal's scope covers its account; NOT_FOUND otherwise. */
  const visible = async (principal: Readonly<Principal>, spec: ResourceTypeSpec, id: string, tx: Sql = sql, lock = false): Promise<Resource> => {
    const resource = await repo.findResource(tx, id, lock);
    if (!resource || resource.type !== spec.type || !inScope(scopeOf(principal), resource.accountId)) throw new NotFoundError(spec.type, id);
    return resource;
  };

  /** The job an earlier request with this key started, checked to be of the same kind; null when the key is new. */
  const replayed = async (principal: Readonly<Principal>, key: string, kind: string): Promise<Job | null> => {
    if (!key) return null;
    const job = await jobs.findByIdempotencyKey(principal, key);
    if (job && job.kind !== kind) {
      throw new FailedPreconditionError(`idempotency key ${JSON.stringify(key)} was used for a ${job.kind} job (${job.id})`, "IDEMPOTENCY_KEY_REUSED", [], { jobId: job.id });
    }
    return job;
  };

  const checkTags = (field: string, tags: Record<string, string>): void => {
    const violations: FieldViolation[] = tagViolations(tags).map((t) => ({ field: t.key ? `${field}[${JSON.stringify(t.key.slice(0, 64))}]` : field, description: t.description }));
    if (violations.length > 0) throw new InvalidArgumentError(violations);
  };

  async function act(principal: Readonly<Principal>, spec: ResourceTypeSpec, id: string, input: ActionInput): Promise<Job> {
    await visible(principal, spec, id);
    const earlier = await replayed(principal, input.idempotencyKey, input.kind);
    if (earlier) return earlier;
    const { job } = await jobs.createJob({
      kind: input.kind,
      payload: { ...input.payload, resourceId: id },
      requester: principal,
      resource: { type: spec.type, id },
      idempotencyKey: input.idempotencyKey || null,
      effects: async (tx, created) => {
        const resource = await visible(principal, spec, id, tx, true);
        if (resource.state === DELETED) throw new FailedPreconditionError(`${spec.noun} ${id} is deleted`, "RESOURCE_DELETED", [], { resource: id });
        await requireTypeCapability(tx, spec, resource.accountId, resource.regionId);
        await input.allowed?.(resource, tx);
        await repo.insertResourceEvents(tx, [{ resourceId: id, type: input.deletes ? "DELETE_REQUESTED" : "ACTION_REQUESTED", fromState: resource.state, jobId: created.id, message: input.message, details: input.details ?? null }]);
        await recordChange(tx, { action: input.kind, objectType: spec.type, objectId: id, fields: "resource", before: input.deletes ? resource : null, after: input.deletes ? null : (input.payload ?? {}) });
      },
    });
    return job;
  }

  return {
    act,

    async create(principal, spec, input) {
      const earlier = await replayed(principal, input.idempotencyKey, input.kind);
      if (earlier?.resource) return { job: earlier, resource: await visible(principal, spec, earlier.resource.id) };
      checkTags("tags", input.tags);
      const account = inScope(scopeOf(principal), input.accountId)
        ? (await sql.query<{ id: string; status: string; defaultBudgetCode: string | null }>`SELECT id, status, default_budget_code AS defaultBudgetCode FROM accounts WHERE id = ${input.accountId}`)[0]
        : undefined;
      if (!account) throw new NotFoundError("account", input.accountId);
      if (account.status !== "ACTIVE") {
        throw new FailedPreconditionError(`account ${account.id} is ${account.status}; ${spec.noun}s can be created only on an ACTIVE account`, "ACCOUNT_NOT_ACTIVE", [], { account: account.id, status: account.status });
      }
      const [region] = await sql.query<{ id: string }>`SELECT region_id AS id FROM account_regions WHERE account_id = ${account.id} AND region_id = ${input.regionId}`;
      if (!region) throw InvalidArgumentError.field("region_id", `account ${account.id} has no region ${JSON.stringify(input.regionId)}`);
      await requireTypeCapability(sql, spec, account.id, region.id);

      // Only what costs money needs a budget code; its month must fit the code's hard quota (QuotaFailure otherwise).
      // A type priced by size is admitted at the size its create asks for (a volume's GiB; a bucket starts empty).
      let budgetCode = "";
      const hourlyPriceMicros = hourlyPriceOf(spec, input.details ?? {});
      if (isPriced(spec)) {
        budgetCode = input.budgetCode || account.defaultBudgetCode || "";
        if (!budgetCode) throw InvalidArgumentError.field("budget_code", `is required: account ${account.id} has no default budget code`);
        await requireBudgetCode(db, principal, budgetCode, monthlyCostCents(hourlyPriceMicros));
      }
      const id = newId();
      const name = input.name || `${spec.type.replace(/_/g, "-")}-${id.slice(-8).toLowerCase()}`;
      const { job } = await jobs.createJob({
        kind: input.kind,
        payload: { ...input.payload, resourceId: id },
        requester: principal,
        resource: { type: spec.type, id, accountId: account.id },
        idempotencyKey: input.idempotencyKey || null,
        effects: async (tx, created) => {
          await repo.insertResource(tx, {
            id,
            accountId: account.id,
            regionId: region.id,
            type: spec.type,
            providerId: null,
            name,
            state: PENDING,
            origin: "CREATED",
            budgetCode,
            tags: input.tags,
            details: input.details ?? {},
            clientToken: id,
            hourlyPriceMicros,
            createdBy: principal.id,
          });
          await repo.insertResourceEvents(tx, [
            { resourceId: id, type: "CREATE_REQUESTED", toState: PENDING, jobId: created.id, message: `${spec.noun} ${name} in ${region.id} requested by ${principal.id}`, details: budgetCode ? { budgetCode } : null },
          ]);
          await recordChange(tx, { action: input.kind, objectType: spec.type, objectId: id, fields: "resource", after: { ...input.payload, ...input.details, name, accountId: account.id, regionId: region.id, budgetCode, tags: input.tags } });
        },
      });
      // A concurrent request with the same key may have won the insert: its resource is the one to answer with.
      return { job, resource: await visible(principal, spec, job.resource?.id ?? id) };
    },

    async setTags(principal, spec, id, change, idempotencyKey) {
      checkTags("set", change.set);
      const violations = change.remove.flatMap((k, i) => tagViolations({ [k]: "" }).map((t) => ({ field: `remove[${i}]`, description: t.description })));
      if (violations.length > 0) throw new InvalidArgumentError(violations);
      if (Object.keys(change.set).length === 0 && change.remove.length === 0) throw InvalidArgumentError.field("set", "name at least one tag to set or remove");
      const both = change.remove.filter((k) => k in change.set);
      if (both.length > 0) throw InvalidArgumentError.field("remove", `${JSON.stringify(both[0])} is both set and removed`);
      return act(principal, spec, id, {
        kind: RESOURCE_TAG_KIND,
        payload: { set: change.set, remove: change.remove },
        idempotencyKey,
        message: `tags: set ${Object.keys(change.set).join(", ") || "none"}; remove ${change.remove.join(", ") || "none"}`,
        allowed: (r) => {
          if (!r.providerId) throw new FailedPreconditionError(`${spec.noun} ${id} has not reached its cloud yet`, "RESOURCE_PENDING", [], { resource: id });
        },
      });
    },

    get: (principal, spec, id) => visible(principal, spec, id),

    async list(principal, spec, q) {
      const scope = scopeOf(principal);
      const rows = await repo.listResources(sql, {
        type: spec.type,
        accountIds: scope.all ? undefined : scope.accountIds,
        accountId: q.accountId,
        regionId: q.regionId,
        state: q.state,
        tags: q.tags,
        includeDeleted: q.includeDeleted,
        afterId: q.afterId,
        limit: q.pageSize + 1,
      });
      return pageOf(rows, q.pageSize, (r) => r.id);
    },

    async listEvents(principal, spec, id, q) {
      await visible(principal, spec, id);
      const rows = await repo.listResourceEvents(sql, id, q.afterId ? BigInt(q.afterId) : 0n, q.pageSize + 1);
      return pageOf(rows, q.pageSize, (e) => e.id.toString());
    },
  };
}
