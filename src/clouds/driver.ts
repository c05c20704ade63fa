// The driver model: what the dispatcher asks of every cloud provider, in the provider's own terms mapped to ours.
// One driver per provider, registered by name (src/clouds/registry.ts); credentials arrive per call, never kept.
// Servers are every driver's core; the other resources are optional services (src/clouds/resources.ts).
import type { Capability, DriverCallOptions, DriverTarget, ServerRef } from "./calls.js";
import type { DriverServices, Tags } from "./resources.js";

export { CAPABILITIES, DriverError, callSignal, type Capability, type DriverCallOptions, type DriverErrorCode, type DriverTarget, type ServerRef } from "./calls.js";

/** Server states as the dispatcher speaks of them; a driver maps the provider's states onto these. */
export const SERVER_STATES = ["PENDING", "RUNNING", "STOPPING", "STOPPED", "REBOOTING", "TERMINATING", "TERMINATED"] as const;
export type ServerState = (typeof SERVER_STATES)[number];

export interface DriverRegion {
  id: string;
  name: string;
  dataCenters: string[];
}

/** A size a server can be launched with. Prices are in micro-units of the account's currency (1e-6) per hour. */
export interface DriverProduct {
  id: string;
  name: string;
  cpus: number;
  memoryMb: number;
  diskGb: number;
  hourlyPriceMicros: number;
  /** Whether a stopped server still costs its hourly price (e.g. dedicated hosts). */
  accruesWhenStopped: boolean;
}

export interface DriverImage {
  id: string;
  name: string;
  platform: string;
}

export interface ServerAddresses {
  private: string[];
  public: string[];
}

/** One server as the provider reports it. */
export interface ServerObservation {
  providerId: string;
  name: string;
  regionId: string;
  dataCenter: string;
  productId: string;
  imageId: string;
  state: ServerState;
  addresses: ServerAddresses;
  launchedAt: Date | null;
  /** The client token it was launched with, when the provider keeps it: ties a launch to its server. */
  clientToken: string | null;
  /** Non-secret provider details worth showing (ports, process ids). */
  details: Record<string, string>;
  /** The server's tags as the provider holds them (its name apart). Absent where a driver keeps none. */
  tags?: Record<string, string>;
  /** Provider ids of the firewalls the server is in, where the provider has firewalls. */
  firewallIds?: string[];
  /** The key pair whose public key the server was launched with (its provider name), or null. */
  keyPairName?: string | null;
}

export interface LaunchRequest {
  regionId: string;
  dataCenter: string;
  productId: string;
  imageId: string;
  name: string;
  /**
   * Idempotency token: a second launch with the same token returns the first one's server, never a second server.
   * The dispatcher passes the server's id.
   */
  clientToken: string;
  /** Handed to the guest (user data / environment): e.g. the agent's join token and the bridge URL. Secret. */
  bootstrap: Readonly<Record<string, string>>;
  /** Provider ids of the firewalls to put the server in; none: the provider's default firewall. */
  firewallIds?: readonly string[];
  /** The key pair (its provider name) whose public key the guest gets for its login user. */
  keyPairName?: string;
  /**
   * A script the guest runs once, at its first boot (cloud-init's user data). Secret like `bootstrap`: never logged,
   * never in an error, a span or a record; at most MAX_USER_DATA_BYTES.
   */
  userData?: string;
  /** Tags for the server (keys under `dispatcher:` are the dispatcher's own). */
  tags?: Tags;
}

/** The largest user script a launch takes (EC2's user data limit, before base64, leaves room for the bootstrap). */
export const MAX_USER_DATA_BYTES = 12 * 1024;

export interface TestContextAnswer {
  /** The provider's identity of the account the credentials reach (e.g. the AWS account number). */
  providerAccountId: string;
}

export interface CloudDriver {
  /** The name clouds refer to (clouds.driver). */
  readonly name: string;
  /** Validates the credentials; AUTH error when they do not work. */
  testContext(target: DriverTarget, options: DriverCallOptions): Promise<TestContextAnswer>;
  listRegions(target: DriverTarget, options: DriverCallOptions): Promise<DriverRegion[]>;
  /** The capabilities the account really has in the region (probed, not assumed). */
  probeCapabilities(target: DriverTarget, regionId: string, options: DriverCallOptions): Promise<Capability[]>;
  listProducts(target: DriverTarget, regionId: string, options: DriverCallOptions): Promise<DriverProduct[]>;
  listImages(target: DriverTarget, regionId: string, options: DriverCallOptions): Promise<DriverImage[]>;
  launch(target: DriverTarget, request: LaunchRequest, options: DriverCallOptions): Promise<ServerObservation>;
  start(target: DriverTarget, server: ServerRef, options: DriverCallOptions): Promise<void>;
  stop(target: DriverTarget, server: ServerRef, options: DriverCallOptions): Promise<void>;
  reboot(target: DriverTarget, server: ServerRef, options: DriverCallOptions): Promise<void>;
  /** Terminating a server already gone succeeds. */
  terminate(target: DriverTarget, server: ServerRef, options: DriverCallOptions): Promise<void>;
  /** null when the provider does not know the server (or it is long gone). */
  getServer(target: DriverTarget, server: ServerRef, options: DriverCallOptions): Promise<ServerObservation | null>;
  /** Every server of the account in the region, terminated ones the provider still lists included. */
  listServers(target: DriverTarget, regionId: string, options: DriverCallOptions): Promise<ServerObservation[]>;
  /**
   * The optional resource services this driver can offer at all (a service it leaves out is never offered);
   * probeCapabilities says in which regions an account really has each.
   */
  readonly services?: DriverServices;
}
