// Machine images (AMIs) of the account's own on EC2: CreateImage of an instance without rebooting it (as the local
// cloud does: the image is what the disk holds at that moment), DeregisterImage to delete. CreateImage keeps no client
// token, so the driver tags the image with one and a retried create finds the image its first attempt made. The
// public images an account may launch are the driver's listImages; this service lists the account's own.
import type { Image } from "@aws-sdk/client-ec2";
import { DriverError, type DriverCallOptions, type DriverTarget } from "../driver.js";
import { CLIENT_TOKEN_TAG, checkTags, type MachineImageObservation, type MachineImageService, type MachineImageState } from "../resources.js";
import { withEc2, type Ec2Session } from "./client.js";
import { tagValue, tagsFor, userTags } from "./mapping.js";

const PAGE = 500;
/** EC2's rule for an AMI name. */
const IMAGE_NAME = /^[A-Za-z0-9()[\] ./\-'@_]{3,128}$/;
const STATES: Readonly<Record<string, MachineImageState>> = { pending: "PENDING", available: "AVAILABLE", failed: "FAILED", invalid: "FAILED", error: "FAILED", transient: "PENDING", disabled: "FAILED" };

export function imageOf(i: Image, regionId: string): MachineImageObservation | null {
  if (!i.ImageId || i.State === "deregistered") return null;
  const details: Record<string, string> = {};
  if (i.Description) details.description = i.Description;
  if (i.Architecture) details.architecture = i.Architecture;
  if (i.StateReason?.Message) details.stateReason = i.StateReason.Message;
  // What EC2 bills an AMI for: the snapshots behind its EBS block devices, at their volumes' sizes.
  const gib = (i.BlockDeviceMappings ?? []).reduce((n, m) => n + (m.Ebs?.VolumeSize ?? 0), 0);
  if (gib > 0) details.sizeBytes = String(gib * 2 ** 30);
  return {
    providerId: i.ImageId,
    regionId,
    name: i.Name ?? "",
    state: STATES[i.State ?? ""] ?? "PENDING",
    tags: userTags(i.Tags),
    createdAt: i.CreationDate ? new Date(i.CreationDate) : null,
    clientToken: tagValue(i.Tags, CLIENT_TOKEN_TAG) ?? null,
    details,
    platform: (i.PlatformDetails ?? i.Platform ?? "").toLowerCase().includes("windows") ? "windows" : "linux",
    public: i.Public === true,
  };
}

async function describe(s: Ec2Session, query: { ids?: string[]; token?: string }): Promise<Image[]> {
  const out: Image[] = [];
  let next: string | undefined;
  try {
    do {
      const request = query.ids ? { ImageIds: query.ids } : { Owners: ["self"], MaxResults: PAGE, ...(query.token ? { Filters: [{ Name: `tag:${CLIENT_TOKEN_TAG}`, Values: [query.token] }] } : {}), ...(next ? { NextToken: next } : {}) };
      const page = await s.send("DescribeImages", (c, o, x) => c.send(new x.DescribeImagesCommand(request), o));
      out.push(...(page.Images ?? []));
      next = query.ids ? undefined : page.NextToken || undefined;
    } while (next);
  } catch (err) {
    // An id EC2 does not know (InvalidAMIID.NotFound, classified INVALID as at launch): none.
    if (query.ids && err instanceof DriverError && (err.code === "NOT_FOUND" || err.providerCode === "InvalidAMIID.NotFound")) return [];
    throw err;
  }
  return out;
}

export function awsImages(): MachineImageService {
  const inRegion = <T>(target: DriverTarget, regionId: string, call: DriverCallOptions, fn: (s: Ec2Session) => Promise<T>) => withEc2(target, regionId, call, fn);
  const seen = (list: Image[], regionId: string) => list.map((i) => imageOf(i, regionId)).filter((i): i is MachineImageObservation => i !== null);
  return {
    create: (target, request, call) =>
      inRegion(target, request.regionId, call, async (s) => {
        if (!IMAGE_NAME.test(request.name)) throw new DriverError("INVALID", "an AMI name has 3 to 128 letters, digits, spaces and ( ) [ ] . / - ' @ _");
        checkTags(request.tags);
        if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
        if (Buffer.byteLength(request.description) > 255) throw new DriverError("INVALID", "an AMI description has at most 255 bytes");
        const [mine] = seen(await describe(s, { token: request.clientToken }), request.regionId);
        if (mine) return mine;
        const tags = tagsFor("", request.tags, request.clientToken);
        const out = await s.send("CreateImage", (c, o, x) =>
          c.send(new x.CreateImageCommand({ InstanceId: request.server.providerId, Name: request.name, Description: request.description, NoReboot: true, TagSpecifications: [{ ResourceType: "image", Tags: tags }] }), o),
        );
        if (!out.ImageId) throw new DriverError("INTERNAL", "AWS CreateImage answered without an image id", { retryable: true });
        const [made] = seen(await describe(s, { ids: [out.ImageId] }), request.regionId);
        // Not readable yet (EC2 is eventually consistent): what the create said, pending.
        return made ?? { providerId: out.ImageId, regionId: request.regionId, name: request.name, state: "PENDING", tags: { ...request.tags }, createdAt: null, clientToken: request.clientToken, details: {}, platform: "linux", public: false };
      }),

    get: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        const [i] = seen(await describe(s, { ids: [ref.providerId] }), ref.regionId);
        return i ?? null;
      }),

    list: (target, regionId, call) => inRegion(target, regionId, call, async (s) => seen(await describe(s, {}), regionId)),

    delete: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        try {
          await s.send("DeregisterImage", (c, o, x) => c.send(new x.DeregisterImageCommand({ ImageId: ref.providerId }), o));
        } catch (err) {
          if (err instanceof DriverError && (err.code === "NOT_FOUND" || err.providerCode === "InvalidAMIID.NotFound" || err.providerCode === "InvalidAMIID.Unavailable")) return;
          throw err;
        }
      }),
  };
}
