// Tags on EC2 resources: CreateTags and DeleteTags take any resource id (instance, security group, Elastic IP
// allocation, key pair, volume, snapshot, image), so one call serves every type. Buckets are S3's, untagged here.
import { DriverError } from "../driver.js";
import { RESERVED_TAG_PREFIX, checkTags, type TagService, type TaggedRef } from "../resources.js";
import { withEc2 } from "./client.js";

const TAGGABLE: ReadonlySet<TaggedRef["type"]> = new Set(["server", "firewall", "address", "key_pair", "volume", "snapshot", "image"]);

function taggable(ref: TaggedRef): void {
  if (!TAGGABLE.has(ref.type)) throw new DriverError("UNSUPPORTED", `the aws driver has no ${ref.type}s yet`);
}

export function awsTags(): TagService {
  return {
    set: (target, ref, tags, call) =>
      withEc2(target, ref.regionId, call, async (s) => {
        taggable(ref);
        checkTags(tags);
        const list = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
        if (list.length === 0) return;
        await s.send("CreateTags", (c, o, x) => c.send(new x.CreateTagsCommand({ Resources: [ref.providerId], Tags: list }), o));
      }),
    remove: (target, ref, keys, call) =>
      withEc2(target, ref.regionId, call, async (s) => {
        taggable(ref);
        // The dispatcher's own tags (a client token) stay: they tie the resource to the job that made it.
        const list = keys.filter((k) => !k.startsWith(RESERVED_TAG_PREFIX)).map((Key) => ({ Key }));
        if (list.length === 0) return;
        await s.send("DeleteTags", (c, o, x) => c.send(new x.DeleteTagsCommand({ Resources: [ref.providerId], Tags: list }), o));
      }),
  };
}
