// proto ⇄ domain for volumes, snapshots and machine images, and the field rules their handlers validate with. A
// resource's details name servers, volumes and snapshots by the provider's id; the messages say the dispatcher's id
// where the inventory knows it (Links).
import type { MachineImage, Snapshot, Volume } from "../gen/proto/dispatcher/v1/storage.js";
import { infoOf } from "../network/mapper.js";
import type { Resource } from "../resources/model.js";
import type { LaunchVolume as LaunchVolumeMessage } from "../gen/proto/dispatcher/v1/servers.js";
import type { Violations } from "../rpc/validate.js";
import { ID_RULES } from "../rpc/validate.js";
import type { LaunchVolume, Links, PublicImage } from "./service.js";

export { BUDGET_CODE_RULES, DESCRIPTION_RULES, ID_RULES, IDEMPOTENCY_KEY_RULES, REGION_ID_RULES, RESOURCE_NAME_RULES, resourceEventToProto, tagsOf } from "../network/mapper.js";

/** A device name as clouds take them: /dev/ and a short lowercase name (sdf, xvdg, vdb, nvme1n1). */
export const DEVICE_RULES = { max: 32, pattern: /^\/dev\/[a-z][a-z0-9]{1,15}$/, patternHint: "a device name such as /dev/sdf" };
export const VOLUME_TYPE_RULES = { max: 32, pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]*$/, patternHint: "letters, digits, _ . - (e.g. gp3, standard)" };
export const DATA_CENTER_RULES = { max: 64 };
export const MAX_VOLUME_GIB = 16_384;

const link = (map: Map<string, string>, r: Resource, providerId: string | undefined): string => (providerId ? (map.get(`${r.accountId}/${providerId}`) ?? "") : "");
const int = (s: string | undefined): number => (s && /^\d{1,9}$/.test(s) ? Number(s) : 0);

export function volumeToProto(r: Resource, links: Links): Volume {
  const serverProviderId = r.details.serverProviderId ?? "";
  return {
    info: infoOf(r),
    sizeGib: int(r.details.sizeGiB),
    volumeType: r.details.volumeType ?? "",
    dataCenter: r.details.dataCenter ?? "",
    snapshotId: link(links.resources, r, r.details.snapshotId),
    attachment: serverProviderId ? { serverId: link(links.servers, r, serverProviderId), serverProviderId, device: r.details.device ?? "" } : undefined,
    hourlyPriceMicros: r.hourlyPriceMicros.toString(),
  };
}

export const snapshotToProto = (r: Resource, links: Links): Snapshot => ({
  info: infoOf(r),
  volumeId: link(links.resources, r, r.details.volumeId),
  sizeGib: int(r.details.sizeGiB),
  description: r.details.description ?? "",
  hourlyPriceMicros: r.hourlyPriceMicros.toString(),
});

export const imageToProto = (r: Resource, links: Links): MachineImage => ({
  info: infoOf(r),
  platform: r.details.platform ?? "",
  public: false,
  sourceServerId: link(links.servers, r, r.details.sourceServerId),
  description: r.details.description ?? "",
  sizeBytes: /^\d{1,18}$/.test(r.details.sizeBytes ?? "") ? (r.details.sizeBytes as string) : "0",
  hourlyPriceMicros: r.hourlyPriceMicros.toString(),
});

export const publicImageToProto = (i: PublicImage): MachineImage => ({
  info: { id: i.id, accountId: i.accountId, regionId: i.regionId, providerId: i.id, name: i.name, state: "AVAILABLE", origin: "PUBLIC", budgetCode: "", tags: {}, createTime: undefined, updateTime: undefined },
  platform: i.platform,
  public: true,
  sourceServerId: "",
  description: "",
  sizeBytes: "0",
  hourlyPriceMicros: "0",
});

export const MAX_LAUNCH_VOLUMES = 16;

/** The volumes of a launch request, each checked (violations name volumes[i].field); devices distinct. */
export function launchVolumesFromProto(v: Violations, field: string, list: readonly LaunchVolumeMessage[] | undefined): LaunchVolume[] {
  const items = list ?? [];
  if (items.length > MAX_LAUNCH_VOLUMES) v.add(field, `at most ${MAX_LAUNCH_VOLUMES} volumes`);
  const devices = new Set<string>();
  return items.slice(0, MAX_LAUNCH_VOLUMES).map((m, i) => {
    const at = `${field}[${i}]`;
    const device = v.string(`${at}.device`, m.device, DEVICE_RULES);
    if (device && devices.has(device)) v.add(`${at}.device`, `${device} is named twice`);
    devices.add(device);
    const volumeId = v.optionalString(`${at}.volume_id`, m.volumeId, ID_RULES);
    if (volumeId && (m.sizeGib || m.volumeType || m.snapshotId)) v.add(`${at}.volume_id`, "name an existing volume, or the size (type, snapshot) of a new one, not both");
    if (!volumeId && (!Number.isInteger(m.sizeGib) || m.sizeGib < 1 || m.sizeGib > MAX_VOLUME_GIB)) v.add(`${at}.size_gib`, `must be 1 to ${MAX_VOLUME_GIB} for a new volume`);
    return { device, volumeId, sizeGiB: m.sizeGib, volumeType: v.optionalString(`${at}.volume_type`, m.volumeType, VOLUME_TYPE_RULES), snapshotId: v.optionalString(`${at}.snapshot_id`, m.snapshotId, ID_RULES) };
  });
}
