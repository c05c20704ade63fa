// Tags on the local cloud's servers, firewalls, static addresses, key pairs, volumes, snapshots, images and buckets:
// kept in each one's record, changed under the lock that guards the record.
import { DriverError, type DriverTarget } from "../driver.js";
import { checkTags, type TagService, type TaggedRef } from "../resources.js";
import { runCall } from "./call.js";
import type { LocalContext } from "./context.js";
import type { RecordKind } from "./records.js";
import { isServerId } from "./store.js";

type Context = (target: DriverTarget) => Promise<LocalContext>;

const LOCKS: Readonly<Partial<Record<TaggedRef["type"], { kind: RecordKind; lock: string }>>> = {
  firewall: { kind: "firewall", lock: "network" },
  address: { kind: "address", lock: "network" },
  key_pair: { kind: "key_pair", lock: "key-pairs" },
  // Storage records change under their own id's lock (src/clouds/local/storage-*.ts).
  volume: { kind: "volume", lock: "" },
  snapshot: { kind: "snapshot", lock: "" },
  image: { kind: "image", lock: "" },
  bucket: { kind: "bucket", lock: "" },
};

export function localTags(contextOf: Context): TagService {
  async function edit(target: DriverTarget, ref: TaggedRef, signal: AbortSignal, change: (tags: Record<string, string>) => void): Promise<void> {
    const ctx = await contextOf(target);
    const missing = (): never => {
      throw new DriverError("NOT_FOUND", `the local cloud has no ${ref.type} "${ref.providerId.slice(0, 64)}" in region "${ref.regionId.slice(0, 64)}"`);
    };
    if (ref.type === "server") {
      if (!isServerId(ref.providerId)) missing();
      await ctx.store.withLock(ref.providerId, signal, async () => {
        const r = ctx.store.read(ref.providerId);
        if (!r || r.regionId !== ref.regionId) missing();
        else {
          const tags = { ...(r.tags ?? {}) };
          change(tags);
          checkTags(tags);
          ctx.store.write({ ...r, tags });
        }
      });
      return;
    }
    const where = LOCKS[ref.type];
    if (!where) throw new DriverError("UNSUPPORTED", `the local cloud has no ${ref.type}s yet`);
    // A record's own lock is named by its id, which must be one (read checks) before it names a lock file.
    if (!where.lock && !ctx.files.read(where.kind, ref.providerId)) missing();
    await ctx.store.withLock(where.lock || ref.providerId, signal, async () => {
      const record = ctx.files.read(where.kind, ref.providerId);
      if (!record || record.regionId !== ref.regionId) missing();
      else {
        const tags = { ...record.tags };
        change(tags);
        checkTags(tags);
        ctx.files.write(where.kind, { ...record, tags } as never);
      }
    });
  }

  return {
    set: (target, ref, tags, opts) =>
      runCall(opts, async (signal) => {
        checkTags(tags);
        await edit(target, ref, signal, (current) => Object.assign(current, tags));
      }),
    remove: (target, ref, keys, opts) =>
      runCall(opts, async (signal) => {
        await edit(target, ref, signal, (current) => {
          for (const key of keys) delete current[key];
        });
      }),
  };
}
