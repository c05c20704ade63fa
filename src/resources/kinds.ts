// The kind factory: a resource type's create, delete and other changes each become a job kind with the same shape —
// load the row, refuse a region without the type's capability, make the (idempotent) driver call, record what it
// answered at once, then let the monitor observe with the service's get() until the target state is seen. Plus the
// one tag kind every type shares.
import { z } from "zod";
import { withCloud } from "../clouds/access.js";
import type { CloudDriver, DriverCallOptions, DriverTarget } from "../clouds/driver.js";
import { serviceOf, type ResourceObservation, type ResourceRef } from "../clouds/resources.js";
import type { JobContext, JobKind, JobOutcome } from "../jobs/catalog.js";
import { PermanentJobError, RetryableJobError } from "../jobs/errors.js";
import { hasCapability } from "./capabilities.js";
import { recordObservation } from "./inventory.js";
import { DELETED, PENDING, type Resource } from "./model.js";
import { activeJobs, findResource, insertResourceEvents } from "./repository.js";
import { capabilityOf, specOf, type ResourceTypeSpec } from "./types.js";

export const resourcePayload = z.object({ resourceId: z.string().min(1).max(64) });
export type ResourcePayload = z.output<typeof resourcePayload>;

/** A driver call, with the account's cloud reached for this one job attempt (credentials from KM, in memory only). */
export interface OnCloud {
  driver: CloudDriver;
  target: DriverTarget;
  call: DriverCallOptions;
  ctx: JobContext;
}

export interface ResourceKindDefinition<P extends ResourcePayload, O extends ResourceObservation> {
  kind: string;
  spec: ResourceTypeSpec<O>;
  /** Permission an RPC needs to start it (e.g. "firewalls.write"). */
  permission: string;
  payload: z.ZodType<P>;
  /**
   * The driver call(s). Must be safe to repeat (a retried attempt runs it again): creates pass the row's id as client
   * token, rule and association calls treat "already so" as success. Returns what the cloud answered, if anything.
   */
  act(cloud: OnCloud, resource: Resource, payload: P): Promise<O | null | undefined | void>;
  /** Whether what the service's get() answers (null: the resource is gone) is the state the job is for. */
  done(seen: O | null, resource: Resource, payload: P, ctx: JobContext): boolean | Promise<boolean>;
  /** Default 10 minutes. */
  timeoutMs?: number;
}

/** Retries of a resource job: every driver call is idempotent. */
const RETRY: Pick<JobKind, "maxAttempts" | "backoffMs" | "ackWaitMs"> = { maxAttempts: 6, backoffMs: [1_000, 5_000, 15_000, 30_000], ackWaitMs: 90_000 };

/** Delay before completion check n+1: quick at first, then every 5 s. */
export const checkAfter = (checks: number): number => Math.min(200 * 2 ** Math.min(checks, 5), 5_000);

export async function loadResource(ctx: Pick<JobContext, "sql">, resourceId: string): Promise<Resource> {
  const resource = await findResource(ctx.sql, resourceId);
  if (!resource) throw new PermanentJobError(`resource ${resourceId} does not exist`, "NOT_FOUND", { resource: resourceId });
  return resource;
}

export function refOf(resource: Resource): ResourceRef {
  if (!resource.providerId) throw new PermanentJobError(`${resource.type} ${resource.id} has no provider id: it never reached its cloud`, "FAILED_PRECONDITION", { resource: resource.id });
  return { regionId: resource.regionId, providerId: resource.providerId };
}

/**
 * Refuses a region that does not (or no longer) offer the type: re-read on every attempt, so a capability discovery
 * adds later is honoured at once and one it removes fails the job with the capability's name.
 */
async function requireCapability(ctx: JobContext, spec: ResourceTypeSpec, resource: Resource): Promise<void> {
  const capability = capabilityOf(spec);
  if (!(await hasCapability(ctx.sql, resource.accountId, resource.regionId, capability))) {
    throw new PermanentJobError(`account ${resource.accountId} has no ${capability} capability in region ${resource.regionId}`, "FAILED_PRECONDITION", { capability, region: resource.regionId, account: resource.accountId });
  }
}

export function onCloud<T>(ctx: JobContext, resource: Resource, fn: (cloud: OnCloud) => Promise<T>): Promise<T> {
  return withCloud(ctx, resource.accountId, { purpose: ctx.kind }, (driver, target, call) => fn({ driver, target, call, ctx }));
}

/** The resource as its cloud reports it now; null when the provider does not know it (any more). */
export function observe<O extends ResourceObservation>(ctx: JobContext, spec: ResourceTypeSpec<O>, resource: Resource): Promise<O | null> {
  if (!resource.providerId) return Promise.resolve(null);
  const ref = refOf(resource);
  return onCloud(ctx, resource, ({ driver, target, call }) => serviceOf(driver, spec.service).get(target, ref, call) as Promise<O | null>);
}

/** Records an observation at once, in a transaction of its own: a retry or a check builds on it. */
export function recordNow(ctx: JobContext, spec: ResourceTypeSpec, resourceId: string, seen: ResourceObservation | null): Promise<Resource | null> {
  return ctx.sql.transaction((tx) => recordObservation(tx, spec, resourceId, seen, { jobId: ctx.jobId }));
}

/** A create the cloud refused for good: the resource never existed there, so it ends DELETED with the reason. */
async function recordCreateFailure(ctx: JobContext, resource: Resource, why: string): Promise<void> {
  await ctx.sql.transaction(async (tx) => {
    const now = await findResource(tx, resource.id, true);
    if (!now || now.providerId || now.state === DELETED) return;
    await insertResourceEvents(tx, [{ resourceId: resource.id, type: "CREATE_FAILED", fromState: now.state, toState: DELETED, jobId: ctx.jobId, message: why.slice(0, 1024) }]);
    await recordObservation(tx, specOf(resource.type), resource.id, null, { jobId: ctx.jobId });
  });
}

function succeeded(ctx: JobContext, spec: ResourceTypeSpec, resource: Resource, seen: ResourceObservation | null): JobOutcome {
  return {
    status: "succeeded",
    result: { resourceId: resource.id, type: resource.type, state: seen?.state ?? DELETED, providerId: seen?.providerId ?? resource.providerId ?? "" },
    effects: async (tx) => void (await recordObservation(tx, spec, resource.id, seen, { jobId: ctx.jobId })),
  };
}

const pending = (checks: number, message: string): JobOutcome => ({ status: "pending", checkAfterMs: checkAfter(checks), progressPercent: 50, progressMessage: message });

/** A job kind for one change of one resource type. */
export function defineResourceKind<P extends ResourcePayload, O extends ResourceObservation>(def: ResourceKindDefinition<P, O>): JobKind<P> {
  const { spec } = def;
  const generic = spec as unknown as ResourceTypeSpec;
  return {
    kind: def.kind,
    payload: def.payload,
    ...RETRY,
    timeoutMs: def.timeoutMs ?? 10 * 60_000,
    permission: def.permission,

    async handle(ctx, payload) {
      const resource = await loadResource(ctx, payload.resourceId);
      if (resource.type !== spec.type) throw new PermanentJobError(`resource ${resource.id} is a ${resource.type}, not a ${spec.type}`, "FAILED_PRECONDITION", { resource: resource.id });
      await requireCapability(ctx, generic, resource);
      ctx.checkpoint();
      let answered: O | null | undefined | void;
      try {
        answered = await onCloud(ctx, resource, (cloud) => def.act(cloud, resource, payload));
      } catch (err) {
        if (err instanceof PermanentJobError && !resource.providerId && resource.state === PENDING) await recordCreateFailure(ctx, resource, err.message);
        throw err;
      }
      if (answered) await recordNow(ctx, generic, resource.id, answered);
      return pending(0, `asked the cloud; waiting to see the ${spec.noun} so`);
    },

    async check(ctx, payload, checks) {
      const resource = await loadResource(ctx, payload.resourceId);
      const seen = await observe(ctx, spec, resource);
      if (await def.done(seen, resource, payload, ctx)) return succeeded(ctx, generic, resource, seen);
      if (seen || resource.providerId) await recordNow(ctx, generic, resource.id, seen);
      return pending(checks, seen ? `${spec.noun} is ${seen.state}` : `${spec.noun} not seen yet`);
    },
  };
}

/**
 * The delete of a type: deleting what is already gone succeeds; a row whose create never got a provider id is done
 * once no create job can still give it one.
 */
export function defineDeleteKind<O extends ResourceObservation>(o: { kind: string; spec: ResourceTypeSpec<O>; permission: string; createKind: string }): JobKind<ResourcePayload> {
  return defineResourceKind<ResourcePayload, O>({
    kind: o.kind,
    spec: o.spec,
    permission: o.permission,
    payload: resourcePayload,
    async act({ driver, target, call, ctx }, resource) {
      if (!resource.providerId) {
        const creating = (await activeJobs(ctx.sql, resource, ctx.jobId)).some((j) => j.kind === o.createKind);
        if (creating) throw new RetryableJobError(`${o.spec.noun} ${resource.id} is still being created; deleting it once it has a provider id`, "UNAVAILABLE");
        return null;
      }
      await serviceOf(driver, o.spec.service).delete(target, refOf(resource), call);
      return null;
    },
    done: (seen) => seen === null,
  });
}

// ---- tags: one kind for every type ----

export const RESOURCE_TAG_KIND = "resource.tag";

export const tagPayload = resourcePayload.extend({
  set: z.record(z.string(), z.string()).default({}),
  remove: z.array(z.string()).default([]),
});
export type TagPayload = z.output<typeof tagPayload>;

const tagsApplied = (tags: Record<string, string>, p: TagPayload): boolean => Object.entries(p.set).every(([k, v]) => tags[k] === v) && p.remove.every((k) => !(k in tags));

/** Sets and removes tags on any resource; done when the cloud shows them so. */
export const resourceTagKind: JobKind<TagPayload> = {
  kind: RESOURCE_TAG_KIND,
  payload: tagPayload,
  ...RETRY,
  timeoutMs: 5 * 60_000,
  permission: "resources.tag",

  async handle(ctx, payload) {
    const resource = await loadResource(ctx, payload.resourceId);
    const spec = specOf(resource.type);
    await requireCapability(ctx, spec, resource);
    const ref = { ...refOf(resource), type: resource.type };
    ctx.checkpoint();
    const seen = await onCloud(ctx, resource, async ({ driver, target, call }) => {
      const tags = serviceOf(driver, "tags");
      if (Object.keys(payload.set).length > 0) await tags.set(target, ref, payload.set, call);
      if (payload.remove.length > 0) await tags.remove(target, ref, payload.remove, call);
      return serviceOf(driver, spec.service).get(target, ref, call);
    });
    if (seen && tagsApplied(seen.tags, payload)) return succeeded(ctx, spec, resource, seen);
    await recordNow(ctx, spec, resource.id, seen);
    if (!seen) throw new PermanentJobError(`${spec.noun} ${resource.id} is gone from its cloud`, "NOT_FOUND", { resource: resource.id });
    return pending(0, "waiting for the cloud to show the tags");
  },

  async check(ctx, payload, checks) {
    const resource = await loadResource(ctx, payload.resourceId);
    const spec = specOf(resource.type);
    const seen = await observe(ctx, spec, resource);
    if (!seen) throw new PermanentJobError(`${spec.noun} ${resource.id} is gone from its cloud`, "NOT_FOUND", { resource: resource.id });
    if (tagsApplied(seen.tags, payload)) return succeeded(ctx, spec, resource, seen);
    return pending(checks, "waiting for the cloud to show the tags");
  },
};
