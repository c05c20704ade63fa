// server.launch: asks the cloud for the server (client token = server id, so a retry finds the same provider server)
// with the launch options (firewalls and key pair by their provider ids, the user data opened from its seal, the
// tags), records the provider id and first observation at once, then lets the monitor watch until the server is
// RUNNING — and, when the launch named a static address, until that address is seen associated with it.
import type { LaunchRequest, ServerObservation, ServerState } from "../../clouds/driver.js";
import { serviceOf, type AddressObservation } from "../../clouds/resources.js";
import type { JobContext, JobKind, JobOutcome } from "../../jobs/catalog.js";
import { PermanentJobError } from "../../jobs/errors.js";
import { credentialKeyOf } from "../../agent/secrets.js";
import { recordObservation as recordResourceObservation } from "../../resources/inventory.js";
import { DELETED, type Resource } from "../../resources/model.js";
import { findResource } from "../../resources/repository.js";
import { ADDRESS, type ResourceTypeSpec } from "../../resources/types.js";
import { bootstrapFor } from "../bootstrap.js";
import { recordObservation } from "../inventory.js";
import { launchPayload, type LaunchPayload } from "../launch-options.js";
import type { Server } from "../model.js";
import { findJobEvent, findServer, insertServerEvents } from "../repository.js";
import { openUserData } from "../user-data.js";
import { checkAfter, LIFECYCLE_RETRY, loadServer, observe, onCloud, recordNow } from "./common.js";
import { SERVER_LAUNCH_KIND } from "./names.js";

const GAVE_UP: ReadonlySet<ServerState> = new Set(["STOPPING", "STOPPED", "TERMINATING", "TERMINATED"]);

/** How long an association asked for may take to show before it is asked for again. */
const REASK_ASSOCIATION_MS = 60_000;

/** Checks that find no server before the provider lists a fresh launch (eventual consistency) before giving up. */
const UNSEEN_CHECKS = 10;

export const serverLaunchKind: JobKind<LaunchPayload> = {
  kind: SERVER_LAUNCH_KIND,
  payload: launchPayload,
  ...LIFECYCLE_RETRY,
  timeoutMs: 15 * 60_000,
  permission: "servers.launch",

  async handle(ctx, payload) {
    const { serverId } = payload;
    const server = await loadServer(ctx, serverId);
    if (server.state === "TERMINATED") throw new PermanentJobError(`server ${serverId} was terminated before it launched`, "ABORTED", { server: serverId });
    if (!server.providerId) {
      ctx.checkpoint();
      let launched;
      try {
        const options = await launchOptionsOf(ctx, server, payload);
        const bootstrap = await bootstrapFor(server, ctx);
        launched = await onCloud(ctx, server, (driver, target, call) =>
          driver.launch(target, { regionId: server.regionId, dataCenter: server.dataCenter, productId: server.productId, imageId: server.imageId, name: server.name, clientToken: server.id, bootstrap, ...options }, call),
        );
      } catch (err) {
        if (err instanceof PermanentJobError) await recordFailure(ctx, server, err.message);
        throw err;
      }
      await recordNow(ctx, serverId, launched);
    }
    return { status: "pending", checkAfterMs: checkAfter(0), progressPercent: 50, progressMessage: "launched; waiting for the server to run" };
  },

  async check(ctx, payload, checks) {
    const { serverId } = payload;
    const server = await loadServer(ctx, serverId);
    const seen = await observe(ctx, server);
    if (!seen) {
      if (checks < UNSEEN_CHECKS) return { status: "pending", checkAfterMs: checkAfter(checks) };
      throw new PermanentJobError(`server ${serverId} (${server.providerId ?? "?"}) is not known to its cloud`, "NOT_FOUND", { server: serverId });
    }
    if (seen.state === "RUNNING" && payload.addressId) {
      const address = await associated(ctx, server, seen, payload.addressId);
      if (!address) {
        await recordNow(ctx, serverId, seen);
        return { status: "pending", checkAfterMs: checkAfter(checks), progressPercent: 90, progressMessage: "running; waiting for its static address to be associated" };
      }
      // Seen again: the server's addresses now include the static one.
      const now = (await observe(ctx, server)) ?? seen;
      return running(ctx, serverId, now, address);
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

function running(ctx: JobContext, serverId: string, seen: Parameters<typeof recordObservation>[2], address?: { resource: Resource; seen: AddressObservation }): JobOutcome {
  return {
    status: "succeeded",
    result: { serverId, state: "RUNNING", providerId: seen.providerId ?? "", ...(address ? { addressId: address.resource.id, ip: address.seen.ip } : {}) },
    effects: async (tx) => {
      await recordObservation(tx, serverId, seen, { jobId: ctx.jobId });
      if (address) {
        await recordResourceObservation(tx, ADDRESS as ResourceTypeSpec, address.resource.id, address.seen, { jobId: ctx.jobId });
        await insertServerEvents(tx, [{ serverId, type: "ADDRESS_ASSOCIATED", jobId: ctx.jobId, message: `static address ${address.seen.ip} (${address.resource.id}) associated`, details: { addressId: address.resource.id, ip: address.seen.ip } }]);
      }
    },
  };
}

/**
 * What the driver gets besides the catalog: the firewalls' provider ids, the key pair's provider name, the user data
 * opened from its seal, the server's tags. A firewall or key pair gone since the request fails the launch for good;
 * so does user data that cannot be opened (agent.credentialKey differs between the dispatcher and this worker).
 */
async function launchOptionsOf(ctx: JobContext, server: Server, p: LaunchPayload): Promise<Pick<LaunchRequest, "firewallIds" | "keyPairName" | "userData" | "tags">> {
  const out: Pick<LaunchRequest, "firewallIds" | "keyPairName" | "userData" | "tags"> = {};
  if (p.firewallIds && p.firewallIds.length > 0) {
    const ids: string[] = [];
    for (const id of p.firewallIds) ids.push(providerIdOf(await findResource(ctx.sql, id), "firewall", id, server));
    out.firewallIds = ids;
  }
  if (p.keyPairId) {
    const key = await findResource(ctx.sql, p.keyPairId);
    providerIdOf(key, "key_pair", p.keyPairId, server);
    out.keyPairName = (key as Resource).name;
  }
  if (p.userData) {
    const opened = openUserData(credentialKeyOf(ctx.config), server.id, p.userData);
    if (opened instanceof Error) throw new PermanentJobError(opened.message, "FAILED_PRECONDITION", { server: server.id });
    out.userData = opened;
  }
  if (Object.keys(server.tags).length > 0) out.tags = { ...server.tags };
  return out;
}

function providerIdOf(r: Resource | null, type: "firewall" | "key_pair", id: string, server: Server): string {
  const noun = type === "firewall" ? "firewall" : "key pair";
  if (!r || r.type !== type || r.accountId !== server.accountId || r.regionId !== server.regionId) throw new PermanentJobError(`${noun} ${id} does not exist in the server's account and region`, "NOT_FOUND", { server: server.id, resource: id });
  if (r.state === DELETED || !r.providerId) throw new PermanentJobError(`${noun} ${id} is ${r.state}: the server cannot be launched with it`, "FAILED_PRECONDITION", { server: server.id, resource: id });
  return r.providerId;
}

/**
 * The static address once it is seen associated with the running server; until then asks the cloud to associate it
 * (idempotent: associating it again with the same server is success) and answers null. An address released or taken
 * by another server meanwhile fails the launch: the server runs, without the address it was asked with.
 */
async function associated(ctx: JobContext, server: Server, seen: ServerObservation, addressId: string): Promise<{ resource: Resource; seen: AddressObservation } | null> {
  const resource = await findResource(ctx.sql, addressId);
  if (!resource || resource.type !== "address" || resource.state === DELETED || !resource.providerId) {
    throw new PermanentJobError(`static address ${addressId} is gone; server ${server.id} runs without it`, "FAILED_PRECONDITION", { server: server.id, address: addressId });
  }
  const ref = { regionId: resource.regionId, providerId: resource.providerId };
  return onCloud(ctx, server, async (driver, target, call) => {
    const addresses = serviceOf(driver, "addresses");
    const now = await addresses.get(target, ref, call);
    if (!now) throw new PermanentJobError(`static address ${addressId} is no longer known to its cloud; server ${server.id} runs without it`, "FAILED_PRECONDITION", { server: server.id, address: addressId });
    if (now.state === "ASSOCIATED" && now.serverProviderId === seen.providerId) return { resource, seen: now };
    if (now.state === "ASSOCIATED" && now.serverProviderId !== seen.providerId) {
      throw new PermanentJobError(`static address ${addressId} was associated with another server meanwhile; server ${server.id} runs without it`, "CONFLICT", { server: server.id, address: addressId });
    }
    // Asked once per job (a cloud shows an association a little later, and asking again may restart that); again
    // only if it has still not shown a minute on.
    const sent = await findJobEvent(ctx.sql, server.id, ctx.jobId, "ADDRESS_ASSOCIATION_SENT");
    if (sent && ctx.now().getTime() - sent.createdAt.getTime() < REASK_ASSOCIATION_MS) return null;
    await addresses.associate(target, ref, { regionId: server.regionId, providerId: seen.providerId }, call);
    await insertServerEvents(ctx.sql, [{ serverId: server.id, type: "ADDRESS_ASSOCIATION_SENT", jobId: ctx.jobId, message: `asked the cloud to associate static address ${resource.details.ip ?? ""} (${addressId})`, details: { addressId } }]);
    return null;
  });
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
