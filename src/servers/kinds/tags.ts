// server.tag: sets and removes tags of a server through the driver's tag service; done when the cloud shows them,
// recorded (TAGS_CHANGED) with the job's id.
import { z } from "zod";
import { serviceOf } from "../../clouds/resources.js";
import type { JobKind, JobOutcome } from "../../jobs/catalog.js";
import { PermanentJobError } from "../../jobs/errors.js";
import { recordObservation } from "../inventory.js";
import { checkAfter, LIFECYCLE_RETRY, loadServer, observe, onCloud, refOf, serverPayload } from "./common.js";
import { SERVER_TAG_KIND } from "./names.js";

export const serverTagPayload = serverPayload.extend({ set: z.record(z.string(), z.string()).default({}), remove: z.array(z.string()).default([]) });
export type ServerTagPayload = z.output<typeof serverTagPayload>;

const applied = (tags: Record<string, string>, p: ServerTagPayload): boolean => Object.entries(p.set).every(([k, v]) => tags[k] === v) && p.remove.every((k) => !(k in tags));

export const serverTagKind: JobKind<ServerTagPayload> = {
  kind: SERVER_TAG_KIND,
  payload: serverTagPayload,
  ...LIFECYCLE_RETRY,
  timeoutMs: 10 * 60_000,
  permission: "servers.control",

  async handle(ctx, p) {
    const server = await loadServer(ctx, p.serverId);
    const ref = { type: "server" as const, ...refOf(server) };
    ctx.checkpoint();
    await onCloud(ctx, server, async (driver, target, call) => {
      const tags = serviceOf(driver, "tags");
      if (Object.keys(p.set).length > 0) await tags.set(target, ref, p.set, call);
      if (p.remove.length > 0) await tags.remove(target, ref, p.remove, call);
    });
    return { status: "pending", checkAfterMs: checkAfter(0), progressPercent: 50, progressMessage: "asked the cloud; waiting to see the tags" };
  },

  async check(ctx, p, checks): Promise<JobOutcome> {
    const server = await loadServer(ctx, p.serverId);
    const seen = await observe(ctx, server);
    if (!seen) throw new PermanentJobError(`server ${server.id} is no longer known to its cloud`, "NOT_FOUND", { server: server.id });
    if (seen.tags && applied(seen.tags, p)) {
      return { status: "succeeded", result: { serverId: server.id }, effects: async (tx) => void (await recordObservation(tx, server.id, seen, { jobId: ctx.jobId })) };
    }
    return { status: "pending", checkAfterMs: checkAfter(checks), progressMessage: "waiting for the cloud to show the tags" };
  },
};
