// The resource types the generic mechanism manages, each declared once: the driver service that manages it (and so
// the capability a region needs), what it costs per hour and in which states, and which of an observation's fields
// the inventory keeps as details. A new type is one entry here plus its job kinds (src/resources/kinds.ts) and RPCs.
import { SERVICE_CAPABILITY, type AddressObservation, type BucketObservation, type FirewallObservation, type KeyPairObservation, type MachineImageObservation, type ResourceObservation, type ResourceType, type ServiceName, type SnapshotObservation, type VolumeObservation } from "../clouds/resources.js";
import type { Capability } from "../clouds/calls.js";

export type ResourceServiceName = Exclude<ServiceName, "tags">;

export interface ResourceTypeSpec<O extends ResourceObservation = ResourceObservation> {
  type: ResourceType;
  /** The driver service (src/clouds/resources.ts DriverServices) that creates, reads and deletes it. */
  service: ResourceServiceName;
  /** The word users read in messages ("firewall", "static address", "key pair"). */
  noun: string;
  /**
   * Price per hour (micro-units of the account's currency) while in one of `accruingStates`; 0n: it costs nothing,
   * and its create needs no budget code. Written on the row at creation, so a later price change bills from then on.
   */
  hourlyPriceMicros: bigint;
  accruingStates: readonly string[];
  /** The observation's own fields the inventory keeps, as strings; never a secret. */
  detailsOf(o: O): Record<string, string>;
}

/** The capability a region must have before the type may be used there. */
export function capabilityOf(spec: Pick<ResourceTypeSpec, "service">): Capability {
  return SERVICE_CAPABILITY[spec.service];
}

export const FIREWALL: ResourceTypeSpec<FirewallObservation> = {
  type: "firewall",
  service: "firewalls",
  noun: "firewall",
  hourlyPriceMicros: 0n,
  accruingStates: [],
  detailsOf: (o) => ({ description: o.description, rules: JSON.stringify(o.rules) }),
};

/** A static address costs while the account holds it (EC2 bills every public IPv4 address: $0.005 an hour). */
export const ADDRESS: ResourceTypeSpec<AddressObservation> = {
  type: "address",
  service: "addresses",
  noun: "static address",
  hourlyPriceMicros: 5_000n,
  accruingStates: ["ALLOCATED", "ASSOCIATED"],
  detailsOf: (o) => ({ ip: o.ip, serverProviderId: o.serverProviderId ?? "" }),
};

export const KEY_PAIR: ResourceTypeSpec<KeyPairObservation> = {
  type: "key_pair",
  service: "keyPairs",
  noun: "key pair",
  hourlyPriceMicros: 0n,
  accruingStates: [],
  detailsOf: (o) => ({ fingerprint: o.fingerprint, keyType: o.keyType }),
};

// ---- storage (src/storage/kinds.ts) ----

/** Volumes, snapshots and images are priced per GiB-month by providers; the mechanism's flat per-type price cannot say so yet. */
export const VOLUME: ResourceTypeSpec<VolumeObservation> = {
  type: "volume",
  service: "volumes",
  noun: "volume",
  hourlyPriceMicros: 0n,
  accruingStates: [],
  detailsOf: (o) => ({ sizeGiB: String(o.sizeGiB), volumeType: o.volumeType, dataCenter: o.dataCenter, snapshotId: o.snapshotId ?? "", serverProviderId: o.attachment?.serverProviderId ?? "", device: o.attachment?.device ?? "" }),
};

export const SNAPSHOT: ResourceTypeSpec<SnapshotObservation> = {
  type: "snapshot",
  service: "snapshots",
  noun: "snapshot",
  hourlyPriceMicros: 0n,
  accruingStates: [],
  detailsOf: (o) => ({ volumeId: o.volumeId ?? "", sizeGiB: String(o.sizeGiB) }),
};

export const IMAGE: ResourceTypeSpec<MachineImageObservation> = {
  type: "image",
  service: "images",
  noun: "machine image",
  hourlyPriceMicros: 0n,
  accruingStates: [],
  detailsOf: (o) => ({ platform: o.platform, public: String(o.public) }),
};

/** A bucket's object count and bytes come in the provider's details. */
export const BUCKET: ResourceTypeSpec<BucketObservation> = {
  type: "bucket",
  service: "blobStore",
  noun: "bucket",
  hourlyPriceMicros: 0n,
  accruingStates: [],
  detailsOf: () => ({}),
};

/** Every type the mechanism manages, by type: discovery and accrual walk this list. */
export const RESOURCE_SPECS: Readonly<Partial<Record<ResourceType, ResourceTypeSpec>>> = {
  firewall: FIREWALL as ResourceTypeSpec,
  address: ADDRESS as ResourceTypeSpec,
  key_pair: KEY_PAIR as ResourceTypeSpec,
  volume: VOLUME as ResourceTypeSpec,
  snapshot: SNAPSHOT as ResourceTypeSpec,
  image: IMAGE as ResourceTypeSpec,
  bucket: BUCKET as ResourceTypeSpec,
};

export function specOf(type: ResourceType): ResourceTypeSpec {
  const spec = RESOURCE_SPECS[type];
  if (!spec) throw new Error(`resource type ${type} has no spec`);
  return spec;
}

export const allSpecs = (): ResourceTypeSpec[] => Object.values(RESOURCE_SPECS).filter((s): s is ResourceTypeSpec => s !== undefined);
