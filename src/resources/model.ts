// The generic resource inventory as services see it: every cloud resource beyond servers (firewalls, static addresses,
// key pairs, volumes, …) as last observed, and its history. No Prisma or proto types here.
import type { ResourceType } from "../clouds/resources.js";

export type { ResourceType } from "../clouds/resources.js";

/** The state of a resource that is gone (deleted, released, or no longer listed by its provider). */
export const DELETED = "DELETED";
/** The state of a resource whose create job has not yet reached its cloud. */
export const PENDING = "PENDING";

export type ResourceOrigin = "CREATED" | "DISCOVERED";

export interface Resource {
  id: string;
  accountId: string;
  regionId: string;
  type: ResourceType;
  /** null until the provider answered the create call (or the resource was adopted). */
  providerId: string | null;
  name: string;
  /** PENDING, one of the type's states (FirewallState, AddressState, …), or DELETED. */
  state: string;
  origin: ResourceOrigin;
  /** "" for a resource that costs nothing. */
  budgetCode: string;
  tags: Record<string, string>;
  /** Non-secret provider details (an address's ip, a key's fingerprint, a firewall's rules as JSON). */
  details: Record<string, string>;
  clientToken: string | null;
  hourlyPriceMicros: bigint;
  createdBy: string;
  version: number;
  stateChangedAt: Date;
  deletedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** What a resource_event records; the type says what happened. */
export type ResourceEventType =
  | "CREATE_REQUESTED"
  | "ACTION_REQUESTED"
  | "DELETE_REQUESTED"
  | "TAGS_REQUESTED"
  | "PROVIDER_ID_ASSIGNED"
  | "STATE_CHANGED"
  | "TAGS_CHANGED"
  | "DETAILS_CHANGED"
  | "CREATE_FAILED"
  | "ADOPTED"
  | "VANISHED";

export interface ResourceEvent {
  id: bigint;
  resourceId: string;
  type: string;
  fromState: string | null;
  toState: string | null;
  jobId: string | null;
  message: string;
  details: Record<string, unknown> | null;
  createdAt: Date;
}
