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
  /**
   * Price per GiB-month (micro-units, a month being 730 hours) while in one of `accruingStates`, for types priced by
   * size (storage); with `sizeBytesOf` it makes a row's hourly price from its details (hourlyPriceOf). Absent or 0n:
   * the flat hourly price alone.
   */
  gibMonthPriceMicros?: bigint;
  /** The size the price applies to, in bytes, read from a row's details (as created or last observed). */
  sizeBytesOf?(details: Readonly<Record<string, string>>): bigint;
  accruingStates: readonly string[];
  /** The observation's own fields the inventory keeps, as strings; never a secret. */
  detailsOf(o: O): Record<string, string>;
}

/** The capability a region must have before the type may be used there. */
export function capabilityOf(spec: Pick<ResourceTypeSpec, "service">): Capability {
  return SERVICE_CAPABILITY[spec.service];
}

const GIB = 1n << 30n;
const HOURS_PER_MONTH = 730n;

/** Whether the type costs money (flat or by size): its create needs a budget code, its hours accrue. */
export const isPriced = (spec: Pick<ResourceTypeSpec, "hourlyPriceMicros" | "gibMonthPriceMicros">): boolean => spec.hourlyPriceMicros > 0n || (spec.gibMonthPriceMicros ?? 0n) > 0n;

/**
 * A resource's price per hour from its type and its details: the flat price plus, for types priced by size, its
 * GiB-months as hours (rounded up to a whole micro-unit, so anything stored costs at least 1 a hour).
 */
export function hourlyPriceOf(spec: Pick<ResourceTypeSpec, "hourlyPriceMicros" | "gibMonthPriceMicros" | "sizeBytesOf">, details: Readonly<Record<string, string>>): bigint {
  const perGiBMonth = spec.gibMonthPriceMicros ?? 0n;
  if (perGiBMonth <= 0n || !spec.sizeBytesOf) return spec.hourlyPriceMicros;
  const bytes = spec.sizeBytesOf(details);
  if (bytes <= 0n) return spec.hourlyPriceMicros;
  const divisor = GIB * HOURS_PER_MONTH;
  return spec.hourlyPriceMicros + (bytes * perGiBMonth + divisor - 1n) / divisor;
}

/** A non-negative integer detail ("12"), or 0n when absent or not a number. */
function countOf(details: Readonly<Record<string, string>>, key: string): bigint {
  const v = details[key];
  return v !== undefined && /^\d{1,18}$/.test(v) ? BigInt(v) : 0n;
}

const gibOf = (key: string) => (details: Readonly<Record<string, string>>): bigint => countOf(details, key) * GIB;

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

/**
 * Storage is priced per GiB-month, at EBS's list prices in micro-units (gp3 $0.08, snapshots and the snapshots behind
 * an AMI $0.05) and S3 Standard's ($0.023) for buckets; a volume from its size, a snapshot from its volume's size, an
 * image from the size its provider reports, a bucket from the bytes its objects hold.
 */
export const VOLUME: ResourceTypeSpec<VolumeObservation> = {
  type: "volume",
  service: "volumes",
  noun: "volume",
  hourlyPriceMicros: 0n,
  gibMonthPriceMicros: 80_000n,
  sizeBytesOf: gibOf("sizeGiB"),
  accruingStates: ["CREATING", "AVAILABLE", "IN_USE", "DELETING", "ERROR"],
  detailsOf: (o) => ({ sizeGiB: String(o.sizeGiB), volumeType: o.volumeType, dataCenter: o.dataCenter, snapshotId: o.snapshotId ?? "", serverProviderId: o.attachment?.serverProviderId ?? "", device: o.attachment?.device ?? "" }),
};

export const SNAPSHOT: ResourceTypeSpec<SnapshotObservation> = {
  type: "snapshot",
  service: "snapshots",
  noun: "snapshot",
  hourlyPriceMicros: 0n,
  gibMonthPriceMicros: 50_000n,
  sizeBytesOf: gibOf("sizeGiB"),
  accruingStates: ["COMPLETED"],
  detailsOf: (o) => ({ volumeId: o.volumeId ?? "", sizeGiB: String(o.sizeGiB) }),
};

export const IMAGE: ResourceTypeSpec<MachineImageObservation> = {
  type: "image",
  service: "images",
  noun: "machine image",
  hourlyPriceMicros: 0n,
  gibMonthPriceMicros: 50_000n,
  sizeBytesOf: (d) => countOf(d, "sizeBytes"),
  accruingStates: ["AVAILABLE"],
  detailsOf: (o) => ({ platform: o.platform, public: String(o.public) }),
};

/** A bucket's object count and bytes come in the provider's details (`objects`, `bytes`); it costs by its bytes. */
export const BUCKET: ResourceTypeSpec<BucketObservation> = {
  type: "bucket",
  service: "blobStore",
  noun: "bucket",
  hourlyPriceMicros: 0n,
  gibMonthPriceMicros: 23_000n,
  sizeBytesOf: (d) => countOf(d, "bytes"),
  accruingStates: ["AVAILABLE"],
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
