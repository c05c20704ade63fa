// The fake EC2's EBS volumes, snapshots and AMIs: kept in memory with EC2's rules and error codes
// (InvalidVolume.NotFound, VolumeInUse, IncorrectState, InvalidParameterValue for a taken device,
// IdempotentParameterMismatch, InvalidSnapshot.NotFound/InUse, InvalidAMIID.NotFound, InvalidAMIName.Duplicate), each
// action's parameters checked by name as EC2 does, and every change seen done one Describe later (creating →
// available, attaching → attached, pending → completed/available), as EC2 is eventually consistent.
import { randomBytes } from "node:crypto";
import { FILTER, TAG_SPEC, Ec2Fault, checkParams, listOf, specifiedTags, tagFiltersPass } from "./ec2-query.js";
import { tagSet } from "./ec2-xml-network.js";
import { OWNER_ID, esc, type FakeInstance } from "./ec2-xml.js";

const hex = (n: number) => randomBytes(Math.ceil(n / 2)).toString("hex").slice(0, n);
const iso = (d: Date) => d.toISOString();

export interface FakeVolume {
  volumeId: string;
  size: number;
  snapshotId: string;
  availabilityZone: string;
  status: "creating" | "available" | "in-use" | "deleting";
  createTime: Date;
  volumeType: string;
  clientToken: string;
  tags: Map<string, string>;
  attachment: { instanceId: string; device: string; status: "attaching" | "attached" | "detaching"; attachTime: Date } | null;
}

export interface FakeSnapshot {
  snapshotId: string;
  volumeId: string;
  volumeSize: number;
  status: "pending" | "completed";
  startTime: Date;
  description: string;
  tags: Map<string, string>;
}

export interface FakeImage {
  imageId: string;
  name: string;
  description: string;
  platformDetails: string;
  state: "pending" | "available";
  instanceId: string | null;
  noReboot: boolean;
  snapshotId: string;
  creationDate: Date;
  tags: Map<string, string>;
}

function volumeItem(v: FakeVolume, indent = "    "): string {
  const a = v.attachment;
  const attachment = a
    ? `<attachmentSet>
${indent}    <item>
${indent}      <volumeId>${v.volumeId}</volumeId>
${indent}      <instanceId>${a.instanceId}</instanceId>
${indent}      <device>${esc(a.device)}</device>
${indent}      <status>${a.status}</status>
${indent}      <attachTime>${iso(a.attachTime)}</attachTime>
${indent}      <deleteOnTermination>false</deleteOnTermination>
${indent}    </item>
${indent}  </attachmentSet>`
    : "<attachmentSet/>";
  return `${indent}<item>
${indent}  <volumeId>${v.volumeId}</volumeId>
${indent}  <size>${v.size}</size>
${indent}  ${v.snapshotId ? `<snapshotId>${v.snapshotId}</snapshotId>` : "<snapshotId/>"}
${indent}  <availabilityZone>${esc(v.availabilityZone)}</availabilityZone>
${indent}  <status>${v.status}</status>
${indent}  <createTime>${iso(v.createTime)}</createTime>
${indent}  ${attachment}
${tagSet(v.tags, `${indent}  `)}
${indent}  <volumeType>${esc(v.volumeType)}</volumeType>
${indent}  <encrypted>false</encrypted>
${indent}  <multiAttachEnabled>false</multiAttachEnabled>
${indent}</item>`;
}

/** CreateVolume's answer: the volume's fields at the top level of the response. */
function volumeFields(v: FakeVolume): string {
  return `  <volumeId>${v.volumeId}</volumeId>
  <size>${v.size}</size>
  ${v.snapshotId ? `<snapshotId>${v.snapshotId}</snapshotId>` : "<snapshotId/>"}
  <availabilityZone>${esc(v.availabilityZone)}</availabilityZone>
  <status>${v.status}</status>
  <createTime>${iso(v.createTime)}</createTime>
  <volumeType>${esc(v.volumeType)}</volumeType>
  <encrypted>false</encrypted>
  <multiAttachEnabled>false</multiAttachEnabled>
${tagSet(v.tags, "  ")}`;
}

function snapshotFields(s: FakeSnapshot, indent: string): string {
  return `${indent}<snapshotId>${s.snapshotId}</snapshotId>
${indent}<volumeId>${s.volumeId}</volumeId>
${indent}<status>${s.status}</status>
${indent}<startTime>${iso(s.startTime)}</startTime>
${indent}<progress>${s.status === "completed" ? "100%" : "0%"}</progress>
${indent}<ownerId>${OWNER_ID}</ownerId>
${indent}<volumeSize>${s.volumeSize}</volumeSize>
${indent}<description>${esc(s.description)}</description>
${indent}<encrypted>false</encrypted>
${tagSet(s.tags, indent)}`;
}

function imageItem(i: FakeImage): string {
  return `    <item>
      <imageId>${i.imageId}</imageId>
      <imageLocation>${OWNER_ID}/${esc(i.name)}</imageLocation>
      <imageState>${i.state}</imageState>
      <imageOwnerId>${OWNER_ID}</imageOwnerId>
      <creationDate>${iso(i.creationDate)}</creationDate>
      <isPublic>false</isPublic>
      <architecture>x86_64</architecture>
      <imageType>machine</imageType>
      <name>${esc(i.name)}</name>
      <description>${esc(i.description)}</description>
      <rootDeviceType>ebs</rootDeviceType>
      <rootDeviceName>/dev/xvda</rootDeviceName>
      <blockDeviceMapping>
        <item>
          <deviceName>/dev/xvda</deviceName>
          <ebs>
            <snapshotId>${i.snapshotId}</snapshotId>
            <volumeSize>8</volumeSize>
            <deleteOnTermination>true</deleteOnTermination>
            <volumeType>standard</volumeType>
            <encrypted>false</encrypted>
          </ebs>
        </item>
      </blockDeviceMapping>
      <virtualizationType>hvm</virtualizationType>
      <hypervisor>xen</hypervisor>
      <enaSupport>true</enaSupport>
      <platformDetails>${esc(i.platformDetails)}</platformDetails>
      <usageOperation>RunInstances</usageOperation>
${tagSet(i.tags, "      ")}
    </item>`;
}

const PAGING = [/^MaxResults$/, /^NextToken$/];

export class FakeStorage {
  readonly volumes = new Map<string, FakeVolume>();
  readonly snapshots = new Map<string, FakeSnapshot>();
  readonly images = new Map<string, FakeImage>();

  constructor(private readonly instances: Map<string, FakeInstance>) {
    const seed = (imageId: string, name: string, platformDetails: string) =>
      this.images.set(imageId, { imageId, name, description: "Test AMI", platformDetails, state: "available", instanceId: null, noReboot: false, snapshotId: "snap-1234567890abcdef0", creationDate: new Date("2016-08-30T20:55:35.000Z"), tags: new Map() });
    seed("ami-1a2b3c4d", "My_AMI", "Linux/UNIX");
    seed("ami-5e6f7a8b", "Windows_Base", "Windows");
  }

  answer(action: string, p: URLSearchParams): string | undefined {
    switch (action) {
      case "CreateVolume":
        return this.createVolume(p);
      case "DescribeVolumes":
        return this.describeVolumes(p);
      case "AttachVolume":
        return this.attach(p);
      case "DetachVolume":
        return this.detach(p);
      case "DeleteVolume":
        return this.deleteVolume(p);
      case "CreateSnapshot":
        return this.createSnapshot(p);
      case "DescribeSnapshots":
        return this.describeSnapshots(p);
      case "DeleteSnapshot":
        return this.deleteSnapshot(p);
      case "CreateImage":
        return this.createImage(p);
      case "DescribeImages":
        return this.describeImages(p);
      case "DeregisterImage":
        return this.deregister(p);
      default:
        return undefined;
    }
  }

  /** The tags of a volume, snapshot or image (for CreateTags / DeleteTags), or undefined for another id. */
  tagsOf(id: string): Map<string, string> | undefined {
    if (id.startsWith("vol-")) return this.volume(id).tags;
    if (id.startsWith("snap-")) return this.snapshot(id).tags;
    if (id.startsWith("ami-")) return this.image(id).tags;
    return undefined;
  }

  private volume(id: string): FakeVolume {
    if (!/^vol-[0-9a-f]{8,17}$/.test(id)) throw new Ec2Fault(400, "InvalidVolumeID.Malformed", `Invalid id: "${id}" (expecting "vol-...")`);
    const v = this.volumes.get(id);
    if (!v) throw new Ec2Fault(400, "InvalidVolume.NotFound", `The volume '${id}' does not exist.`);
    return v;
  }

  private snapshot(id: string): FakeSnapshot {
    if (!/^snap-[0-9a-f]{8,17}$/.test(id)) throw new Ec2Fault(400, "InvalidSnapshotID.Malformed", `Invalid id: "${id}" (expecting "snap-...")`);
    const s = this.snapshots.get(id);
    if (!s) throw new Ec2Fault(400, "InvalidSnapshot.NotFound", `The snapshot '${id}' does not exist.`);
    return s;
  }

  private image(id: string): FakeImage {
    if (!/^ami-[0-9a-f]{8,17}$/.test(id)) throw new Ec2Fault(400, "InvalidAMIID.Malformed", `Invalid id: "${id}" (expecting "ami-...")`);
    const i = this.images.get(id);
    if (!i) throw new Ec2Fault(400, "InvalidAMIID.NotFound", `The image id '[${id}]' does not exist`);
    return i;
  }

  private instance(id: string): FakeInstance {
    const i = this.instances.get(id);
    if (!i) throw new Ec2Fault(400, "InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`);
    return i;
  }

  private createVolume(p: URLSearchParams): string {
    checkParams(p, ["AvailabilityZone"], [/^(AvailabilityZone|Size|SnapshotId|VolumeType|Iops|Throughput|Encrypted|KmsKeyId|ClientToken|MultiAttachEnabled)$/, TAG_SPEC]);
    const token = p.get("ClientToken") ?? "";
    const size = Number(p.get("Size") ?? 0);
    const snapshotId = p.get("SnapshotId") ?? "";
    const existing = token ? [...this.volumes.values()].find((v) => v.clientToken === token) : undefined;
    if (existing) {
      if (existing.size !== size || existing.snapshotId !== snapshotId) throw new Ec2Fault(400, "IdempotentParameterMismatch", "The client token you have provided is associated with a resource that is already deleted or has different parameters.");
      return volumeFields(existing);
    }
    const snap = snapshotId ? this.snapshot(snapshotId) : null;
    if (!p.has("Size") && !snap) throw new Ec2Fault(400, "MissingParameter", "The request must contain the parameter size or snapshotId");
    if (snap && size < snap.volumeSize) throw new Ec2Fault(400, "InvalidParameterValue", `Volume of ${size}GiB is too small; minimum is ${snap.volumeSize}GiB`);
    const v: FakeVolume = { volumeId: `vol-${hex(17)}`, size: size || (snap?.volumeSize ?? 0), snapshotId, availabilityZone: p.get("AvailabilityZone")!, status: "creating", createTime: new Date(), volumeType: p.get("VolumeType") ?? "gp2", clientToken: token, tags: specifiedTags(p, "volume"), attachment: null };
    this.volumes.set(v.volumeId, v);
    return volumeFields(v);
  }

  /** What was set in motion is seen done one Describe later; a terminated instance lets go of its volumes. */
  private settleVolume(v: FakeVolume): void {
    if (v.status === "creating") v.status = "available";
    if (v.status === "deleting") this.volumes.delete(v.volumeId);
    const a = v.attachment;
    if (!a) return;
    if (a.status === "attaching") a.status = "attached";
    else if (a.status === "detaching" || this.instances.get(a.instanceId)?.state === "terminated") {
      v.attachment = null;
      v.status = "available";
    }
  }

  private describeVolumes(p: URLSearchParams): string {
    checkParams(p, [], [/^VolumeId\.\d+$/, FILTER, ...PAGING]);
    const ids = listOf(p, "VolumeId");
    if (ids.length > 0 && p.has("MaxResults")) throw new Ec2Fault(400, "InvalidParameterCombination", "The parameter volumeSet cannot be used with the parameter maxResults");
    const selected = ids.length > 0 ? ids.map((id) => this.volume(id)) : [...this.volumes.values()];
    for (const v of selected) this.settleVolume(v);
    const live = selected.filter((v) => this.volumes.has(v.volumeId) && tagFiltersPass(p, v.tags));
    const { page, next } = paginate(p, live);
    return `  <volumeSet>\n${page.map((v) => volumeItem(v)).join("\n")}\n  </volumeSet>${next}`;
  }

  private attach(p: URLSearchParams): string {
    checkParams(p, ["VolumeId", "InstanceId", "Device"], [/^(VolumeId|InstanceId|Device)$/]);
    const v = this.volume(p.get("VolumeId")!);
    const instance = this.instance(p.get("InstanceId")!);
    const device = p.get("Device")!;
    if (v.status !== "available") throw new Ec2Fault(400, v.status === "in-use" ? "VolumeInUse" : "IncorrectState", `vol '${v.volumeId}' is ${v.status === "in-use" ? "already attached to an instance" : `in state ${v.status}`}`);
    if (!["running", "stopped", "pending"].includes(instance.state)) throw new Ec2Fault(400, "IncorrectInstanceState", `The instance '${instance.instanceId}' is not 'running' or 'stopped'.`);
    if (!`${v.availabilityZone}`.startsWith(instance.availabilityZone.replace(/[a-z]$/, ""))) throw new Ec2Fault(400, "InvalidVolume.ZoneMismatch", "The volume is not in the same availability zone as instance");
    const taken = [...this.volumes.values()].some((o) => o.attachment?.instanceId === instance.instanceId && o.attachment.device === device);
    if (taken) throw new Ec2Fault(400, "InvalidParameterValue", `Invalid value '${device}' for unixDevice. Attachment point ${device} is already in use`);
    v.status = "in-use";
    v.attachment = { instanceId: instance.instanceId, device, status: "attaching", attachTime: new Date() };
    return attachmentFields(v);
  }

  private detach(p: URLSearchParams): string {
    checkParams(p, ["VolumeId"], [/^(VolumeId|InstanceId|Device|Force)$/]);
    const v = this.volume(p.get("VolumeId")!);
    if (!v.attachment) throw new Ec2Fault(400, "IncorrectState", `Volume '${v.volumeId}' is in the 'available' state.`);
    v.attachment.status = "detaching";
    return attachmentFields(v);
  }

  private deleteVolume(p: URLSearchParams): string {
    checkParams(p, ["VolumeId"], [/^VolumeId$/]);
    const v = this.volume(p.get("VolumeId")!);
    if (v.attachment) throw new Ec2Fault(400, "VolumeInUse", `Volume ${v.volumeId} is currently attached to ${v.attachment.instanceId}`);
    v.status = "deleting";
    return "  <return>true</return>";
  }

  private createSnapshot(p: URLSearchParams): string {
    checkParams(p, ["VolumeId"], [/^(VolumeId|Description|OutpostArn|Location)$/, TAG_SPEC]);
    const v = this.volume(p.get("VolumeId")!);
    const s: FakeSnapshot = { snapshotId: `snap-${hex(17)}`, volumeId: v.volumeId, volumeSize: v.size, status: "pending", startTime: new Date(), description: p.get("Description") ?? "", tags: specifiedTags(p, "snapshot") };
    this.snapshots.set(s.snapshotId, s);
    return snapshotFields(s, "  ");
  }

  private describeSnapshots(p: URLSearchParams): string {
    checkParams(p, [], [/^(SnapshotId|Owner|RestorableBy)\.\d+$/, FILTER, ...PAGING]);
    const ids = listOf(p, "SnapshotId");
    const selected = ids.length > 0 ? ids.map((id) => this.snapshot(id)) : [...this.snapshots.values()];
    for (const s of selected) if (s.status === "pending") s.status = "completed";
    const { page, next } = paginate(
      p,
      selected.filter((s) => tagFiltersPass(p, s.tags)),
    );
    return `  <snapshotSet>\n${page.map((s) => `    <item>\n${snapshotFields(s, "      ")}\n    </item>`).join("\n")}\n  </snapshotSet>${next}`;
  }

  private deleteSnapshot(p: URLSearchParams): string {
    checkParams(p, ["SnapshotId"], [/^SnapshotId$/]);
    const s = this.snapshot(p.get("SnapshotId")!);
    const user = [...this.images.values()].find((i) => i.snapshotId === s.snapshotId);
    if (user) throw new Ec2Fault(400, "InvalidSnapshot.InUse", `The snapshot ${s.snapshotId} is currently in use by ${user.imageId}`);
    this.snapshots.delete(s.snapshotId);
    return "  <return>true</return>";
  }

  private createImage(p: URLSearchParams): string {
    checkParams(p, ["InstanceId", "Name"], [/^(InstanceId|Name|Description|NoReboot)$/, /^BlockDeviceMapping\.\d+\..+$/, TAG_SPEC]);
    const instance = this.instance(p.get("InstanceId")!);
    const name = p.get("Name")!;
    if ([...this.images.values()].some((i) => i.name === name)) throw new Ec2Fault(400, "InvalidAMIName.Duplicate", `AMI name ${name} is already in use by AMI`);
    if (instance.state === "terminated") throw new Ec2Fault(400, "IncorrectInstanceState", `The instance '${instance.instanceId}' is not in a state from which it can be imaged.`);
    const snapshot: FakeSnapshot = { snapshotId: `snap-${hex(17)}`, volumeId: "vol-ffffffff", volumeSize: 8, status: "completed", startTime: new Date(), description: `Created by CreateImage(${instance.instanceId})`, tags: new Map() };
    this.snapshots.set(snapshot.snapshotId, snapshot);
    const i: FakeImage = { imageId: `ami-${hex(17)}`, name, description: p.get("Description") ?? "", platformDetails: "Linux/UNIX", state: "pending", instanceId: instance.instanceId, noReboot: p.get("NoReboot") === "true", snapshotId: snapshot.snapshotId, creationDate: new Date(), tags: specifiedTags(p, "image") };
    this.images.set(i.imageId, i);
    return `  <imageId>${i.imageId}</imageId>`;
  }

  private describeImages(p: URLSearchParams): string {
    checkParams(p, [], [/^(ImageId|Owner|ExecutableBy)\.\d+$/, /^(IncludeDeprecated|IncludeDisabled)$/, FILTER, ...PAGING]);
    const ids = listOf(p, "ImageId");
    if (ids.length === 0 && listOf(p, "Owner")[0] !== "self") throw new Ec2Fault(400, "InvalidParameterValue", "this fake lists only Owners=self");
    const selected = ids.length > 0 ? ids.map((id) => this.image(id)) : [...this.images.values()];
    const shown = selected.filter((i) => tagFiltersPass(p, i.tags));
    const { page, next } = paginate(p, shown);
    const out = `  <imagesSet>\n${page.map(imageItem).join("\n")}\n  </imagesSet>${next}`;
    // Seen pending once, available from the next Describe on.
    for (const i of page) i.state = "available";
    return out;
  }

  private deregister(p: URLSearchParams): string {
    checkParams(p, ["ImageId"], [/^(ImageId|DeleteAssociatedSnapshots)$/]);
    const i = this.image(p.get("ImageId")!);
    this.images.delete(i.imageId);
    return "  <return>true</return>";
  }
}

function attachmentFields(v: FakeVolume): string {
  const a = v.attachment!;
  return `  <volumeId>${v.volumeId}</volumeId>
  <instanceId>${a.instanceId}</instanceId>
  <device>${esc(a.device)}</device>
  <status>${a.status}</status>
  <attachTime>${iso(a.attachTime)}</attachTime>`;
}

function paginate<T>(p: URLSearchParams, items: T[]): { page: T[]; next: string } {
  const size = Number(p.get("MaxResults") ?? 1000);
  const start = Number(p.get("NextToken") ?? 0);
  const page = items.slice(start, start + size);
  return { page, next: start + size < items.length ? `\n  <nextToken>${start + size}</nextToken>` : "" };
}
