// The local cloud's static addresses: a loopback address of the static range (127.192.0.0/10), claimed for the
// account until released. Associated with a server, the server answers on it too — through the same forwarder and
// firewall rules as on its own address — and it shows among the server's public addresses. As on EC2, a server has
// one static address: associating another takes the first one's place.
import { DriverError, type DriverTarget, type ServerRef } from "../driver.js";
import { checkTags, type AddressObservation, type AddressService } from "../resources.js";
import { runCall } from "./call.js";
import { requireCapability, withNetworkLock, type LocalContext } from "./context.js";
import { claimAddress, releaseClaim } from "./network/loopback.js";
import { newRecordId, type AddressRecord } from "./records.js";

type Context = (target: DriverTarget) => Promise<LocalContext>;

export function observeAddress(a: AddressRecord): AddressObservation {
  return {
    providerId: a.id,
    regionId: a.regionId,
    name: a.name,
    state: a.serverId ? "ASSOCIATED" : "ALLOCATED",
    tags: { ...a.tags },
    createdAt: new Date(a.createdAt),
    clientToken: a.clientToken,
    details: a.serverId ? { serverId: a.serverId } : {},
    ip: a.ip,
    serverProviderId: a.serverId,
  };
}

function find(ctx: LocalContext, ref: ServerRef): AddressRecord {
  const a = ctx.files.read("address", ref.providerId);
  if (!a || a.regionId !== ref.regionId) throw new DriverError("NOT_FOUND", `the local cloud has no address "${ref.providerId.slice(0, 64)}" in region "${ref.regionId.slice(0, 64)}"`);
  return a;
}

/** Drops every association with the server (it is terminated). Call under the network lock. */
export function dropAssociations(ctx: LocalContext, serverId: string): boolean {
  let dropped = false;
  for (const a of ctx.files.all("address")) {
    if (a.serverId !== serverId) continue;
    ctx.files.write("address", { ...a, serverId: null });
    dropped = true;
  }
  return dropped;
}

export function localAddresses(contextOf: Context): AddressService {
  return {
    allocate: (target, request, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        requireCapability(ctx, request.regionId, "static_addresses");
        checkTags(request.tags);
        if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
        const { id } = ctx.store.bindToken(request.clientToken, newRecordId("address"), "address");
        return withNetworkLock(ctx, signal, async () => {
          const existing = ctx.files.read("address", id);
          if (existing) return observeAddress(existing);
          const ip = claimAddress("static", ctx.files.path("address", id));
          const record: AddressRecord = { id, regionId: request.regionId, name: request.name, ip, serverId: null, tags: { ...request.tags }, createdAt: new Date().toISOString(), clientToken: request.clientToken };
          ctx.files.write("address", record);
          return observeAddress(record);
        });
      }),

    get: (target, ref, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        const a = ctx.files.read("address", ref.providerId);
        return a && a.regionId === ref.regionId ? observeAddress(a) : null;
      }),

    list: (target, regionId, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        requireCapability(ctx, regionId, "static_addresses");
        return ctx.files.all("address").filter((a) => a.regionId === regionId).map(observeAddress);
      }),

    associate: (target, ref, server, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        requireCapability(ctx, ref.regionId, "static_addresses");
        const changed = await withNetworkLock(ctx, signal, async () => {
          const a = find(ctx, ref);
          if (a.serverId === server.providerId) return false;
          if (a.serverId) throw new DriverError("CONFLICT", `address ${a.id} (${a.ip}) is associated with server ${a.serverId}: disassociate it first`);
          const r = ctx.store.read(server.providerId);
          if (!r || r.regionId !== server.regionId) throw new DriverError("NOT_FOUND", `the local cloud has no server "${server.providerId.slice(0, 64)}" in region "${server.regionId.slice(0, 64)}"`);
          if (r.desired === "TERMINATED") throw new DriverError("CONFLICT", `server ${r.id} is terminated`);
          if (!r.address) throw new DriverError("CONFLICT", `server ${r.id} was launched without an address of its own, so it cannot answer on another`);
          dropAssociations(ctx, r.id);
          ctx.files.write("address", { ...a, serverId: r.id });
          return true;
        });
        if (changed) await ctx.net.changed(signal);
      }),

    disassociate: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        const changed = await withNetworkLock(ctx, signal, async () => {
          const a = find(ctx, ref);
          if (!a.serverId) return false;
          ctx.files.write("address", { ...a, serverId: null });
          return true;
        });
        if (changed) await ctx.net.changed(signal);
      }),

    delete: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        await withNetworkLock(ctx, signal, async () => {
          const a = ctx.files.read("address", ref.providerId);
          if (!a || a.regionId !== ref.regionId) return;
          if (a.serverId) throw new DriverError("CONFLICT", `address ${a.id} (${a.ip}) is associated with server ${a.serverId}: disassociate it before releasing it`);
          ctx.files.remove("address", a.id);
          releaseClaim(a.ip, ctx.files.path("address", a.id));
        });
      }),
  };
}
