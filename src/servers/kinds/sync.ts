// servers.sync: discovery of an account's servers. Lists every server the provider has in each of the account's
// regions with compute, then — in the job's completion transaction — adopts the ones the inventory does not know, records the
// state of the known ones through the inventory, and marks TERMINATED those the provider no longer lists.
import { z } from "zod";
import { loadCloudAccount, withCloud } from "../../clouds/access.js";
import type { ServerObservation } from "../../clouds/driver.js";
import type { Sql } from "../../db/sql.js";
import type { JobContext, JobKind } from "../../jobs/catalog.js";
import { PermanentJobError } from "../../jobs/errors.js";
import { adoptServer, applyObservation, markVanished, type ObservationCause } from "../inventory.js";
import type { Server } from "../model.js";
import { activeJobs, findProduct, hasCapability, listRegions, lockLiveServers, lockServersByProviderId } from "../repository.js";
import { SERVER_LAUNCH_KIND, SERVERS_SYNC_KIND } from "./names.js";

export const serversSyncPayload = z.object({ accountId: z.string().min(1).max(64) });
export type ServersSyncPayload = z.output<typeof serversSyncPayload>;

export interface SyncCounts {
  adopted: number;
  updated: number;
  vanished: number;
  /** Rows a job changed after the listing was taken: left to that job (the next sync sees them again). */
  skipped: number;
}

export const serversSyncKind: JobKind<ServersSyncPayload> = {
  kind: SERVERS_SYNC_KIND,
  payload: serversSyncPayload,
  ackWaitMs: 120_000,
  maxAttempts: 3,
  backoffMs: [2_000, 10_000],
  timeoutMs: 5 * 60_000,
  permission: "accounts.discover",

  async handle(ctx, { accountId }) {
    const account = await loadCloudAccount(ctx.sql, accountId);
    if (!account) throw new PermanentJobError(`account ${accountId} does not exist`, "NOT_FOUND", { account: accountId });
    if (account.status !== "ACTIVE") return { status: "succeeded", result: { accountId, skipped: `account is ${account.status}` } };
    // Servers live where there is compute; a region without it is not listed (a provider may refuse the call there),
    // and its rows, if any, are left as they are rather than retired.
    const all = await listRegions(ctx.sql, accountId);
    const computes = await Promise.all(all.map((r) => hasCapability(ctx.sql, accountId, r.id, "compute")));
    const regions = all.filter((_, i) => computes[i]);
    // Rows changed after this moment were changed by someone who saw more recent state than this listing.
    const [clock] = await ctx.sql.query<{ now: Date }>`SELECT NOW(3) AS now`;
    const listedAt = clock?.now ?? new Date();
    const listings = await withCloud(ctx, accountId, { purpose: SERVERS_SYNC_KIND }, async (driver, target, call) => {
      const out: { regionId: string; servers: ServerObservation[] }[] = [];
      for (const region of regions) {
        ctx.checkpoint();
        out.push({ regionId: region.id, servers: await driver.listServers(target, region.id, call) });
      }
      return out;
    });
    const listed = listings.reduce((n, l) => n + l.servers.length, 0);
    return {
      status: "succeeded",
      result: { accountId, regions: regions.length, listed },
      effects: async (tx) => {
        const counts: SyncCounts = { adopted: 0, updated: 0, vanished: 0, skipped: 0 };
        for (const l of listings) await syncRegion(tx, ctx, { accountId, defaultBudgetCode: account.defaultBudgetCode ?? "", regionId: l.regionId, listed: l.servers, listedAt }, counts);
        await tx.execute`UPDATE accounts SET servers_synced_at = NOW(3) WHERE id = ${accountId}`;
        ctx.log.info({ accountId, listed, ...counts }, "servers synced");
      },
    };
  },
};

interface RegionListing {
  accountId: string;
  defaultBudgetCode: string;
  regionId: string;
  listed: ServerObservation[];
  listedAt: Date;
}

/** Compares one region's listing with the inventory, inside the completion transaction (rows locked). */
export async function syncRegion(tx: Sql, ctx: Pick<JobContext, "jobId">, r: RegionListing, counts: SyncCounts): Promise<void> {
  const cause: ObservationCause = { discovery: true, jobId: ctx.jobId };
  const live = await lockLiveServers(tx, r.accountId, r.regionId);
  const listedIds = r.listed.map((o) => o.providerId);
  const known = new Map<string, Server>();
  for (const s of [...live, ...(await lockServersByProviderId(tx, r.accountId, listedIds))]) if (s.providerId) known.set(s.providerId, s);
  const awaitingProviderId = new Map(live.filter((s) => !s.providerId).map((s) => [s.id, s]));
  const seen = new Set<string>();
  const newer = (s: Server) => s.updatedAt.getTime() > r.listedAt.getTime();

  for (const o of r.listed) {
    // A launch whose provider id was not recorded yet (the process died between the call and the write): its client
    // token names the server.
    const server = known.get(o.providerId) ?? (o.clientToken ? awaitingProviderId.get(o.clientToken) : undefined);
    if (server) {
      seen.add(server.id);
      if (newer(server)) counts.skipped++;
      else if ((await applyObservation(tx, server, o, cause)).changed) counts.updated++;
    } else if (o.state !== "TERMINATED" && o.state !== "TERMINATING") {
      const product = await findProduct(tx, r.accountId, r.regionId, o.productId);
      await adoptServer(tx, { accountId: r.accountId, observation: o, product, budgetCode: r.defaultBudgetCode, cause });
      counts.adopted++;
    }
  }
  for (const s of live) {
    if (seen.has(s.id)) continue;
    if (newer(s)) {
      counts.skipped++;
      continue;
    }
    if (s.state === "PENDING" && (await activeJobs(tx, s.id, null)).some((j) => j.kind === SERVER_LAUNCH_KIND)) continue;
    await markVanished(tx, s, cause, s.providerId ? `the cloud no longer lists ${s.providerId}; seen by discovery` : "never reached the cloud and its launch has ended; seen by discovery");
    counts.vanished++;
  }
}
