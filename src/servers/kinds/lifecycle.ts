// server.start, server.stop, server.terminate and server.reboot: the worker asks the cloud and records what it sees
// at once; the monitor's check succeeds when the target state is observed (terminate: TERMINATED or gone; reboot:
// RUNNING again with a new boot, see bootMarker).
import type { ServerObservation, ServerState } from "../../clouds/driver.js";
import type { JobContext, JobKind, JobOutcome } from "../../jobs/catalog.js";
import { PermanentJobError, RetryableJobError } from "../../jobs/errors.js";
import { recordObservation, type Observation } from "../inventory.js";
import type { Server } from "../model.js";
import { activeJobs, findJobEvent, insertServerEvents, sawStateSince } from "../repository.js";
import { checkAfter, GONE, LIFECYCLE_RETRY, loadServer, observe, onCloud, recordNow, refOf, serverPayload, type ServerPayload } from "./common.js";
import { SERVER_LAUNCH_KIND, SERVER_REBOOT_KIND, SERVER_START_KIND, SERVER_STOP_KIND, SERVER_TERMINATE_KIND } from "./names.js";

const ENDED: ReadonlySet<ServerState> = new Set(["TERMINATED", "TERMINATING"]);

function succeeded(ctx: JobContext, serverId: string, seen: Observation, result: Record<string, unknown> = {}): JobOutcome {
  return {
    status: "succeeded",
    result: { serverId, state: seen.state, ...result },
    effects: async (tx) => void (await recordObservation(tx, serverId, seen, { jobId: ctx.jobId })),
  };
}

const pending = (checks: number, state: ServerState, goal: string): JobOutcome => ({ status: "pending", checkAfterMs: checkAfter(checks), progressPercent: 50, progressMessage: `server is ${state}; waiting for ${goal}` });

/** start and stop: one driver call, then wait for the state. */
function toggleKind(kind: string, call: "start" | "stop", target: ServerState): JobKind<ServerPayload> {
  return {
    kind,
    payload: serverPayload,
    ...LIFECYCLE_RETRY,
    timeoutMs: 10 * 60_000,
    permission: "servers.control",

    async handle(ctx, { serverId }) {
      const server = await loadServer(ctx, serverId);
      if (ENDED.has(server.state)) throw new PermanentJobError(`server ${serverId} is ${server.state}`, "FAILED_PRECONDITION", { server: serverId, state: server.state });
      const ref = refOf(server);
      ctx.checkpoint();
      const seen = await onCloud(ctx, server, async (driver, t, options) => {
        await driver[call](t, ref, options);
        return driver.getServer(t, ref, options);
      });
      if (!seen) throw new PermanentJobError(`server ${serverId} (${ref.providerId}) is no longer known to its cloud`, "NOT_FOUND", { server: serverId });
      await recordNow(ctx, serverId, seen);
      return pending(0, seen.state, target);
    },

    async check(ctx, { serverId }, checks) {
      const server = await loadServer(ctx, serverId);
      const seen = await observe(ctx, server);
      if (!seen) throw new PermanentJobError(`server ${serverId} (${server.providerId ?? "?"}) is no longer known to its cloud`, "NOT_FOUND", { server: serverId });
      if (seen.state === target) return succeeded(ctx, serverId, seen);
      await recordNow(ctx, serverId, seen);
      if (ENDED.has(seen.state)) throw new PermanentJobError(`server ${serverId} ended (${seen.state}) before it was ${target}`, "ABORTED", { server: serverId, state: seen.state });
      return pending(checks, seen.state, target);
    },
  };
}

export const serverStartKind = toggleKind(SERVER_START_KIND, "start", "RUNNING");
export const serverStopKind = toggleKind(SERVER_STOP_KIND, "stop", "STOPPED");

export const serverTerminateKind: JobKind<ServerPayload> = {
  kind: SERVER_TERMINATE_KIND,
  payload: serverPayload,
  ...LIFECYCLE_RETRY,
  timeoutMs: 15 * 60_000,
  permission: "servers.control",

  async handle(ctx, { serverId }) {
    let server = await loadServer(ctx, serverId);
    if (server.state === "TERMINATED") return succeeded(ctx, serverId, { state: "TERMINATED", addresses: server.addresses }, { alreadyTerminated: true });
    if (!server.providerId) {
      const found = await findByClientToken(ctx, server);
      if (!found) {
        // Nothing of it on the cloud: while its launch may still get there, wait; afterwards it never will.
        const launching = (await activeJobs(ctx.sql, serverId, ctx.jobId)).some((j) => j.kind === SERVER_LAUNCH_KIND);
        if (launching) throw new RetryableJobError(`server ${serverId} is still being launched; terminating once it has a provider id`, "UNAVAILABLE");
        return succeeded(ctx, serverId, GONE, { neverLaunched: true });
      }
      server = (await recordNow(ctx, serverId, found))?.server ?? server;
    }
    const ref = refOf(server);
    ctx.checkpoint();
    const seen = await onCloud(ctx, server, async (driver, t, options) => {
      await driver.terminate(t, ref, options);
      return driver.getServer(t, ref, options);
    });
    if (seen) await recordNow(ctx, serverId, seen);
    return pending(0, seen?.state ?? "TERMINATED", "TERMINATED");
  },

  async check(ctx, { serverId }, checks) {
    const server = await loadServer(ctx, serverId);
    const seen = server.providerId ? await observe(ctx, server) : null;
    if (!seen) return succeeded(ctx, serverId, GONE, { gone: true });
    if (seen.state === "TERMINATED") return succeeded(ctx, serverId, seen);
    await recordNow(ctx, serverId, seen);
    return pending(checks, seen.state, "TERMINATED");
  },
};

/** The provider server a launch with this server's id as client token created, if the provider lists one. */
async function findByClientToken(ctx: JobContext, server: Server): Promise<ServerObservation | null> {
  const listed = await onCloud(ctx, server, (driver, t, options) => driver.listServers(t, server.regionId, options));
  return listed.find((o) => o.clientToken === server.id && o.state !== "TERMINATED") ?? null;
}

/**
 * What tells one boot from the next, when the provider says: a boot id or time, or the process id of a local server.
 * null when it says nothing of the kind.
 */
export function bootMarker(o: Pick<ServerObservation, "details">): string | null {
  const present = BOOT_KEYS.filter((k) => o.details[k] !== undefined).map((k) => `${k}=${o.details[k]}`);
  return present.length > 0 ? present.join(" ") : null;
}

/** Details that change with every boot: a boot id or time, a boot count, the process id and start time of a local server. */
const BOOT_KEYS = ["bootId", "bootTime", "boots", "startedAt", "pid"] as const;

/** Checks after which a RUNNING server whose provider gives no boot marker counts as rebooted. */
const UNMARKED_REBOOT_CHECKS = 3;

export const serverRebootKind: JobKind<ServerPayload> = {
  kind: SERVER_REBOOT_KIND,
  payload: serverPayload,
  ...LIFECYCLE_RETRY,
  timeoutMs: 10 * 60_000,
  permission: "servers.control",

  async handle(ctx, { serverId }) {
    const server = await loadServer(ctx, serverId);
    if (ENDED.has(server.state)) throw new PermanentJobError(`server ${serverId} is ${server.state}`, "FAILED_PRECONDITION", { server: serverId, state: server.state });
    const ref = refOf(server);
    // A retried attempt whose reboot already went out only waits: rebooting twice is not what was asked.
    if (await findJobEvent(ctx.sql, serverId, ctx.jobId, "REBOOT_SENT")) return pending(0, server.state, "the reboot");
    ctx.checkpoint();
    const { before, after } = await onCloud(ctx, server, async (driver, t, options) => {
      const b = await driver.getServer(t, ref, options);
      if (!b) return { before: null, after: null };
      await driver.reboot(t, ref, options);
      return { before: b, after: await driver.getServer(t, ref, options) };
    });
    if (!before) throw new PermanentJobError(`server ${serverId} (${ref.providerId}) is no longer known to its cloud`, "NOT_FOUND", { server: serverId });
    await ctx.sql.transaction(async (tx) => {
      await insertServerEvents(tx, [{ serverId, type: "REBOOT_SENT", fromState: before.state, jobId: ctx.jobId, message: "reboot sent to the cloud", details: { bootMarker: bootMarker(before) } }]);
      if (after) await recordObservation(tx, serverId, after, { jobId: ctx.jobId });
    });
    return pending(0, after?.state ?? before.state, "the reboot");
  },

  async check(ctx, { serverId }, checks) {
    const server = await loadServer(ctx, serverId);
    const seen = await observe(ctx, server);
    if (!seen) throw new PermanentJobError(`server ${serverId} (${server.providerId ?? "?"}) is no longer known to its cloud`, "NOT_FOUND", { server: serverId });
    const sent = await findJobEvent(ctx.sql, serverId, ctx.jobId, "REBOOT_SENT");
    if (!sent) throw new RetryableJobError(`the reboot of server ${serverId} has not been sent yet`);
    if (seen.state === "RUNNING") {
      const before = typeof sent.details?.bootMarker === "string" ? sent.details.bootMarker : null;
      const now = bootMarker(seen);
      if (before !== null && now !== null && now !== before) return succeeded(ctx, serverId, seen, { rebootObserved: "boot marker changed" });
      if (await sawStateSince(ctx.sql, serverId, sent.id, ["REBOOTING", "STOPPING", "STOPPED", "PENDING"])) return succeeded(ctx, serverId, seen, { rebootObserved: "state left RUNNING" });
      if (before === null && now === null && checks >= UNMARKED_REBOOT_CHECKS) return succeeded(ctx, serverId, seen, { rebootObserved: "not observable on this cloud" });
    }
    await recordNow(ctx, serverId, seen);
    if (ENDED.has(seen.state)) throw new PermanentJobError(`server ${serverId} ended (${seen.state}) during its reboot`, "ABORTED", { server: serverId, state: seen.state });
    return pending(checks, seen.state, "the reboot");
  },
};
