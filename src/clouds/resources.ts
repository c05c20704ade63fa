// The drivers' optional resource services, in Dasein's shape: a driver offers the service groups it can (firewalls,
// static addresses, key pairs and tags now; volumes, snapshots, machine images and a blob store next), and discovery
// probes per region which of them an account really has (SERVICE_CAPABILITY). Every resource is seen the same way —
// a ResourceObservation with the provider's id, region, name, state, tags and non-secret details — so that one
// generic mechanism above the drivers can record, tag, adopt and retire any of them.
import { DriverError, type Capability, type DriverCallOptions, type DriverTarget, type ServerRef } from "./calls.js";
import type { FirewallRule } from "./firewall-rules.js";

export const RESOURCE_TYPES = ["firewall", "address", "key_pair", "volume", "snapshot", "image", "bucket"] as const;
export type ResourceType = (typeof RESOURCE_TYPES)[number];

/** Key → value. Keys under `dispatcher:` are the dispatcher's own (e.g. the client token of a create). */
export type Tags = Readonly<Record<string, string>>;

/** A resource as the provider names it: its region and the provider's id. */
export type ResourceRef = ServerRef;

/** What every resource looks like to the dispatcher, whatever its type. */
export interface ResourceObservation {
  providerId: string;
  regionId: string;
  /** The provider's name for it (or its Name tag where it has no name); "" when it has neither. */
  name: string;
  /** One of the type's states (FirewallState, AddressState, …). Deleted or released: the service answers null. */
  state: string;
  tags: Record<string, string>;
  createdAt: Date | null;
  /** The client token it was created with, where the provider keeps one (or the driver tags it): ties a create job to it. */
  clientToken: string | null;
  /** Non-secret provider details worth showing (network, association ids, paths). */
  details: Record<string, string>;
}

/** What every create asks. A second create with the same client token answers with the first one's resource. */
export interface CreateRequest {
  regionId: string;
  name: string;
  clientToken: string;
  tags: Tags;
}

type Call = DriverCallOptions;
type Target = DriverTarget;

/** Reads and deletes, the same for every type. */
export interface ResourceService<O extends ResourceObservation> {
  /** null when the provider does not know it (or it is deleted / released). */
  get(target: Target, ref: ResourceRef, options: Call): Promise<O | null>;
  /** Every one of the account's in the region. */
  list(target: Target, regionId: string, options: Call): Promise<O[]>;
  /** Deleting what is already gone succeeds; deleting what something still uses is CONFLICT. */
  delete(target: Target, ref: ResourceRef, options: Call): Promise<void>;
}

// ---- firewalls (security groups) ----

export type FirewallState = "AVAILABLE";
export interface FirewallObservation extends ResourceObservation {
  state: FirewallState;
  description: string;
  /** Every rule, ingress and egress, one per peer (a provider's rule with three CIDRs is three rules here). */
  rules: FirewallRule[];
}

/** What a provider's firewalls can express; a rule outside it is UNSUPPORTED there. */
export interface FirewallSupport {
  directions: ReadonlyArray<FirewallRule["direction"]>;
  protocols: ReadonlyArray<FirewallRule["protocol"]>;
  /** Whether a rule may name another firewall as its peer (the servers in it). */
  firewallPeers: boolean;
  ipv6: boolean;
}

export interface FirewallService extends ResourceService<FirewallObservation> {
  readonly support: FirewallSupport;
  create(target: Target, request: CreateRequest & { description: string }, options: Call): Promise<FirewallObservation>;
  /** Adds a rule; a rule that is already there is success (the same rule twice is one rule). */
  authorize(target: Target, ref: ResourceRef, rule: FirewallRule, options: Call): Promise<void>;
  /** Removes a rule; a rule that is not there is success. */
  revoke(target: Target, ref: ResourceRef, rule: FirewallRule, options: Call): Promise<void>;
  /** Replaces the firewalls of a server (at least one). */
  setServerFirewalls(target: Target, server: ServerRef, firewallIds: readonly string[], options: Call): Promise<void>;
}

// ---- static addresses ----

export type AddressState = "ALLOCATED" | "ASSOCIATED";
export interface AddressObservation extends ResourceObservation {
  state: AddressState;
  /** The address itself. */
  ip: string;
  /** The server it is associated with, or null. */
  serverProviderId: string | null;
}

export interface AddressService extends ResourceService<AddressObservation> {
  allocate(target: Target, request: CreateRequest, options: Call): Promise<AddressObservation>;
  /**
   * Associates the address with the server (associating it again with the same server is success). An address
   * associated with another server is CONFLICT; a server that had another static address gives it up (EC2's rule).
   */
  associate(target: Target, ref: ResourceRef, server: ServerRef, options: Call): Promise<void>;
  /** An address that is not associated is success. */
  disassociate(target: Target, ref: ResourceRef, options: Call): Promise<void>;
  // delete = release: CONFLICT while associated.
}

// ---- key pairs ----

export type KeyPairState = "AVAILABLE";
export interface KeyPairObservation extends ResourceObservation {
  state: KeyPairState;
  /** The provider's fingerprint of the key (EC2: MD5 or SHA-1 of the key; the local cloud: OpenSSH's SHA256:…). */
  fingerprint: string;
  keyType: string;
}

export type KeyType = "rsa" | "ed25519";

export interface KeyPairService extends ResourceService<KeyPairObservation> {
  /** Registers a public key (OpenSSH format); the same name with the same key again is success, another key CONFLICT. */
  importKey(target: Target, request: CreateRequest & { publicKey: string }, options: Call): Promise<KeyPairObservation>;
  /**
   * The provider makes a key pair; its private key is in this answer only. A retried create whose first answer was
   * lost replaces the key pair that attempt made (nobody can have its private key), so retries are safe.
   */
  create(target: Target, request: CreateRequest & { keyType: KeyType }, options: Call): Promise<{ keyPair: KeyPairObservation; privateKey: string }>;
}

// ---- tags, on any resource (servers too) ----

export interface TaggedRef extends ResourceRef {
  type: ResourceType | "server";
}

export interface TagService {
  /** Adds or overwrites these tags. */
  set(target: Target, ref: TaggedRef, tags: Tags, options: Call): Promise<void>;
  /** Removes these keys; a key that is not there is fine. */
  remove(target: Target, ref: TaggedRef, keys: readonly string[], options: Call): Promise<void>;
}

// ---- declared for storage (volumes, snapshots, images, blob store): their drivers come next ----

export type VolumeState = "CREATING" | "AVAILABLE" | "IN_USE" | "DELETING" | "ERROR";
export interface VolumeObservation extends ResourceObservation {
  state: VolumeState;
  sizeGiB: number;
  volumeType: string;
  dataCenter: string;
  snapshotId: string | null;
  attachment: { serverProviderId: string; device: string } | null;
}
export interface VolumeService extends ResourceService<VolumeObservation> {
  create(target: Target, request: CreateRequest & { dataCenter: string; sizeGiB: number; volumeType: string; snapshotId: string | null }, options: Call): Promise<VolumeObservation>;
  attach(target: Target, ref: ResourceRef, server: ServerRef, device: string, options: Call): Promise<void>;
  detach(target: Target, ref: ResourceRef, options: Call): Promise<void>;
}

export type SnapshotState = "PENDING" | "COMPLETED" | "ERROR";
export interface SnapshotObservation extends ResourceObservation {
  state: SnapshotState;
  volumeId: string | null;
  sizeGiB: number;
}
export interface SnapshotService extends ResourceService<SnapshotObservation> {
  create(target: Target, request: CreateRequest & { volumeId: string; description: string }, options: Call): Promise<SnapshotObservation>;
}

export type MachineImageState = "PENDING" | "AVAILABLE" | "FAILED";
export interface MachineImageObservation extends ResourceObservation {
  state: MachineImageState;
  platform: string;
  /** The account's own image (false) or one the provider or someone else publishes (true). */
  public: boolean;
}
export interface MachineImageService extends ResourceService<MachineImageObservation> {
  /** An image of the server's root disk. delete = deregister. */
  create(target: Target, request: CreateRequest & { server: ServerRef; description: string }, options: Call): Promise<MachineImageObservation>;
}

export type BucketState = "AVAILABLE";
export type BucketObservation = ResourceObservation & { state: BucketState };
export interface BlobObject {
  key: string;
  sizeBytes: number;
  /** The provider's checksum (e.g. an ETag or sha256), as it gives it. */
  checksum: string;
  /** What `checksum` is: "sha256" (hex of the body's SHA-256) or "etag" (S3's ETag). */
  checksumAlgorithm: "sha256" | "etag";
  modifiedAt: Date;
  /** As given at upload; "" when none (listings may leave it out: S3's do). */
  contentType?: string | undefined;
  /** The caller's metadata, as given at upload (listings may leave it out). Never a place for secrets. */
  metadata?: Record<string, string> | undefined;
}

/** What an upload may say about its object besides the bytes. */
export interface ObjectAttributes {
  contentType: string;
  metadata: Record<string, string>;
}

export interface BlobStoreService extends ResourceService<BucketObservation> {
  create(target: Target, request: CreateRequest, options: Call): Promise<BucketObservation>;
  listObjects(target: Target, bucket: ResourceRef, query: { prefix: string; pageSize: number; pageToken: string }, options: Call): Promise<{ objects: BlobObject[]; nextPageToken: string }>;
  /** Streams the body in; never holds it whole. The object appears whole or not at all. */
  putObject(target: Target, bucket: ResourceRef, key: string, body: AsyncIterable<Uint8Array>, options: Call, attributes?: ObjectAttributes): Promise<BlobObject>;
  getObject(target: Target, bucket: ResourceRef, key: string, options: Call): Promise<{ object: BlobObject; body: AsyncIterable<Uint8Array> } | null>;
  /** The object's metadata without its body; null when there is no such object. */
  headObject(target: Target, bucket: ResourceRef, key: string, options: Call): Promise<BlobObject | null>;
  deleteObject(target: Target, bucket: ResourceRef, key: string, options: Call): Promise<void>;
  /**
   * An upload in parts, each sent on its own call (callers that cannot stream, e.g. browsers over gRPC-Web): the
   * provider keeps the parts, so any dispatcher replica may take the next one. Answers the provider's upload id.
   */
  startUpload(target: Target, bucket: ResourceRef, key: string, attributes: ObjectAttributes, options: Call): Promise<string>;
  /** Part n (1-based); sending a part again replaces it. */
  uploadPart(target: Target, bucket: ResourceRef, key: string, uploadId: string, partNumber: number, body: Uint8Array, options: Call): Promise<void>;
  /** Joins parts 1..partCount into the object, which appears whole or not at all; NOT_FOUND for an unknown upload. */
  completeUpload(target: Target, bucket: ResourceRef, key: string, uploadId: string, partCount: number, options: Call): Promise<BlobObject>;
  /** Drops the parts; an unknown upload is success. */
  abortUpload(target: Target, bucket: ResourceRef, key: string, uploadId: string, options: Call): Promise<void>;
}

/** The services a driver may offer. */
export interface DriverServices {
  firewalls?: FirewallService;
  addresses?: AddressService;
  keyPairs?: KeyPairService;
  tags?: TagService;
  volumes?: VolumeService;
  snapshots?: SnapshotService;
  images?: MachineImageService;
  blobStore?: BlobStoreService;
}
export type ServiceName = keyof DriverServices;

/** The capability a region must have before a service may be used there; tags follow the tagged resource's. */
export const SERVICE_CAPABILITY: Readonly<Record<Exclude<ServiceName, "tags">, Capability>> = {
  firewalls: "firewalls",
  addresses: "static_addresses",
  keyPairs: "key_pairs",
  volumes: "block_storage",
  snapshots: "block_storage",
  images: "compute",
  blobStore: "object_storage",
};

/** The service, or an UNSUPPORTED DriverError naming it: the driver cannot offer it anywhere. */
export function serviceOf<N extends ServiceName>(driver: { readonly name: string; readonly services?: DriverServices }, name: N): NonNullable<DriverServices[N]> {
  const service = driver.services?.[name];
  if (!service) throw new DriverError("UNSUPPORTED", `the ${driver.name} cloud driver has no ${name} service`);
  return service as NonNullable<DriverServices[N]>;
}

/** Tag rules every driver keeps (EC2's, the strictest): what is wrong with each bad entry, by key. */
export const MAX_TAGS = 50;
export function tagViolations(tags: Tags, options: { allowReserved?: boolean } = {}): Array<{ key: string; description: string }> {
  const out: Array<{ key: string; description: string }> = [];
  const entries = Object.entries(tags);
  if (entries.length > MAX_TAGS) out.push({ key: "", description: `at most ${MAX_TAGS} tags` });
  for (const [key, value] of entries) {
    if (key.length < 1 || key.length > 128) out.push({ key, description: "a tag key has 1 to 128 characters" });
    else if (/^aws:/i.test(key)) out.push({ key, description: "tag keys starting with aws: are the provider's" });
    else if (!options.allowReserved && key.startsWith(RESERVED_TAG_PREFIX)) out.push({ key, description: `tag keys starting with ${RESERVED_TAG_PREFIX} are the dispatcher's` });
    else if (/\p{Cc}/u.test(key)) out.push({ key, description: "a tag key has no control characters" });
    if (value.length > 256) out.push({ key, description: "a tag value has at most 256 characters" });
    else if (/\p{Cc}/u.test(value)) out.push({ key, description: "a tag value has no control characters" });
  }
  return out;
}

export const RESERVED_TAG_PREFIX = "dispatcher:";
/** The tag a driver writes where the provider keeps no client token itself. */
export const CLIENT_TOKEN_TAG = "dispatcher:client-token";

/** Throws INVALID naming the first bad tag (drivers check what reaches them; the service layer lists all). */
export function checkTags(tags: Tags): void {
  const [bad] = tagViolations(tags);
  if (bad) throw new DriverError("INVALID", `tag "${bad.key.slice(0, 64)}": ${bad.description}`);
}
