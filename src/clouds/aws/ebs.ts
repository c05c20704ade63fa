// EBS volumes and snapshots on EC2. CreateVolume keeps a client token itself; CreateSnapshot does not, so the driver
// tags each snapshot with it and a retried create finds the one its lost first attempt made. Attach, detach and
// delete look first, so that what is already so is success and what something still uses is CONFLICT with the reason.
import type { Snapshot, Volume, VolumeType } from "@aws-sdk/client-ec2";
import { DriverError, type DriverCallOptions, type DriverTarget, type ServerRef } from "../driver.js";
import { CLIENT_TOKEN_TAG, checkTags, type SnapshotObservation, type SnapshotService, type SnapshotState, type VolumeObservation, type VolumeService, type VolumeState } from "../resources.js";
import { withEc2, type Ec2Session } from "./client.js";
import { tagValue, tagsFor, userTags } from "./mapping.js";

/** EBS volume types; the first is the default. */
export const EBS_VOLUME_TYPES = ["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"] as const;
const PAGE = 500;
/** Device names EC2 takes for data volumes on Linux instances. */
const DEVICE = /^\/dev\/(sd[b-z]|xvd[b-z][a-z]?)$/;

const VOLUME_STATES: Readonly<Record<string, VolumeState>> = { creating: "CREATING", available: "AVAILABLE", "in-use": "IN_USE", deleting: "DELETING", error: "ERROR" };
const SNAPSHOT_STATES: Readonly<Record<string, SnapshotState>> = { pending: "PENDING", completed: "COMPLETED", error: "ERROR", recoverable: "PENDING", recovering: "PENDING" };

export function volumeOf(v: Volume, regionId: string): VolumeObservation | null {
  if (!v.VolumeId || v.State === "deleted") return null;
  const a = (v.Attachments ?? []).find((x) => x.State === "attached" || x.State === "attaching");
  const details: Record<string, string> = {};
  if (v.Iops) details.iops = String(v.Iops);
  if (v.Encrypted !== undefined) details.encrypted = String(v.Encrypted);
  if (a?.State) details.attachmentState = a.State;
  return {
    providerId: v.VolumeId,
    regionId,
    name: tagValue(v.Tags, "Name") ?? "",
    // An unknown state is newer than this table: CREATING makes callers look again rather than conclude.
    state: VOLUME_STATES[v.State ?? ""] ?? "CREATING",
    tags: userTags(v.Tags),
    createdAt: v.CreateTime ?? null,
    clientToken: tagValue(v.Tags, CLIENT_TOKEN_TAG) ?? null,
    details,
    sizeGiB: v.Size ?? 0,
    volumeType: v.VolumeType ?? "",
    dataCenter: v.AvailabilityZone ?? "",
    snapshotId: v.SnapshotId || null,
    attachment: a?.InstanceId ? { serverProviderId: a.InstanceId, device: a.Device ?? "" } : null,
  };
}

export function snapshotOf(s: Snapshot, regionId: string): SnapshotObservation | null {
  if (!s.SnapshotId) return null;
  const details: Record<string, string> = {};
  if (s.Description) details.description = s.Description;
  if (s.Progress) details.progress = s.Progress;
  return {
    providerId: s.SnapshotId,
    regionId,
    name: tagValue(s.Tags, "Name") ?? "",
    state: SNAPSHOT_STATES[s.State ?? ""] ?? "PENDING",
    tags: userTags(s.Tags),
    createdAt: s.StartTime ?? null,
    clientToken: tagValue(s.Tags, CLIENT_TOKEN_TAG) ?? null,
    details,
    volumeId: s.VolumeId || null,
    sizeGiB: s.VolumeSize ?? 0,
  };
}

function checkName(what: string, name: string): void {
  if (name.length > 255 || /\p{Cc}/u.test(name)) throw new DriverError("INVALID", `an EC2 ${what} name (its Name tag) has at most 255 characters, no control characters`);
}

const notFound = (err: unknown): boolean => err instanceof DriverError && err.code === "NOT_FOUND";

async function describeVolumes(s: Ec2Session, ids?: string[]): Promise<Volume[]> {
  const out: Volume[] = [];
  let token: string | undefined;
  try {
    do {
      const page = await s.send("DescribeVolumes", (c, o, x) => c.send(new x.DescribeVolumesCommand(ids ? { VolumeIds: ids } : { MaxResults: PAGE, ...(token ? { NextToken: token } : {}) }), o));
      out.push(...(page.Volumes ?? []));
      token = ids ? undefined : page.NextToken || undefined;
    } while (token);
  } catch (err) {
    // Asking for an id EC2 does not have is InvalidVolume.NotFound: none.
    if (ids && notFound(err)) return [];
    throw err;
  }
  return out;
}

async function describeSnapshots(s: Ec2Session, query: { ids?: string[]; token?: string }): Promise<Snapshot[]> {
  const out: Snapshot[] = [];
  let next: string | undefined;
  try {
    do {
      const request = query.ids ? { SnapshotIds: query.ids } : { OwnerIds: ["self"], MaxResults: PAGE, ...(query.token ? { Filters: [{ Name: `tag:${CLIENT_TOKEN_TAG}`, Values: [query.token] }] } : {}), ...(next ? { NextToken: next } : {}) };
      const page = await s.send("DescribeSnapshots", (c, o, x) => c.send(new x.DescribeSnapshotsCommand(request), o));
      out.push(...(page.Snapshots ?? []));
      next = query.ids ? undefined : page.NextToken || undefined;
    } while (next);
  } catch (err) {
    if (query.ids && notFound(err)) return [];
    throw err;
  }
  return out;
}

/** The volume, or NOT_FOUND. */
async function volume(s: Ec2Session, ref: ServerRef): Promise<VolumeObservation> {
  const [v] = await describeVolumes(s, [ref.providerId]);
  const seen = v ? volumeOf(v, ref.regionId) : null;
  if (!seen) throw new DriverError("NOT_FOUND", `EC2 has no volume "${ref.providerId.slice(0, 64)}" in ${ref.regionId}`);
  return seen;
}

/** The first availability zone of the session's region (where a volume goes when none is named). */
async function firstZone(s: Ec2Session): Promise<string> {
  const out = await s.send("DescribeAvailabilityZones", (c, o, x) => c.send(new x.DescribeAvailabilityZonesCommand({ Filters: [{ Name: "region-name", Values: [s.region] }] }), o));
  const zone = (out.AvailabilityZones ?? []).map((z) => z.ZoneName ?? "").filter(Boolean).sort()[0];
  if (!zone) throw new DriverError("INVALID", `EC2 region ${s.region} has no availability zone for a volume`);
  return zone;
}

export function awsVolumes(): VolumeService {
  const inRegion = <T>(target: DriverTarget, regionId: string, call: DriverCallOptions, fn: (s: Ec2Session) => Promise<T>) => withEc2(target, regionId, call, fn);
  return {
    create: (target, request, call) =>
      inRegion(target, request.regionId, call, async (s) => {
        checkName("volume", request.name);
        checkTags(request.tags);
        if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
        const type = request.volumeType || EBS_VOLUME_TYPES[0];
        if (!(EBS_VOLUME_TYPES as readonly string[]).includes(type)) throw new DriverError("INVALID", `EBS volume types are ${EBS_VOLUME_TYPES.join(", ")}`);
        if (!Number.isInteger(request.sizeGiB) || request.sizeGiB < 1 || request.sizeGiB > 16_384) throw new DriverError("INVALID", "an EBS volume has 1 to 16384 GiB");
        const zone = request.dataCenter || (await firstZone(s));
        // ClientToken is EC2's own idempotency: the same token answers with the first create's volume.
        const out = await s.send("CreateVolume", (c, o, x) =>
          c.send(
            new x.CreateVolumeCommand({
              AvailabilityZone: zone,
              Size: request.sizeGiB,
              VolumeType: type as VolumeType,
              ...(request.snapshotId ? { SnapshotId: request.snapshotId } : {}),
              ClientToken: request.clientToken,
              TagSpecifications: [{ ResourceType: "volume", Tags: tagsFor(request.name, request.tags, request.clientToken) }],
            }),
            o,
          ),
        );
        const seen = volumeOf({ ...out, Tags: out.Tags ?? tagsFor(request.name, request.tags, request.clientToken) }, request.regionId);
        if (!seen) throw new DriverError("INTERNAL", "AWS CreateVolume answered without a volume", { retryable: true });
        return seen;
      }),

    attach: (target, ref, server, device, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        if (!DEVICE.test(device)) throw new DriverError("INVALID", "a device name is /dev/sd[b-z] or /dev/xvd[b-z]");
        const v = await volume(s, ref);
        if (v.attachment) {
          if (v.attachment.serverProviderId === server.providerId && v.attachment.device === device) return;
          throw new DriverError("CONFLICT", `volume ${v.providerId} is attached to server ${v.attachment.serverProviderId} as ${v.attachment.device}`);
        }
        try {
          await s.send("AttachVolume", (c, o, x) => c.send(new x.AttachVolumeCommand({ VolumeId: ref.providerId, InstanceId: server.providerId, Device: device }), o));
        } catch (err) {
          // The device is taken on that instance, or the volume went in use meanwhile.
          if (err instanceof DriverError && (err.providerCode === "VolumeInUse" || err.providerCode === "InvalidParameterValue")) throw new DriverError("CONFLICT", err.message, { cause: err, providerCode: err.providerCode });
          throw err;
        }
      }),

    detach: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        const v = await volume(s, ref);
        if (!v.attachment || v.details.attachmentState === "detaching") return;
        try {
          await s.send("DetachVolume", (c, o, x) => c.send(new x.DetachVolumeCommand({ VolumeId: ref.providerId }), o));
        } catch (err) {
          if (err instanceof DriverError && err.providerCode === "IncorrectState") return; // detached meanwhile
          throw err;
        }
      }),

    get: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        const [v] = await describeVolumes(s, [ref.providerId]);
        return v ? volumeOf(v, ref.regionId) : null;
      }),

    list: (target, regionId, call) => inRegion(target, regionId, call, async (s) => (await describeVolumes(s)).map((v) => volumeOf(v, regionId)).filter((v): v is VolumeObservation => v !== null)),

    delete: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        const [v] = await describeVolumes(s, [ref.providerId]);
        const seen = v ? volumeOf(v, ref.regionId) : null;
        if (!seen || seen.state === "DELETING") return;
        if (seen.attachment) throw new DriverError("CONFLICT", `volume ${seen.providerId} is attached to server ${seen.attachment.serverProviderId} as ${seen.attachment.device}: detach it first`);
        try {
          await s.send("DeleteVolume", (c, o, x) => c.send(new x.DeleteVolumeCommand({ VolumeId: ref.providerId }), o));
        } catch (err) {
          if (notFound(err)) return;
          if (err instanceof DriverError && err.providerCode === "VolumeInUse") throw new DriverError("CONFLICT", err.message, { cause: err, providerCode: err.providerCode });
          throw err;
        }
      }),
  };
}

export function awsSnapshots(): SnapshotService {
  const inRegion = <T>(target: DriverTarget, regionId: string, call: DriverCallOptions, fn: (s: Ec2Session) => Promise<T>) => withEc2(target, regionId, call, fn);
  const seen = (list: Snapshot[], regionId: string) => list.map((x) => snapshotOf(x, regionId)).filter((x): x is SnapshotObservation => x !== null);
  return {
    create: (target, request, call) =>
      inRegion(target, request.regionId, call, async (s) => {
        checkName("snapshot", request.name);
        checkTags(request.tags);
        if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
        if (Buffer.byteLength(request.description) > 255) throw new DriverError("INVALID", "a snapshot description has at most 255 bytes");
        const [mine] = seen(await describeSnapshots(s, { token: request.clientToken }), request.regionId);
        if (mine) return mine;
        const out = await s.send("CreateSnapshot", (c, o, x) =>
          c.send(new x.CreateSnapshotCommand({ VolumeId: request.volumeId, Description: request.description, TagSpecifications: [{ ResourceType: "snapshot", Tags: tagsFor(request.name, request.tags, request.clientToken) }] }), o),
        );
        const made = snapshotOf({ ...out, Tags: out.Tags ?? tagsFor(request.name, request.tags, request.clientToken) }, request.regionId);
        if (!made) throw new DriverError("INTERNAL", "AWS CreateSnapshot answered without a snapshot", { retryable: true });
        return made;
      }),

    get: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        const [x] = seen(await describeSnapshots(s, { ids: [ref.providerId] }), ref.regionId);
        return x ?? null;
      }),

    list: (target, regionId, call) => inRegion(target, regionId, call, async (s) => seen(await describeSnapshots(s, {}), regionId)),

    delete: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        try {
          await s.send("DeleteSnapshot", (c, o, x) => c.send(new x.DeleteSnapshotCommand({ SnapshotId: ref.providerId }), o));
        } catch (err) {
          if (notFound(err)) return;
          // A snapshot an AMI is made of: deregister the image first.
          if (err instanceof DriverError && err.providerCode === "InvalidSnapshot.InUse") throw new DriverError("CONFLICT", err.message, { cause: err, providerCode: err.providerCode });
          throw err;
        }
      }),
  };
}
