// The local cloud's volumes and snapshots. A volume is a directory of files under the account's storage/; attached to
// a server it appears inside the guest as ~/mnt/<device name> (a link into the volume), so whatever runs there reads
// and writes it. A snapshot is a copy of the volume's files taken under the volume's lock; a volume made from a
// snapshot starts as a copy of it. Sizes are recorded, not enforced (a volume is as thin as the disk under it).
import { lstat, mkdir, readlink, rm, symlink } from "node:fs/promises";
import { basename, join } from "node:path";
import { DriverError, type DriverTarget, type ServerRef } from "../driver.js";
import { checkTags, type SnapshotObservation, type SnapshotService, type VolumeObservation, type VolumeService } from "../resources.js";
import { runCall } from "./call.js";
import { checkName, requireCapability, type LocalContext } from "./context.js";
import { newRecordId, type SnapshotRecord, type VolumeRecord } from "./records.js";
import { contentDir, copyInto, createContent, removeContent } from "./storage-content.js";
import { isServerId } from "./store.js";

type Context = (target: DriverTarget) => Promise<LocalContext>;

/** The volume types the local cloud takes (all alike on disk); the first is the default. */
export const LOCAL_VOLUME_TYPES = ["standard", "ssd"] as const;
/** Device names a volume may be attached as: those EC2 suggests for data volumes. */
const DEVICE = /^\/dev\/(sd[b-z]|xvd[b-z]|vd[b-z])$/;
export const MAX_VOLUME_GIB = 16_384;

/** Where a volume attached as `device` appears inside the guest: ~/mnt/<name> (e.g. ~/mnt/sdf for /dev/sdf). */
export function mountPath(ctx: LocalContext, serverId: string, device: string): string {
  return join(ctx.store.rootDir(serverId), "mnt", basename(device));
}

/** The attachment, if its server still exists and is not terminated. */
function liveAttachment(ctx: LocalContext, v: VolumeRecord): VolumeRecord["attachment"] {
  if (!v.attachment) return null;
  const server = ctx.store.read(v.attachment.serverId);
  return server && server.desired !== "TERMINATED" ? v.attachment : null;
}

function observeVolume(ctx: LocalContext, v: VolumeRecord): VolumeObservation {
  const attachment = liveAttachment(ctx, v);
  const creating = v.state === "CREATING";
  const state = creating ? (ctx.store.locked(v.id) ? "CREATING" : "ERROR") : attachment ? "IN_USE" : "AVAILABLE";
  const details: Record<string, string> = {};
  if (attachment) details.mount = `~/mnt/${basename(attachment.device)}`;
  return {
    providerId: v.id,
    regionId: v.regionId,
    name: v.name,
    state,
    tags: { ...v.tags },
    createdAt: new Date(v.createdAt),
    clientToken: v.clientToken,
    details,
    sizeGiB: v.sizeGiB,
    volumeType: v.volumeType,
    dataCenter: v.dataCenter,
    snapshotId: v.snapshotId,
    attachment: attachment ? { serverProviderId: attachment.serverId, device: attachment.device } : null,
  };
}

function observeSnapshot(ctx: LocalContext, s: SnapshotRecord): SnapshotObservation {
  const state = s.state === "PENDING" ? (ctx.store.locked(s.volumeId) ? "PENDING" : "ERROR") : "COMPLETED";
  return { providerId: s.id, regionId: s.regionId, name: s.name, state, tags: { ...s.tags }, createdAt: new Date(s.createdAt), clientToken: s.clientToken, details: s.description ? { description: s.description } : {}, volumeId: s.volumeId, sizeGiB: s.sizeGiB };
}

function missing(what: string, ref: ServerRef): never {
  throw new DriverError("NOT_FOUND", `the local cloud has no ${what} "${ref.providerId.slice(0, 64)}" in region "${ref.regionId.slice(0, 64)}"`);
}

function findVolume(ctx: LocalContext, ref: ServerRef): VolumeRecord {
  const v = ctx.files.read("volume", ref.providerId);
  return v && v.regionId === ref.regionId ? v : missing("volume", ref);
}

export function localVolumes(contextOf: Context): VolumeService {
  return {
    create: (target, request, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        requireCapability(ctx, request.regionId, "block_storage");
        checkName("volume", request.name);
        checkTags(request.tags);
        if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
        if (!Number.isInteger(request.sizeGiB) || request.sizeGiB < 1 || request.sizeGiB > MAX_VOLUME_GIB) throw new DriverError("INVALID", `a volume has 1 to ${MAX_VOLUME_GIB} GiB`);
        const volumeType = request.volumeType || LOCAL_VOLUME_TYPES[0];
        if (!(LOCAL_VOLUME_TYPES as readonly string[]).includes(volumeType)) throw new DriverError("INVALID", `the local cloud's volume types are ${LOCAL_VOLUME_TYPES.join(", ")}`);
        const region = ctx.catalog.regions.find((r) => r.id === request.regionId);
        const dataCenter = request.dataCenter || (region?.dataCenters[0] ?? "");
        if (!region?.dataCenters.includes(dataCenter)) throw new DriverError("INVALID", `region "${request.regionId}" has no data center "${dataCenter.slice(0, 64)}"`);
        const snapshot = request.snapshotId ? ctx.files.read("snapshot", request.snapshotId) : null;
        if (request.snapshotId) {
          if (!snapshot || snapshot.regionId !== request.regionId || snapshot.state !== "COMPLETED") throw new DriverError("INVALID", `region "${request.regionId}" has no completed snapshot "${request.snapshotId.slice(0, 64)}"`);
          if (request.sizeGiB < snapshot.sizeGiB) throw new DriverError("INVALID", `a volume from snapshot ${snapshot.id} has at least its ${snapshot.sizeGiB} GiB`);
        }
        const { id } = ctx.store.bindToken(request.clientToken, newRecordId("volume"), "volume");
        return ctx.store.withLock(id, signal, async () => {
          const existing = ctx.files.read("volume", id);
          if (existing && existing.state === "AVAILABLE") return observeVolume(ctx, existing);
          const v: VolumeRecord = existing ?? { id, regionId: request.regionId, name: request.name, dataCenter, sizeGiB: request.sizeGiB, volumeType, snapshotId: snapshot?.id ?? null, state: "CREATING", attachment: null, tags: { ...request.tags }, createdAt: new Date().toISOString(), clientToken: request.clientToken };
          ctx.files.write("volume", v);
          const from = v.snapshotId;
          if (from) {
            // Under the snapshot's lock too: it cannot be deleted while it is copied.
            await ctx.store.withLock(from, signal, async () => {
              if (ctx.files.read("snapshot", from)?.state !== "COMPLETED") {
                ctx.files.remove("volume", id);
                throw new DriverError("INVALID", `snapshot ${from} was deleted`);
              }
              await copyInto(ctx, contentDir(ctx, from), id);
            });
          } else await createContent(ctx, id);
          v.state = "AVAILABLE";
          ctx.files.write("volume", v);
          return observeVolume(ctx, v);
        });
      }),

    attach: (target, ref, server, device, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        findVolume(ctx, ref);
        if (!DEVICE.test(device)) throw new DriverError("INVALID", "a device name is /dev/sd[b-z], /dev/xvd[b-z] or /dev/vd[b-z]");
        if (!isServerId(server.providerId)) missing("server", server);
        await ctx.store.withLock(ref.providerId, signal, async () => {
          const v = findVolume(ctx, ref);
          if (v.state !== "AVAILABLE") throw new DriverError("CONFLICT", `volume ${v.id} is still being created`);
          const current = liveAttachment(ctx, v);
          if (current) {
            if (current.serverId === server.providerId && current.device === device) return;
            throw new DriverError("CONFLICT", `volume ${v.id} is attached to server ${current.serverId} as ${current.device}`);
          }
          await ctx.store.withLock(server.providerId, signal, async () => {
            const s = ctx.store.read(server.providerId);
            if (!s || s.regionId !== server.regionId || s.desired === "TERMINATED") missing("server", server);
            const clash = ctx.files.all("volume").find((o) => o.id !== v.id && liveAttachment(ctx, o)?.serverId === s.id && o.attachment?.device === device);
            if (clash) throw new DriverError("CONFLICT", `server ${s.id} already has volume ${clash.id} as ${device}`);
            const path = mountPath(ctx, s.id, device);
            await mkdir(join(ctx.store.rootDir(s.id), "mnt"), { recursive: true, mode: 0o700 });
            const there = await lstat(path).catch(() => null);
            if (there && !there.isSymbolicLink()) throw new DriverError("CONFLICT", `server ${s.id} has its own files at ~/mnt/${basename(device)}`);
            // A link left there is a volume this server no longer has (the clash check above found no live one).
            if (there) await rm(path, { force: true });
            await symlink(contentDir(ctx, v.id), path);
            ctx.files.write("volume", { ...v, attachment: { serverId: s.id, device } });
          });
        });
      }),

    detach: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        findVolume(ctx, ref);
        await ctx.store.withLock(ref.providerId, signal, async () => {
          const v = findVolume(ctx, ref);
          if (!v.attachment) return;
          await unmount(ctx, v);
          ctx.files.write("volume", { ...v, attachment: null });
        });
      }),

    get: (target, ref, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        const v = ctx.files.read("volume", ref.providerId);
        return v && v.regionId === ref.regionId ? observeVolume(ctx, v) : null;
      }),

    list: (target, regionId, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        requireCapability(ctx, regionId, "block_storage");
        return ctx.files.all("volume").filter((v) => v.regionId === regionId).map((v) => observeVolume(ctx, v));
      }),

    delete: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        if (!ctx.files.read("volume", ref.providerId)) return;
        await ctx.store.withLock(ref.providerId, signal, async () => {
          const v = ctx.files.read("volume", ref.providerId);
          if (!v || v.regionId !== ref.regionId) return;
          const attached = liveAttachment(ctx, v);
          if (attached) throw new DriverError("CONFLICT", `volume ${v.id} is attached to server ${attached.serverId} as ${attached.device}: detach it first`);
          await unmount(ctx, v);
          await removeContent(ctx, v.id);
          ctx.files.remove("volume", v.id);
        });
      }),
  };
}

/** Removes the volume's link inside its server's guest, if it is still there and still ours. */
async function unmount(ctx: LocalContext, v: VolumeRecord): Promise<void> {
  if (!v.attachment) return;
  let path: string;
  try {
    path = mountPath(ctx, v.attachment.serverId, v.attachment.device);
  } catch {
    return; // its server is long gone
  }
  const link = await readlink(path).catch(() => null);
  if (link === contentDir(ctx, v.id)) await rm(path, { force: true });
}

export function localSnapshots(contextOf: Context): SnapshotService {
  return {
    create: (target, request, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        requireCapability(ctx, request.regionId, "block_storage");
        checkName("snapshot", request.name);
        checkTags(request.tags);
        if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
        const source = ctx.files.read("volume", request.volumeId);
        if (!source || source.regionId !== request.regionId) throw new DriverError("INVALID", `region "${request.regionId}" has no volume "${request.volumeId.slice(0, 64)}"`);
        const { id } = ctx.store.bindToken(request.clientToken, newRecordId("snapshot"), "snapshot");
        // Under the volume's lock: no attach, detach or delete moves it while its files are copied.
        return ctx.store.withLock(source.id, signal, async () => {
          const existing = ctx.files.read("snapshot", id);
          if (existing && existing.state === "COMPLETED") return observeSnapshot(ctx, existing);
          const v = ctx.files.read("volume", source.id);
          if (!v) throw new DriverError("INVALID", `volume ${source.id} was deleted`);
          if (v.state !== "AVAILABLE") throw new DriverError("CONFLICT", `volume ${v.id} is still being created`);
          const s: SnapshotRecord = existing ?? { id, regionId: v.regionId, name: request.name, description: request.description, volumeId: v.id, sizeGiB: v.sizeGiB, state: "PENDING", tags: { ...request.tags }, createdAt: new Date().toISOString(), clientToken: request.clientToken };
          ctx.files.write("snapshot", s);
          await copyInto(ctx, contentDir(ctx, v.id), id);
          s.state = "COMPLETED";
          ctx.files.write("snapshot", s);
          return observeSnapshot(ctx, s);
        });
      }),

    get: (target, ref, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        const s = ctx.files.read("snapshot", ref.providerId);
        return s && s.regionId === ref.regionId ? observeSnapshot(ctx, s) : null;
      }),

    list: (target, regionId, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        requireCapability(ctx, regionId, "block_storage");
        return ctx.files.all("snapshot").filter((s) => s.regionId === regionId).map((s) => observeSnapshot(ctx, s));
      }),

    delete: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        const s0 = ctx.files.read("snapshot", ref.providerId);
        if (!s0 || s0.regionId !== ref.regionId) return;
        // Under its own lock: a volume being created from it holds that lock, so a copy under way finishes first.
        await ctx.store.withLock(s0.id, signal, async () => {
          await removeContent(ctx, s0.id);
          ctx.files.remove("snapshot", s0.id);
        });
      }),
  };
}
