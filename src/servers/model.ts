// The server inventory as services see it: what the dispatcher last observed of each server, and its history.
// No Prisma or proto types here; src/servers/mapper.ts maps to and from the API.
import type { ServerAddresses, ServerState } from "../clouds/driver.js";

export type { ServerAddresses, ServerState } from "../clouds/driver.js";
export { SERVER_STATES } from "../clouds/driver.js";

export type ServerOrigin = "LAUNCHED" | "DISCOVERED";
export type AgentState = "NONE" | "PENDING" | "CONNECTED" | "UNREACHABLE";

export interface Server {
  id: string;
  accountId: string;
  regionId: string;
  dataCenter: string;
  /** null until the provider answered the launch call (or the server was adopted). */
  providerId: string | null;
  name: string;
  productId: string;
  imageId: string;
  budgetCode: string;
  state: ServerState;
  origin: ServerOrigin;
  addresses: ServerAddresses;
  details: Record<string, string>;
  /** Key → value: given at launch, then as the cloud shows them. */
  tags: Record<string, string>;
  hourlyPriceMicros: bigint;
  accruesWhenStopped: boolean;
  agentState: AgentState;
  launchedAt: Date | null;
  terminatedAt: Date | null;
  stateChangedAt: Date;
  createdBy: string;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/** What a server_event records; the type says what happened. */
export type ServerEventType =
  | "LAUNCH_REQUESTED"
  | "START_REQUESTED"
  | "STOP_REQUESTED"
  | "REBOOT_REQUESTED"
  | "TERMINATE_REQUESTED"
  | "PROVIDER_ID_ASSIGNED"
  | "REBOOT_SENT"
  | "STATE_CHANGED"
  | "ADDRESSES_CHANGED"
  | "DETAILS_CHANGED"
  | "TAGS_CHANGED"
  | "TAGS_REQUESTED"
  | "FIREWALLS_REQUESTED"
  | "ADDRESS_ASSOCIATION_SENT"
  | "ADDRESS_ASSOCIATED"
  | "LAUNCH_FAILED"
  | "ADOPTED"
  | "VANISHED";

export interface ServerEvent {
  id: bigint;
  serverId: string;
  type: string;
  fromState: ServerState | null;
  toState: ServerState | null;
  jobId: string | null;
  message: string;
  details: Record<string, unknown> | null;
  createdAt: Date;
}

/** The lifecycle actions a caller can ask for, each one job kind. */
export const SERVER_ACTIONS = ["start", "stop", "reboot", "terminate"] as const;
export type ServerAction = (typeof SERVER_ACTIONS)[number];

export interface CatalogProduct {
  id: string;
  name: string;
  cpus: number;
  memoryMb: number;
  diskGb: number;
  hourlyPriceMicros: bigint;
  accruesWhenStopped: boolean;
}

export interface CatalogImage {
  id: string;
  name: string;
  platform: string;
}

/** An account's region as discovery recorded it. */
export interface AccountRegion {
  id: string;
  name: string;
  dataCenters: string[];
}

/** Hours in a month of cost estimates (365 × 24 / 12). */
export const HOURS_PER_MONTH = 730n;
/** Micro-units per cent. */
const MICROS_PER_CENT = 10_000n;

/**
 * What a launch commits a budget code to: one month of the product's hourly price, in cents, rounded up — so a code
 * cannot launch a server it could not pay for a month.
 */
export function monthlyCostCents(hourlyPriceMicros: bigint): bigint {
  const micros = hourlyPriceMicros * HOURS_PER_MONTH;
  return (micros + MICROS_PER_CENT - 1n) / MICROS_PER_CENT;
}
