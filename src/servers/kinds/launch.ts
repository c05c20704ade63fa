// server.launch: asks the cloud for the server (client token = server id, so a retry finds the same provider server),
// records the provider id and first observation at once, then lets the monitor watch until the server is RUNNING.
import type { ServerState } from "../../clouds/driver.js";
import type { JobContext, JobKind, JobOutcome } from "../../jobs/catalog.js";
import { PermanentJobError } from "../../jobs/errors.js";
import { bootstrapFor } from "../bootstrap.js";
import { recordObservation } from "../inventory.js";
import type { Server } from "../model.js";
import { findServer, insertServerEvents } from "../repository.js";
import { checkAfter, LIFECYCLE_RETRY, loadServer, observe, onCloud, recordNow, serverPayload, type ServerPayload } from "./common.js";
import { SERVER_LAUNCH_KIND } from "./names.js";

const GAVE_UP: ReadonlySet<ServerState> = new Set(["STOPPING", "STOPPED", "TERMINATING", "TERMINATED"]);

/** Checks that find no server before the provider lists a fresh launch (eventual consistency) before giving up. */
const UNSEEN_CHECKS = 10;

export const serverLaunchKind: JobKind<ServerPayload> = {
  kind: SERVER_LAUNCH_KIND,
  payload: serverPayload,
  ...LIFECYCLE_RETRY,
  timeoutMs: 15 * 60_000,
  permission: "servers.launch",

  async handle(ctx, { serverId }) {
    const server = await loadServer(ctx, serverId);
    if (server.state === "TERMINATED") throw new PermanentJobError(`server ${serverId} was terminated before it launched`, "ABORTED", { server: serverId });
    if (!server.providerId) {
      ctx.checkpoint();
      const bootstrap = await bootstrapFor(server, ctx);
      let launched;
      try {
        launched = await onCloud(ctx, server, (driver, target, call) =>
          driver.launch(target, { regionId: server.regionId, dataCenter: server.dataCenter, productId: server.productId, imageId: server.imageId, name: server.name, clientToken: server.id, bootstrap }, call),
        );
      } catch (err) {
        if (err instanceof PermanentJobError) await recordFailure(ctx, server, err.message);
        throw err;
      }
      await recordNow(ctx, serverId, launched);
    }
    return { status: "pending", checkAfterMs: checkAfter(0), progressPercent: 50, progressMessage: "launched; waiting for the server to run" };
  },

  async check(ctx, { serverId }, checks) {
    const server = await loadServer(ctx, serverId);
    const seen = await observe(ctx, server);
    if (!seen) {
      if (checks < UNSEEN_CHECKS) return { status: "pending", checkAfterMs: checkAfter(checks) };
      throw new PermanentJobError(`server ${serverId} (${server.providerId ?? "?"}) is not known to its cloud`, "NOT_FOUND", { server: serverId });
    }
    if (seen.state === "RUNNING") return running(ctx, serverId, seen);
    await recordNow(ctx, serverId, seen);
    // A launched server that stops or ends on its own (its process died, the cloud could not place it) will not run
    // by waiting: fail now with its state, rather than at the timeout. The server keeps the state seen.
    if (GAVE_UP.has(seen.state)) {
      throw new PermanentJobError(`server ${serverId} is ${seen.state} before it ran`, "ABORTED", { server: serverId, state: seen.state });
    }
    return { status: "pending", checkAfterMs: checkAfter(checks), progressPercent: 75, progressMessage: `server is ${seen.state}` };
  },
};

function running(ctx: JobContext, serverId: string, seen: Parameters<typeof recordObservation>[2]): JobOutcome {
  return {
    status: "succeeded",
    result: { serverId, state: "RUNNING", providerId: seen.providerId ?? "" },
    effects: async (tx) => void (await recordObservation(tx, serverId, seen, { jobId: ctx.jobId })),
  };
}

/** A launch the cloud refused for good: the server never existed there, so it ends TERMINATED with the reason. */
async function recordFailure(ctx: JobContext, server: Server, why: string): Promise<void> {
  await ctx.sql.transaction(async (tx) => {
    const now = await findServer(tx, server.id, true);
    if (!now || now.providerId || now.state === "TERMINATED") return;
    await insertServerEvents(tx, [{ serverId: server.id, type: "LAUNCH_FAILED", fromState: now.state, toState: "TERMINATED", jobId: ctx.jobId, message: why }]);
    await recordObservation(tx, server.id, { state: "TERMINATED", addresses: now.addresses }, { jobId: ctx.jobId });
  });
}
