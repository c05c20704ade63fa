// resources.sync: discovery of an account's resources of every type the mechanism manages. In each region, for each
// type whose capability the region has (and whose service the driver offers), lists what the provider has; then, in
// the job's completion transaction, adopts what the inventory does not know, records the state of what it knows, and
// marks DELETED what the provider no longer lists. The monitor starts one per account on a schedule.
import { z } from "zod";
import { loadCloudAccount, withCloud } from "../clouds/access.js";
import type { ResourceObservation } from "../clouds/resources.js";
import { sqlFragment, type Sql } from "../db/sql.js";
import type { JobContext, JobKind } from "../jobs/catalog.js";
import { PermanentJobError } from "../jobs/errors.js";
import { accountsDueBy, type AccountSchedule } from "../monitor/scheduler.js";
import { hasCapability } from "./capabilities.js";
import { adoptResource, applyObservation } from "./inventory.js";
import { PENDING, type Resource } from "./model.js";
import { activeJobs, lockByProviderId, lockLiveResources } from "./repository.js";
import { allSpecs, capabilityOf, type ResourceTypeSpec } from "./types.js";

export const RESOURCES_SYNC_KIND = "resources.sync";

export const resourcesSyncPayload = z.object({ accountId: z.string().min(1).max(64) });
export type ResourcesSyncPayload = z.output<typeof resourcesSyncPayload>;

export interface ResourceSyncCounts {
  adopted: number;
  updated: number;
  vanished: number;
  /** Rows a job changed after the listing was taken, or whose create is under way: left for the next sync. */
  skipped: number;
}

interface Listing {
  spec: ResourceTypeSpec;
  regionId: string;
  listed: ResourceObservation[];
}

export const resourcesSyncKind: JobKind<ResourcesSyncPayload> = {
  kind: RESOURCES_SYNC_KIND,
  payload: resourcesSyncPayload,
  ackWaitMs: 120_000,
  maxAttempts: 3,
  backoffMs: [2_000, 10_000],
  timeoutMs: 5 * 60_000,
  permission: "accounts.discover",

  async handle(ctx, { accountId }) {
    const account = await loadCloudAccount(ctx.sql, accountId);
    if (!account) throw new PermanentJobError(`account ${accountId} does not exist`, "NOT_FOUND", { account: accountId });
    if (account.status !== "ACTIVE") return { status: "succeeded", result: { accountId, skipped: `account is ${account.status}` } };
    const regions = await ctx.sql.query<{ id: string }>`SELECT region_id AS id FROM account_regions WHERE account_id = ${accountId} ORDER BY position, region_id`;
    // What to list: a region without the type's capability is not asked (a provider may refuse there) and its rows
    // are left as they are rather than retired.
    const wanted: Array<{ spec: ResourceTypeSpec; regionId: string }> = [];
    for (const region of regions) {
      for (const spec of allSpecs()) if (await hasCapability(ctx.sql, accountId, region.id, capabilityOf(spec))) wanted.push({ spec, regionId: region.id });
    }
    const [clock] = await ctx.sql.query<{ now: Date }>`SELECT NOW(3) AS now`;
    const listedAt = clock?.now ?? new Date();
    const listings = await withCloud(ctx, accountId, { purpose: RESOURCES_SYNC_KIND }, async (driver, target, call) => {
      const out: Listing[] = [];
      for (const w of wanted) {
        const service = driver.services?.[w.spec.service];
        if (!service) continue;
        ctx.checkpoint();
        out.push({ ...w, listed: await service.list(target, w.regionId, call) });
      }
      return out;
    });
    const listed = listings.reduce((n, l) => n + l.listed.length, 0);
    return {
      status: "succeeded",
      result: { accountId, listings: listings.length, listed },
      effects: async (tx) => {
        const counts: ResourceSyncCounts = { adopted: 0, updated: 0, vanished: 0, skipped: 0 };
        for (const l of listings) await syncListing(tx, ctx, { accountId, defaultBudgetCode: account.defaultBudgetCode ?? "", listedAt, ...l }, counts);
        await tx.execute`UPDATE accounts SET resources_synced_at = NOW(3) WHERE id = ${accountId}`;
        ctx.log.info({ accountId, listed, ...counts }, "resources synced");
      },
    };
  },
};

/** Compares one type's listing in one region with the inventory, inside the completion transaction (rows locked). */
export async function syncListing(
  tx: Sql,
  ctx: Pick<JobContext, "jobId">,
  l: Listing & { accountId: string; defaultBudgetCode: string; listedAt: Date },
  counts: ResourceSyncCounts,
): Promise<void> {
  const cause = { jobId: ctx.jobId };
  const live = await lockLiveResources(tx, l.accountId, l.spec.type, l.regionId);
  const known = new Map<string, Resource>();
  for (const r of [...live, ...(await lockByProviderId(tx, l.accountId, l.spec.type, l.listed.map((o) => o.providerId)))]) if (r.providerId) known.set(r.providerId, r);
  // A create whose provider id was not recorded yet (the process died between the call and the write): its client
  // token names the row.
  const awaitingProviderId = new Map(live.filter((r) => !r.providerId).map((r) => [r.id, r]));
  const newer = (r: Resource) => r.updatedAt.getTime() > l.listedAt.getTime();
  const seen = new Set<string>();
  for (const o of l.listed) {
    const row = known.get(o.providerId) ?? (o.clientToken ? awaitingProviderId.get(o.clientToken) : undefined);
    if (row) {
      seen.add(row.id);
      if (newer(row)) counts.skipped++;
      else if ((await applyObservation(tx, l.spec, row, o, cause)).length > 0) counts.updated++;
    } else {
      await adoptResource(tx, l.spec, l.accountId, o, cause, l.defaultBudgetCode);
      counts.adopted++;
    }
  }
  for (const r of live) {
    if (seen.has(r.id)) continue;
    if (newer(r) || (r.state === PENDING && (await activeJobs(tx, r, null)).length > 0)) {
      counts.skipped++;
      continue;
    }
    await applyObservation(tx, l.spec, r, null, cause);
    counts.vanished++;
  }
}

/** When the monitor syncs an account's resources: every `intervalMs`, for ACTIVE accounts. */
export function resourceSyncSchedule(intervalMs: number): AccountSchedule {
  return accountsDueBy({ name: "resource_sync", kind: RESOURCES_SYNC_KIND, intervalMs, dueColumn: sqlFragment`next_resource_sync_at`, eligible: sqlFragment`status = 'ACTIVE'` });
}
