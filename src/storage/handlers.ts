// dispatcher.v1 VolumeService, SnapshotService and ImageService over gRPC: every request field validated here
// (INVALID_ARGUMENT with field violations), then the storage service, then full messages with the dispatcher's ids of
// what the resources' details name.
import { ImageServiceService as I, SnapshotServiceService as S, VolumeServiceService as V } from "../gen/proto/dispatcher/v1/storage.js";
import type { Principal } from "../iam/principal.js";
import { jobToProto } from "../jobs/mapper.js";
import type { Resource } from "../resources/model.js";
import { defineService, unary, type RpcService } from "../rpc/adapter.js";
import { afterIdFromToken, nextToken, validateOne, type Violations } from "../rpc/validate.js";
import { resourceChange, resourceEventsQuery, resourceListQuery, type ResourceListRequest } from "../resources/requests.js";
import {
  BUDGET_CODE_RULES,
  DATA_CENTER_RULES,
  DESCRIPTION_RULES,
  DEVICE_RULES,
  ID_RULES,
  IDEMPOTENCY_KEY_RULES,
  imageToProto,
  MAX_VOLUME_GIB,
  publicImageToProto,
  REGION_ID_RULES,
  RESOURCE_NAME_RULES,
  resourceEventToProto,
  snapshotToProto,
  tagsOf,
  volumeToProto,
  VOLUME_TYPE_RULES,
} from "./mapper.js";
import type { Links, StorageService, StorageType } from "./service.js";

type Ctx = { principal: Readonly<Principal> };


const owned = (v: Violations, req: { name: string; budgetCode: string; tags: Record<string, string>; idempotencyKey: string }) => ({
  name: v.optionalString("name", req.name, RESOURCE_NAME_RULES),
  budgetCode: v.optionalString("budget_code", req.budgetCode, BUDGET_CODE_RULES),
  tags: tagsOf(req.tags),
  idempotencyKey: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES),
});

export function storageHandlers(storage: StorageService): RpcService[] {
  const remove = (type: StorageType) => async (req: { id: string; idempotencyKey: string }, ctx: Ctx) => {
    const { id, key } = resourceChange(req);
    return { job: jobToProto(await storage.delete(ctx.principal, type, id, key)) };
  };
  const events = (type: StorageType) => async (req: { id: string; pageSize: number; pageToken: string }, ctx: Ctx) => {
    const q = resourceEventsQuery(req);
    const page = await storage.listEvents(ctx.principal, type, q.id, q);
    return { events: page.items.map(resourceEventToProto), nextPageToken: nextToken(page, { id: q.id }) };
  };
  const get = async (type: StorageType, id: string, ctx: Ctx): Promise<{ r: Resource; links: Links }> => {
    const r = await storage.get(ctx.principal, type, validateOne((v) => v.string("id", id, ID_RULES)));
    return { r, links: await storage.linksOf([r]) };
  };
  const list = async (type: StorageType, req: ResourceListRequest, ctx: Ctx) => {
    const q = resourceListQuery(req);
    const page = await storage.list(ctx.principal, type, q);
    return { items: page.items, links: await storage.linksOf(page.items), nextPageToken: nextToken(page, q.filters) };
  };

  const volumes = defineService(V, {
    createVolume: unary(V.createVolume, async (req, ctx) => {
      const input = validateOne((v) => {
        if (!Number.isInteger(req.sizeGib) || req.sizeGib < 1 || req.sizeGib > MAX_VOLUME_GIB) v.add("size_gib", `must be 1 to ${MAX_VOLUME_GIB}`);
        return {
          ...owned(v, req),
          accountId: v.string("account_id", req.accountId, ID_RULES),
          regionId: v.string("region_id", req.regionId, REGION_ID_RULES),
          sizeGiB: req.sizeGib,
          volumeType: v.optionalString("volume_type", req.volumeType, VOLUME_TYPE_RULES),
          dataCenter: v.optionalString("data_center", req.dataCenter, DATA_CENTER_RULES),
          snapshotId: v.optionalString("snapshot_id", req.snapshotId, ID_RULES),
        };
      });
      const { job, resource } = await storage.createVolume(ctx.principal, input);
      return { job: jobToProto(job), volume: volumeToProto(resource, await storage.linksOf([resource])) };
    }),
    getVolume: unary(V.getVolume, async (req, ctx) => {
      const { r, links } = await get("volume", req.id, ctx);
      return { volume: volumeToProto(r, links) };
    }),
    listVolumes: unary(V.listVolumes, async (req, ctx) => {
      const { items, links, nextPageToken } = await list("volume", req, ctx);
      return { volumes: items.map((r) => volumeToProto(r, links)), nextPageToken };
    }),
    attachVolume: unary(V.attachVolume, async (req, ctx) => {
      const input = validateOne((v) => ({
        id: v.string("id", req.id, ID_RULES),
        serverId: v.string("server_id", req.serverId, ID_RULES),
        device: v.string("device", req.device, DEVICE_RULES),
        key: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES),
      }));
      return { job: jobToProto(await storage.attachVolume(ctx.principal, input.id, input.serverId, input.device, input.key)) };
    }),
    detachVolume: unary(V.detachVolume, async (req, ctx) => {
      const { id, key } = resourceChange(req);
      return { job: jobToProto(await storage.detachVolume(ctx.principal, id, key)) };
    }),
    deleteVolume: unary(V.deleteVolume, remove("volume")),
    setVolumeTags: unary(V.setVolumeTags, async (req, ctx) => {
      const { id, key } = resourceChange(req);
      const change = { set: tagsOf(req.change?.set), remove: [...(req.change?.remove ?? [])] };
      return { job: jobToProto(await storage.setVolumeTags(ctx.principal, id, change, key)) };
    }),
    listVolumeEvents: unary(V.listVolumeEvents, events("volume")),
  });

  const snapshots = defineService(S, {
    createSnapshot: unary(S.createSnapshot, async (req, ctx) => {
      const input = validateOne((v) => ({ ...owned(v, req), volumeId: v.string("volume_id", req.volumeId, ID_RULES), description: v.optionalString("description", req.description, DESCRIPTION_RULES) }));
      const { job, resource } = await storage.createSnapshot(ctx.principal, input);
      return { job: jobToProto(job), snapshot: snapshotToProto(resource, await storage.linksOf([resource])) };
    }),
    getSnapshot: unary(S.getSnapshot, async (req, ctx) => {
      const { r, links } = await get("snapshot", req.id, ctx);
      return { snapshot: snapshotToProto(r, links) };
    }),
    listSnapshots: unary(S.listSnapshots, async (req, ctx) => {
      const { items, links, nextPageToken } = await list("snapshot", req, ctx);
      return { snapshots: items.map((r) => snapshotToProto(r, links)), nextPageToken };
    }),
    deleteSnapshot: unary(S.deleteSnapshot, remove("snapshot")),
    listSnapshotEvents: unary(S.listSnapshotEvents, events("snapshot")),
  });

  const images = defineService(I, {
    createImage: unary(I.createImage, async (req, ctx) => {
      const input = validateOne((v) => ({ ...owned(v, req), serverId: v.string("server_id", req.serverId, ID_RULES), description: v.optionalString("description", req.description, DESCRIPTION_RULES) }));
      const { job, resource } = await storage.createImage(ctx.principal, input);
      return { job: jobToProto(job), image: imageToProto(resource, await storage.linksOf([resource])) };
    }),
    getImage: unary(I.getImage, async (req, ctx) => {
      const { r, links } = await get("image", req.id, ctx);
      return { image: imageToProto(r, links) };
    }),
    listMachineImages: unary(I.listMachineImages, async (req, ctx) => {
      const q = validateOne((v) => {
        const filters = { accountId: v.string("account_id", req.accountId, ID_RULES), regionId: v.string("region_id", req.regionId, REGION_ID_RULES), ownOnly: req.ownOnly, includeDeleted: req.includeDeleted };
        return { ...filters, pageSize: v.pageSize("page_size", req.pageSize), afterId: afterIdFromToken(v, req.pageToken, filters), filters };
      });
      const { own, public: publicImages } = await storage.listImages(ctx.principal, q);
      const links = await storage.linksOf(own.items);
      return { images: [...own.items.map((r) => imageToProto(r, links)), ...publicImages.map(publicImageToProto)], nextPageToken: nextToken(own, q.filters) };
    }),
    deleteImage: unary(I.deleteImage, remove("image")),
    listImageEvents: unary(I.listImageEvents, events("image")),
  });

  return [volumes, snapshots, images];
}
