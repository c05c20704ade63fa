// The job kinds of volumes, snapshots, machine images and buckets, each one call of the type's driver service made
// through the generic kind factory (src/resources/kinds.ts) and done only when the cloud is seen so: a volume
// available (or attached to the server, on the device asked for), a snapshot completed, an image available, a bucket
// there — or gone, for a delete. A resource the cloud reports failed (a volume in ERROR, a snapshot in ERROR, an image
// FAILED) fails its job with the reason.
import { z } from "zod";
import { serviceOf, type MachineImageObservation, type SnapshotObservation, type VolumeObservation } from "../clouds/resources.js";
import type { JobContext, JobKind } from "../jobs/catalog.js";
import { PermanentJobError, RetryableJobError } from "../jobs/errors.js";
import { defineDeleteKind, defineResourceKind, loadResource, refOf, resourcePayload } from "../resources/kinds.js";
import type { Resource } from "../resources/model.js";
import { BUCKET, IMAGE, SNAPSHOT, VOLUME } from "../resources/types.js";
import { findServer } from "../servers/repository.js";

export const VOLUME_CREATE_KIND = "volume.create";
export const VOLUME_ATTACH_KIND = "volume.attach";
export const VOLUME_DETACH_KIND = "volume.detach";
export const VOLUME_DELETE_KIND = "volume.delete";
export const SNAPSHOT_CREATE_KIND = "snapshot.create";
export const SNAPSHOT_DELETE_KIND = "snapshot.delete";
export const IMAGE_CREATE_KIND = "image.create";
export const IMAGE_DELETE_KIND = "image.delete";
export const BUCKET_CREATE_KIND = "bucket.create";
export const BUCKET_DELETE_KIND = "bucket.delete";

const tags = (t: Record<string, string>) => ({ ...t });

/** Fails the job when the cloud reports the resource failed; the state names why. */
function refuseFailed(r: Resource, seen: { state: string } | null, failed: string): void {
  if (seen?.state === failed) throw new PermanentJobError(`the cloud reports ${r.type} ${r.id} as ${failed}`, "FAILED_PRECONDITION", { resource: r.id, state: failed });
}

/** The provider id of another resource of the same account and region (a snapshot's volume, a volume's snapshot). */
async function providerIdOf(ctx: JobContext, r: Resource, id: string, type: Resource["type"]): Promise<string> {
  const other = await loadResource(ctx, id);
  if (other.type !== type || other.accountId !== r.accountId || other.regionId !== r.regionId) throw new PermanentJobError(`${type} ${id} does not exist in account ${r.accountId}, region ${r.regionId}`, "NOT_FOUND", { [type]: id });
  if (!other.providerId) throw new PermanentJobError(`${type} ${id} has not reached its cloud`, "FAILED_PRECONDITION", { [type]: id });
  return other.providerId;
}

/**
 * A server of the resource's account and region that the cloud knows; read when the job runs. With `waitForLaunch`
 * (a volume named at launch), a server still PENDING is retried with backoff rather than refused.
 */
async function serverOf(ctx: JobContext, r: Resource, serverId: string, waitForLaunch = false): Promise<{ regionId: string; providerId: string }> {
  const server = await findServer(ctx.sql, serverId);
  if (!server || server.accountId !== r.accountId) throw new PermanentJobError(`server ${serverId} does not exist in account ${r.accountId}`, "NOT_FOUND", { server: serverId });
  if (server.regionId !== r.regionId) throw new PermanentJobError(`server ${serverId} is in ${server.regionId}, the ${r.type} in ${r.regionId}`, "FAILED_PRECONDITION", { server: serverId });
  if (waitForLaunch && (server.state === "PENDING" || !server.providerId)) throw new RetryableJobError(`server ${serverId} is ${server.state}: the volume attaches once it runs`);
  if (!server.providerId || server.state === "TERMINATED" || server.state === "TERMINATING") throw new PermanentJobError(`server ${serverId} is ${server.state}`, "FAILED_PRECONDITION", { server: serverId, state: server.state });
  return { regionId: server.regionId, providerId: server.providerId };
}

// ---- volumes ----

export const volumeCreatePayload = resourcePayload.extend({
  sizeGiB: z.number().int().min(1).max(16_384),
  volumeType: z.string().max(32).default(""),
  dataCenter: z.string().max(64).default(""),
  /** The dispatcher's id of the snapshot it starts from, or null for an empty volume. */
  snapshotId: z.string().max(64).nullable().default(null),
});

export const volumeCreateKind = defineResourceKind({
  kind: VOLUME_CREATE_KIND,
  spec: VOLUME,
  permission: "volumes.write",
  payload: volumeCreatePayload,
  async act({ driver, target, call, ctx }, r, p) {
    const snapshotId = p.snapshotId ? await providerIdOf(ctx, r, p.snapshotId, "snapshot") : null;
    return serviceOf(driver, "volumes").create(target, { regionId: r.regionId, name: r.name, clientToken: r.id, tags: tags(r.tags), dataCenter: p.dataCenter, sizeGiB: p.sizeGiB, volumeType: p.volumeType, snapshotId }, call);
  },
  done(seen: VolumeObservation | null, r) {
    refuseFailed(r, seen, "ERROR");
    return seen?.state === "AVAILABLE" || seen?.state === "IN_USE";
  },
});

export const volumeAttachPayload = resourcePayload.extend({
  serverId: z.string().min(1).max(64),
  device: z.string().min(1).max(32),
  /** Named at launch: the server and the volume may both still be on their way; the attempt is retried until they are there. */
  atLaunch: z.boolean().default(false),
});

export const volumeAttachKind = defineResourceKind({
  kind: VOLUME_ATTACH_KIND,
  spec: VOLUME,
  permission: "volumes.write",
  payload: volumeAttachPayload,
  async act({ driver, target, call, ctx }, r, p) {
    if (p.atLaunch && (!r.providerId || r.state === "PENDING" || r.state === "CREATING")) throw new RetryableJobError(`volume ${r.id} is ${r.state}: it attaches once available`);
    await serviceOf(driver, "volumes").attach(target, refOf(r), await serverOf(ctx, r, p.serverId, p.atLaunch), p.device, call);
  },
  // Done when the cloud shows it attached to that server on that device.
  async done(seen: VolumeObservation | null, _r, p, ctx) {
    if (!seen?.attachment || seen.attachment.device !== p.device) return false;
    const server = await findServer(ctx.sql, p.serverId);
    return !!server?.providerId && seen.attachment.serverProviderId === server.providerId;
  },
});

export const volumeDetachKind = defineResourceKind({
  kind: VOLUME_DETACH_KIND,
  spec: VOLUME,
  permission: "volumes.write",
  payload: resourcePayload,
  act: ({ driver, target, call }, r) => serviceOf(driver, "volumes").detach(target, refOf(r), call),
  done: (seen: VolumeObservation | null) => !!seen && seen.attachment === null,
});

export const volumeDeleteKind = defineDeleteKind({ kind: VOLUME_DELETE_KIND, spec: VOLUME, permission: "volumes.write", createKind: VOLUME_CREATE_KIND });

// ---- snapshots ----

export const snapshotCreatePayload = resourcePayload.extend({ volumeId: z.string().min(1).max(64), description: z.string().max(255).default("") });

export const snapshotCreateKind = defineResourceKind({
  kind: SNAPSHOT_CREATE_KIND,
  spec: SNAPSHOT,
  permission: "snapshots.write",
  payload: snapshotCreatePayload,
  async act({ driver, target, call, ctx }, r, p) {
    const volumeId = await providerIdOf(ctx, r, p.volumeId, "volume");
    return serviceOf(driver, "snapshots").create(target, { regionId: r.regionId, name: r.name, clientToken: r.id, tags: tags(r.tags), volumeId, description: p.description }, call);
  },
  // Done when it is seen complete, not when the call returned.
  done(seen: SnapshotObservation | null, r) {
    refuseFailed(r, seen, "ERROR");
    return seen?.state === "COMPLETED";
  },
  timeoutMs: 60 * 60_000,
});

export const snapshotDeleteKind = defineDeleteKind({ kind: SNAPSHOT_DELETE_KIND, spec: SNAPSHOT, permission: "snapshots.write", createKind: SNAPSHOT_CREATE_KIND });

// ---- machine images ----

export const imageCreatePayload = resourcePayload.extend({ serverId: z.string().min(1).max(64), description: z.string().max(255).default("") });

export const imageCreateKind = defineResourceKind({
  kind: IMAGE_CREATE_KIND,
  spec: IMAGE,
  permission: "images.write",
  payload: imageCreatePayload,
  async act({ driver, target, call, ctx }, r, p) {
    return serviceOf(driver, "images").create(target, { regionId: r.regionId, name: r.name, clientToken: r.id, tags: tags(r.tags), server: await serverOf(ctx, r, p.serverId), description: p.description }, call);
  },
  done(seen: MachineImageObservation | null, r) {
    refuseFailed(r, seen, "FAILED");
    return seen?.state === "AVAILABLE";
  },
  timeoutMs: 60 * 60_000,
});

export const imageDeleteKind = defineDeleteKind({ kind: IMAGE_DELETE_KIND, spec: IMAGE, permission: "images.write", createKind: IMAGE_CREATE_KIND });

// ---- buckets ----

export const bucketCreateKind = defineResourceKind({
  kind: BUCKET_CREATE_KIND,
  spec: BUCKET,
  permission: "files.write",
  payload: resourcePayload,
  act: ({ driver, target, call }, r) => serviceOf(driver, "blobStore").create(target, { regionId: r.regionId, name: r.name, clientToken: r.id, tags: tags(r.tags) }, call),
  done: (seen) => seen !== null,
});

export const bucketDeleteKind = defineDeleteKind({ kind: BUCKET_DELETE_KIND, spec: BUCKET, permission: "files.write", createKind: BUCKET_CREATE_KIND });

export const STORAGE_KINDS: JobKind<never>[] = [
  volumeCreateKind,
  volumeAttachKind,
  volumeDetachKind,
  volumeDeleteKind,
  snapshotCreateKind,
  snapshotDeleteKind,
  imageCreateKind,
  imageDeleteKind,
  bucketCreateKind,
  bucketDeleteKind,
] as unknown as JobKind<never>[];
