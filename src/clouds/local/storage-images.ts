// The local cloud's machine images of the account's own: a copy of a server's root directory, taken while it runs (as
// an image made without a reboot), less what is not the server's disk — the volumes linked under ~/mnt — and less what
// is the one server's identity — its agent registration (~/agent.json) —, so a server launched from it starts as a
// copy of the first with an identity of its own. A server launched from one runs the command of the catalog image its
// source ran, and keeps working after the image is deregistered. The catalog's images are the public ones.
import { DriverError, type DriverTarget } from "../driver.js";
import { checkTags, type MachineImageObservation, type MachineImageService } from "../resources.js";
import { runCall } from "./call.js";
import { checkName, requireCapability, type LocalContext } from "./context.js";
import { newRecordId, type ImageRecord } from "./records.js";
import { contentBytes, copyInto, copyOut, removeContent } from "./storage-content.js";

type Context = (target: DriverTarget) => Promise<LocalContext>;

/** Paths under a guest's root that an image leaves out. */
export const IMAGE_EXCLUDES: readonly string[] = ["mnt", "agent.json"];

function observe(ctx: LocalContext, i: ImageRecord): MachineImageObservation {
  const state = i.state === "PENDING" ? (ctx.store.locked(i.id) ? "PENDING" : "FAILED") : "AVAILABLE";
  const details: Record<string, string> = { sourceServerId: i.serverId, baseImageId: i.baseImageId };
  if (i.description) details.description = i.description;
  if (i.sizeBytes !== undefined) details.sizeBytes = String(i.sizeBytes);
  return { providerId: i.id, regionId: i.regionId, name: i.name, state, tags: { ...i.tags }, createdAt: new Date(i.createdAt), clientToken: i.clientToken, details, platform: i.platform, public: false };
}

/** The account's available image `id` in the region, or null (a catalog image id, or an unknown one). */
export function ownImage(ctx: LocalContext, regionId: string, id: string): ImageRecord | null {
  const i = ctx.files.read("image", id);
  return i && i.regionId === regionId && i.state === "AVAILABLE" ? i : null;
}

/** Fills a new server's root from the image (before its first boot). */
export async function seedRoot(ctx: LocalContext, image: ImageRecord, root: string): Promise<void> {
  await copyOut(ctx, image.id, root);
}

export function localImages(contextOf: Context): MachineImageService {
  return {
    create: (target, request, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        requireCapability(ctx, request.regionId, "compute");
        checkName("image", request.name);
        checkTags(request.tags);
        if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
        const server = ctx.store.read(request.server.providerId);
        if (!server || server.regionId !== request.regionId || request.server.regionId !== request.regionId || server.desired === "TERMINATED") {
          throw new DriverError("INVALID", `region "${request.regionId}" has no server "${request.server.providerId.slice(0, 64)}" to make an image of`);
        }
        const baseImageId = server.bootImageId ?? server.imageId;
        const base = ctx.catalog.images.find((i) => i.id === baseImageId);
        const { id } = ctx.store.bindToken(request.clientToken, newRecordId("image"), "image");
        return ctx.store.withLock(id, signal, async () => {
          const existing = ctx.files.read("image", id);
          if (existing && existing.state === "AVAILABLE") return observe(ctx, existing);
          const i: ImageRecord = existing ?? { id, regionId: request.regionId, name: request.name, description: request.description, serverId: server.id, baseImageId, platform: base?.platform ?? "linux", state: "PENDING", tags: { ...request.tags }, createdAt: new Date().toISOString(), clientToken: request.clientToken };
          ctx.files.write("image", i);
          await copyInto(ctx, ctx.store.rootDir(i.serverId), id, IMAGE_EXCLUDES);
          i.state = "AVAILABLE";
          i.sizeBytes = await contentBytes(ctx, id);
          ctx.files.write("image", i);
          return observe(ctx, i);
        });
      }),

    get: (target, ref, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        const i = ctx.files.read("image", ref.providerId);
        return i && i.regionId === ref.regionId ? observe(ctx, i) : null;
      }),

    // The account's own images; the public (catalog) ones are the driver's listImages.
    list: (target, regionId, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        requireCapability(ctx, regionId, "compute");
        return ctx.files.all("image").filter((i) => i.regionId === regionId).map((i) => observe(ctx, i));
      }),

    delete: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        const i0 = ctx.files.read("image", ref.providerId);
        if (!i0 || i0.regionId !== ref.regionId) return;
        await ctx.store.withLock(i0.id, signal, async () => {
          await removeContent(ctx, i0.id);
          ctx.files.remove("image", i0.id);
        });
      }),
  };
}
