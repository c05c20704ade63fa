// The resource types the generic mechanism manages, each declared once: the driver service that manages it (and so
// the capability a region needs), what it costs per hour and in which states, and which of an observation's fields
// the inventory keeps as details. A new type is one entry here plus its job kinds (src/resources/kinds.ts) and RPCs.
import { SERVICE_CAPABILITY, type AddressObservation, type FirewallObservation, type KeyPairObservation, type ResourceObservation, type ResourceType, type ServiceName } from "../clouds/resources.js";
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

/** Every type the mechanism manages, by type: discovery and accrual walk this list. */
export const RESOURCE_SPECS: Readonly<Partial<Record<ResourceType, ResourceTypeSpec>>> = {
  firewall: FIREWALL as ResourceTypeSpec,
  address: ADDRESS as ResourceTypeSpec,
  key_pair: KEY_PAIR as ResourceTypeSpec,
};

export function specOf(type: ResourceType): ResourceTypeSpec {
  const spec = RESOURCE_SPECS[type];
  if (!spec) throw new Error(`resource type ${type} has no spec`);
  return spec;
}

export const allSpecs = (): ResourceTypeSpec[] => Object.values(RESOURCE_SPECS).filter((s): s is ResourceTypeSpec => s !== undefined);
