// server.set_firewalls: puts a server in exactly the firewalls of its payload (dispatcher ids, resolved to the
// provider's when the job runs) through the driver's firewall service; done when the cloud shows the server in that
// set, recorded as the server's new details (`firewalls`) with the job's id.
import { z } from "zod";
import { serviceOf } from "../../clouds/resources.js";
import type { JobContext, JobKind, JobOutcome } from "../../jobs/catalog.js";
import { PermanentJobError } from "../../jobs/errors.js";
import { DELETED } from "../../resources/model.js";
import { findResource } from "../../resources/repository.js";
import { recordObservation } from "../inventory.js";
import { MAX_SERVER_FIREWALLS } from "../launch-options.js";
import type { Server } from "../model.js";
import { checkAfter, LIFECYCLE_RETRY, loadServer, observe, onCloud, refOf, serverPayload } from "./common.js";
import { SERVER_SET_FIREWALLS_KIND } from "./names.js";

export const setFirewallsPayload = serverPayload.extend({ firewallIds: z.array(z.string().min(1).max(64)).min(1).max(MAX_SERVER_FIREWALLS) });
export type SetFirewallsPayload = z.output<typeof setFirewallsPayload>;

async function providerIds(ctx: JobContext, server: Server, ids: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const id of ids) {
    const r = await findResource(ctx.sql, id);
    if (!r || r.type !== "firewall" || r.accountId !== server.accountId || r.regionId !== server.regionId) throw new PermanentJobError(`firewall ${id} does not exist in the server's account and region`, "NOT_FOUND", { server: server.id, firewall: id });
    if (r.state === DELETED || !r.providerId) throw new PermanentJobError(`firewall ${id} is ${r.state}`, "FAILED_PRECONDITION", { server: server.id, firewall: id });
    out.push(r.providerId);
  }
  return out;
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean => {
  const sa = new Set(a);
  return sa.size === new Set(b).size && b.every((x) => sa.has(x));
};

export const serverSetFirewallsKind: JobKind<SetFirewallsPayload> = {
  kind: SERVER_SET_FIREWALLS_KIND,
  payload: setFirewallsPayload,
  ...LIFECYCLE_RETRY,
  timeoutMs: 10 * 60_000,
  permission: "servers.control",

  async handle(ctx, p) {
    const server = await loadServer(ctx, p.serverId);
    const ref = refOf(server);
    const ids = await providerIds(ctx, server, p.firewallIds);
    ctx.checkpoint();
    await onCloud(ctx, server, (driver, target, call) => serviceOf(driver, "firewalls").setServerFirewalls(target, ref, ids, call));
    return { status: "pending", checkAfterMs: checkAfter(0), progressPercent: 50, progressMessage: "asked the cloud; waiting to see the server in its firewalls" };
  },

  async check(ctx, p, checks): Promise<JobOutcome> {
    const server = await loadServer(ctx, p.serverId);
    const [seen, ids] = await Promise.all([observe(ctx, server), providerIds(ctx, server, p.firewallIds)]);
    if (!seen) throw new PermanentJobError(`server ${server.id} is no longer known to its cloud`, "NOT_FOUND", { server: server.id });
    if (seen.firewallIds && sameSet(seen.firewallIds, ids)) {
      return { status: "succeeded", result: { serverId: server.id, firewalls: ids.join(",") }, effects: async (tx) => void (await recordObservation(tx, server.id, seen, { jobId: ctx.jobId })) };
    }
    return { status: "pending", checkAfterMs: checkAfter(checks), progressMessage: `server is in ${(seen.firewallIds ?? []).join(", ") || "no firewall"}` };
  },
};
