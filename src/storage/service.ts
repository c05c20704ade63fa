// The rules of volumes, snapshots and machine images on top of the generic resource service: a snapshot or a server
// named by the dispatcher's id must be of the caller's scope (NOT_FOUND otherwise) and of the same account and region,
// a volume is deleted only once detached (FAILED_PRECONDITION naming the server and device), a volume from a snapshot
// is at least its size, and each create is admitted against its budget code at the size it asks for.
import type { Page } from "../db/page.js";
import type { Sql } from "../db/sql.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";
import type { Principal } from "../iam/principal.js";
import { inScope, scopeOf } from "../iam/scope.js";
import type { Job } from "../jobs/model.js";
import { DELETED, type Resource, type ResourceEvent } from "../resources/model.js";
import type { ListResourcesQuery, ResourceService } from "../resources/service.js";
import { IMAGE, SNAPSHOT, VOLUME, type ResourceTypeSpec } from "../resources/types.js";
import { findRegion, listImages as listCatalogImages } from "../servers/repository.js";
import {
  IMAGE_CREATE_KIND,
  IMAGE_DELETE_KIND,
  SNAPSHOT_CREATE_KIND,
  SNAPSHOT_DELETE_KIND,
  VOLUME_ATTACH_KIND,
  VOLUME_CREATE_KIND,
  VOLUME_DELETE_KIND,
  VOLUME_DETACH_KIND,
} from "./kinds.js";
import { productDiskGiB, resourceIdsByProviderId, serverIdsByProviderId, type ServerRow, visibleServerRow } from "./repository.js";

export type StorageType = "volume" | "snapshot" | "image";

export const STORAGE_SPECS: Readonly<Record<StorageType, ResourceTypeSpec>> = { volume: VOLUME as ResourceTypeSpec, snapshot: SNAPSHOT as ResourceTypeSpec, image: IMAGE as ResourceTypeSpec };

const DELETE_KINDS: Readonly<Record<StorageType, string>> = { volume: VOLUME_DELETE_KIND, snapshot: SNAPSHOT_DELETE_KIND, image: IMAGE_DELETE_KIND };

const GIB = 1n << 30n;

interface Owned {
  name: string;
  budgetCode: string;
  tags: Record<string, string>;
  idempotencyKey: string;
}

export interface NewVolume extends Owned {
  accountId: string;
  regionId: string;
  sizeGiB: number;
  /** "" for the provider's default. */
  volumeType: string;
  /** "" for the region's first. */
  dataCenter: string;
  /** The dispatcher's id of a snapshot, or "". */
  snapshotId: string;
}

export interface NewSnapshot extends Owned {
  volumeId: string;
  description: string;
}

export interface NewImage extends Owned {
  serverId: string;
  description: string;
}

/** A volume named in a launch request: an existing one of the account (volumeId), or a new one (size, type, snapshot). */
export interface LaunchVolume {
  device: string;
  volumeId: string;
  sizeGiB: number;
  volumeType: string;
  snapshotId: string;
}

/** A provider's catalog image, as discovery last recorded it for the account and region. */
export interface PublicImage {
  id: string;
  name: string;
  platform: string;
  accountId: string;
  regionId: string;
}

/** Dispatcher ids of what a resource's details name by provider id (a volume's server and snapshot, …). */
export interface Links {
  servers: Map<string, string>;
  resources: Map<string, string>;
}

export interface StorageService {
  get(principal: Readonly<Principal>, type: StorageType, id: string): Promise<Resource>;
  list(principal: Readonly<Principal>, type: StorageType, query: ListResourcesQuery): Promise<Page<Resource>>;
  listEvents(principal: Readonly<Principal>, type: StorageType, id: string, query: { pageSize: number; afterId?: string | undefined }): Promise<Page<ResourceEvent>>;
  delete(principal: Readonly<Principal>, type: StorageType, id: string, idempotencyKey: string): Promise<Job>;

  createVolume(principal: Readonly<Principal>, input: NewVolume): Promise<{ job: Job; resource: Resource }>;
  attachVolume(principal: Readonly<Principal>, id: string, serverId: string, device: string, idempotencyKey: string): Promise<Job>;
  detachVolume(principal: Readonly<Principal>, id: string, idempotencyKey: string): Promise<Job>;
  setVolumeTags(principal: Readonly<Principal>, id: string, change: { set: Record<string, string>; remove: string[] }, idempotencyKey: string): Promise<Job>;

  createSnapshot(principal: Readonly<Principal>, input: NewSnapshot): Promise<{ job: Job; resource: Resource }>;
  createImage(principal: Readonly<Principal>, input: NewImage): Promise<{ job: Job; resource: Resource }>;
  /** The account's own images in the region (paged) and, unless ownOnly, the public ones (with the first page). */
  listImages(principal: Readonly<Principal>, query: { accountId: string; regionId: string; ownOnly: boolean; includeDeleted: boolean; pageSize: number; afterId?: string | undefined }): Promise<{ own: Page<Resource>; public: PublicImage[] }>;

  /**
   * Checks the volumes a launch names before the server is recorded (field violations name `volumes[i].…`): an
   * existing volume of the caller's scope (NOT_FOUND otherwise), of the launch's account and region, not attached;
   * devices distinct; new volumes as CreateVolume would take them.
   */
  checkLaunchVolumes(principal: Readonly<Principal>, at: { accountId: string; regionId: string }, volumes: readonly LaunchVolume[]): Promise<void>;
  /**
   * After the launch was recorded: creates the new volumes and starts one attach job per volume, which waits (retrying
   * with backoff) until the server runs and the volume is available. Idempotency keys derive from the launch's.
   */
  attachAtLaunch(principal: Readonly<Principal>, server: { id: string; accountId: string; regionId: string; budgetCode: string }, volumes: readonly LaunchVolume[], launchKey: string): Promise<Array<{ volumeId: string; attachJob: Job }>>;

  /** The dispatcher's ids of the servers and resources these rows' details name by provider id. */
  linksOf(rows: readonly Resource[]): Promise<Links>;
}

/** "volume 01H… is attached to server 01J… as /dev/sdf: detach it first", or null when it is not attached. */
function attachedReason(volume: Resource, serverId: string | undefined): string | null {
  const provider = volume.details.serverProviderId;
  if (!provider) return null;
  return `volume ${volume.id} is attached to server ${serverId ?? provider} as ${volume.details.device ?? "?"}: detach it first`;
}

export function createStorageService(deps: { sql: Sql; resources: ResourceService }): StorageService {
  const { sql, resources } = deps;

  /** A server of the caller's scope; NOT_FOUND otherwise (another account's server as one that does not exist). */
  const visibleServer = async (principal: Readonly<Principal>, serverId: string): Promise<ServerRow> => {
    const row = await visibleServerRow(sql, serverId);
    if (!row || !inScope(scopeOf(principal), row.accountId)) throw new NotFoundError("server", serverId);
    return row;
  };

  const linksOf = async (rows: readonly Resource[]): Promise<Links> => {
    const servers = new Map<string, string>();
    const linked = new Map<string, string>();
    const byAccount = new Map<string, { servers: Set<string>; resources: Set<string> }>();
    for (const r of rows) {
      const entry = byAccount.get(r.accountId) ?? { servers: new Set<string>(), resources: new Set<string>() };
      for (const key of ["serverProviderId", "sourceServerId"]) if (r.details[key]) entry.servers.add(r.details[key]);
      for (const key of ["snapshotId", "volumeId"]) if (r.details[key]) entry.resources.add(r.details[key]);
      byAccount.set(r.accountId, entry);
    }
    for (const [accountId, wanted] of byAccount) {
      for (const [p, id] of await serverIdsByProviderId(sql, accountId, [...wanted.servers])) servers.set(`${accountId}/${p}`, id);
      for (const [p, id] of await resourceIdsByProviderId(sql, accountId, [...wanted.resources])) linked.set(`${accountId}/${p}`, id);
    }
    return { servers, resources: linked };
  };

  const service: StorageService = {
    get: (p, type, id) => resources.get(p, STORAGE_SPECS[type], id),
    list: (p, type, q) => resources.list(p, STORAGE_SPECS[type], q),
    listEvents: (p, type, id, q) => resources.listEvents(p, STORAGE_SPECS[type], id, q),
    setVolumeTags: (p, id, change, key) => resources.setTags(p, STORAGE_SPECS.volume, id, change, key),
    linksOf,

    async delete(p, type, id, key) {
      // Said before the job is written, with the server's dispatcher id; checked again with the row locked.
      const current = await resources.get(p, STORAGE_SPECS[type], id);
      const serverId = type === "volume" && current.details.serverProviderId ? (await linksOf([current])).servers.get(`${current.accountId}/${current.details.serverProviderId}`) : undefined;
      return resources.act(p, STORAGE_SPECS[type], id, {
        kind: DELETE_KINDS[type],
        idempotencyKey: key,
        message: `${STORAGE_SPECS[type].noun} deletion requested by ${p.id}`,
        deletes: true,
        allowed: (r) => {
          const reason = type === "volume" ? attachedReason(r, serverId) : null;
          if (reason) throw new FailedPreconditionError(reason, "VOLUME_ATTACHED", [], { volume: id, server: serverId ?? r.details.serverProviderId ?? "", device: r.details.device ?? "" });
        },
      });
    },

    async createVolume(p, input) {
      let snapshot: Resource | null = null;
      if (input.snapshotId) {
        snapshot = await resources.get(p, STORAGE_SPECS.snapshot, input.snapshotId);
        if (snapshot.accountId !== input.accountId || snapshot.regionId !== input.regionId) {
          throw InvalidArgumentError.field("snapshot_id", `snapshot ${input.snapshotId} is in account ${snapshot.accountId}, region ${snapshot.regionId}; the volume would be in account ${input.accountId}, region ${input.regionId}`);
        }
        if (snapshot.state !== "COMPLETED") throw new FailedPreconditionError(`snapshot ${input.snapshotId} is ${snapshot.state}; a volume is made only from a COMPLETED snapshot`, "SNAPSHOT_NOT_COMPLETED", [], { snapshot: input.snapshotId, state: snapshot.state });
        const size = Number(snapshot.details.sizeGiB ?? "0");
        if (input.sizeGiB < size) throw InvalidArgumentError.field("size_gib", `must be at least the snapshot's size, ${size} GiB`);
      }
      if (input.dataCenter && inScope(scopeOf(p), input.accountId)) {
        const region = await findRegion(sql, input.accountId, input.regionId);
        if (region && !region.dataCenters.includes(input.dataCenter)) throw InvalidArgumentError.field("data_center", `region ${input.regionId} has no data center ${JSON.stringify(input.dataCenter)}`);
      }
      return resources.create(p, STORAGE_SPECS.volume, {
        ...input,
        kind: VOLUME_CREATE_KIND,
        payload: { sizeGiB: input.sizeGiB, volumeType: input.volumeType, dataCenter: input.dataCenter, snapshotId: snapshot?.id ?? null },
        details: { sizeGiB: String(input.sizeGiB), volumeType: input.volumeType, dataCenter: input.dataCenter },
      });
    },

    async attachVolume(p, id, serverId, device, key) {
      const volume = await resources.get(p, STORAGE_SPECS.volume, id);
      const server = await visibleServer(p, serverId);
      if (server.accountId !== volume.accountId) throw new NotFoundError("server", serverId);
      if (server.regionId !== volume.regionId) throw InvalidArgumentError.field("server_id", `server ${serverId} is in region ${server.regionId}, the volume in ${volume.regionId}`);
      if (server.state === "TERMINATED" || server.state === "TERMINATING" || !server.providerId) {
        throw new FailedPreconditionError(`server ${serverId} is ${server.state}; a volume attaches to a server its cloud runs`, "SERVER_STATE", [], { server: serverId, state: server.state });
      }
      return resources.act(p, STORAGE_SPECS.volume, id, {
        kind: VOLUME_ATTACH_KIND,
        payload: { serverId, device },
        idempotencyKey: key,
        message: `attachment to server ${serverId} as ${device} requested by ${p.id}`,
        details: { serverId, device },
        allowed: (r) => {
          if (!r.providerId) throw new FailedPreconditionError(`volume ${id} has not reached its cloud yet`, "RESOURCE_PENDING", [], { volume: id });
          const attachedTo = r.details.serverProviderId;
          if (attachedTo && (attachedTo !== server.providerId || r.details.device !== device)) {
            throw new FailedPreconditionError(`volume ${id} is attached to ${attachedTo === server.providerId ? `server ${serverId}` : `server ${attachedTo}`} as ${r.details.device ?? "?"}: detach it first`, "VOLUME_ATTACHED", [], { volume: id });
          }
        },
      });
    },

    detachVolume: (p, id, key) =>
      resources.act(p, STORAGE_SPECS.volume, id, {
        kind: VOLUME_DETACH_KIND,
        idempotencyKey: key,
        message: `detachment requested by ${p.id}`,
        allowed: (r) => {
          if (!r.details.serverProviderId) throw new FailedPreconditionError(`volume ${id} is not attached`, "VOLUME_NOT_ATTACHED", [], { volume: id });
        },
      }),

    async createSnapshot(p, input) {
      const volume = await resources.get(p, STORAGE_SPECS.volume, input.volumeId);
      if (volume.state === DELETED) throw new FailedPreconditionError(`volume ${volume.id} is deleted`, "RESOURCE_DELETED", [], { volume: volume.id });
      if (!volume.providerId) throw new FailedPreconditionError(`volume ${volume.id} has not reached its cloud yet`, "RESOURCE_PENDING", [], { volume: volume.id });
      return resources.create(p, STORAGE_SPECS.snapshot, {
        ...input,
        // Billed where its volume is unless the caller names a code (then the account's default, as for any resource).
        budgetCode: input.budgetCode || volume.budgetCode,
        accountId: volume.accountId,
        regionId: volume.regionId,
        kind: SNAPSHOT_CREATE_KIND,
        payload: { volumeId: volume.id, description: input.description },
        // Admitted at the volume's size: a snapshot holds at most what its volume does.
        details: { volumeId: volume.providerId, sizeGiB: volume.details.sizeGiB ?? "0", description: input.description },
      });
    },

    async createImage(p, input) {
      const server = await visibleServer(p, input.serverId);
      if (server.state !== "RUNNING" && server.state !== "STOPPED") {
        throw new FailedPreconditionError(`server ${input.serverId} is ${server.state}; an image is made of a RUNNING or STOPPED server`, "SERVER_STATE", [], { server: input.serverId, state: server.state });
      }
      // Admitted at the server's root disk, the most an image of it holds; priced at what the cloud reports once made.
      const diskGiB = await productDiskGiB(sql, server.accountId, server.regionId, server.productId);
      return resources.create(p, STORAGE_SPECS.image, {
        ...input,
        // Billed where its server is unless the caller names a code (then the account's default).
        budgetCode: input.budgetCode || server.budgetCode,
        accountId: server.accountId,
        regionId: server.regionId,
        kind: IMAGE_CREATE_KIND,
        payload: { serverId: server.id, description: input.description },
        details: { sourceServerId: server.providerId ?? "", description: input.description, sizeBytes: (BigInt(diskGiB) * GIB).toString() },
      });
    },

    async checkLaunchVolumes(p, at, volumes) {
      const devices = new Set<string>();
      for (const [i, v] of volumes.entries()) {
        if (devices.has(v.device)) throw InvalidArgumentError.field(`volumes[${i}].device`, `${v.device} is named twice`);
        devices.add(v.device);
        if (!v.volumeId) {
          if (v.snapshotId) {
            const snapshot = await resources.get(p, STORAGE_SPECS.snapshot, v.snapshotId);
            if (snapshot.accountId !== at.accountId || snapshot.regionId !== at.regionId) throw InvalidArgumentError.field(`volumes[${i}].snapshot_id`, `snapshot ${v.snapshotId} is not in the server's account and region`);
            if (snapshot.state !== "COMPLETED") throw new FailedPreconditionError(`snapshot ${v.snapshotId} is ${snapshot.state}; a volume is made only from a COMPLETED snapshot`, "SNAPSHOT_NOT_COMPLETED", [], { snapshot: v.snapshotId });
            if (v.sizeGiB < Number(snapshot.details.sizeGiB ?? "0")) throw InvalidArgumentError.field(`volumes[${i}].size_gib`, `must be at least the snapshot's size, ${snapshot.details.sizeGiB} GiB`);
          }
          continue;
        }
        const volume = await resources.get(p, STORAGE_SPECS.volume, v.volumeId);
        if (volume.accountId !== at.accountId || volume.regionId !== at.regionId) throw InvalidArgumentError.field(`volumes[${i}].volume_id`, `volume ${v.volumeId} is not in the server's account and region`);
        if (volume.state === DELETED) throw new FailedPreconditionError(`volume ${v.volumeId} is deleted`, "RESOURCE_DELETED", [], { volume: v.volumeId });
        const reason = attachedReason(volume, (await linksOf([volume])).servers.get(`${volume.accountId}/${volume.details.serverProviderId ?? ""}`));
        if (reason) throw new FailedPreconditionError(reason, "VOLUME_ATTACHED", [], { volume: v.volumeId });
      }
    },

    async attachAtLaunch(p, server, volumes, launchKey) {
      const out: Array<{ volumeId: string; attachJob: Job }> = [];
      for (const [i, v] of volumes.entries()) {
        const key = (what: string) => (launchKey ? `${launchKey.slice(0, 200)}/volumes/${i}/${what}` : "");
        let volumeId = v.volumeId;
        if (!volumeId) {
          const { resource } = await service.createVolume(p, { accountId: server.accountId, regionId: server.regionId, name: "", sizeGiB: v.sizeGiB, volumeType: v.volumeType, dataCenter: "", snapshotId: v.snapshotId, budgetCode: server.budgetCode, tags: { "launched-with": server.id }, idempotencyKey: key("create") });
          volumeId = resource.id;
        }
        const attachJob = await resources.act(p, STORAGE_SPECS.volume, volumeId, {
          kind: VOLUME_ATTACH_KIND,
          payload: { serverId: server.id, device: v.device, atLaunch: true },
          idempotencyKey: key("attach"),
          message: `attachment to server ${server.id} as ${v.device} requested with its launch by ${p.id}`,
          details: { serverId: server.id, device: v.device },
        });
        out.push({ volumeId, attachJob });
      }
      return out;
    },

    async listImages(p, q) {
      if (!inScope(scopeOf(p), q.accountId)) throw new NotFoundError("account", q.accountId);
      const own = await resources.list(p, STORAGE_SPECS.image, { accountId: q.accountId, regionId: q.regionId, includeDeleted: q.includeDeleted, afterId: q.afterId, pageSize: q.pageSize });
      const publicImages = q.ownOnly || q.afterId ? [] : (await listCatalogImages(sql, q.accountId, q.regionId)).map((i) => ({ ...i, accountId: q.accountId, regionId: q.regionId }));
      return { own, public: publicImages };
    },
  };
  return service;
}
