// dispatcher.v1 ServerService over gRPC: every request field validated here (INVALID_ARGUMENT with field
// violations; enums' UNSPECIFIED rejected where a value is required), then the server service, then full messages.
import { ServerServiceService as S } from "../gen/proto/dispatcher/v1/servers.js";
import { jobToProto } from "../jobs/mapper.js";
import { defineService, unary, type RpcService } from "../rpc/adapter.js";
import { afterIdFromToken, nextToken, validateOne, type Violations } from "../rpc/validate.js";
import type { ServerAction } from "./model.js";
import {
  AGENT_FROM_PROTO,
  BUDGET_CODE_RULES,
  ID_RULES,
  IDEMPOTENCY_KEY_RULES,
  IMAGE_ID_RULES,
  imageToProto,
  LAUNCH_DATA_CENTER_RULES,
  PRODUCT_ID_RULES,
  productToProto,
  REGION_ID_RULES,
  SERVER_NAME_RULES,
  serverEventToProto,
  serverToProto,
  STATE_FROM_PROTO,
} from "./mapper.js";
import { InvalidArgumentError } from "../errors.js";
import { launchVolumesFromProto } from "../storage/mapper.js";
import type { StorageService } from "../storage/service.js";
import type { ServerService } from "./service.js";
import { tagViolations } from "../clouds/resources.js";
import { MAX_SERVER_FIREWALLS } from "./launch-options.js";
import { MAX_USER_DATA_BYTES } from "./user-data.js";

/** Firewall ids, each an id; too many is one violation on the list. */
function firewallIds(v: Violations, field: string, ids: readonly string[] | undefined): string[] {
  const list = ids ?? [];
  if (list.length > MAX_SERVER_FIREWALLS) {
    v.add(field, `a server is in at most ${MAX_SERVER_FIREWALLS} firewalls`);
    return [];
  }
  return list.map((id, i) => v.string(`${field}[${i}]`, id, ID_RULES));
}

/** Tags as a launch gives them: the cloud rules (reserved prefixes, lengths, count), one violation per bad tag. */
function launchTags(v: Violations, field: string, tags: Record<string, string> | undefined): Record<string, string> {
  const out = { ...(tags ?? {}) };
  for (const t of tagViolations(out)) v.add(t.key ? `${field}[${JSON.stringify(t.key.slice(0, 64))}]` : field, t.description);
  return out;
}

/** The size only: the script itself is sensitive and never quoted. */
function userData(v: Violations, field: string, text: string | undefined): string {
  const s = text ?? "";
  const bytes = Buffer.byteLength(s, "utf8");
  if (bytes > MAX_USER_DATA_BYTES) v.add(field, `is ${bytes} bytes; at most ${MAX_USER_DATA_BYTES} bytes are allowed`);
  return s;
}

/** A server event id from a page token: a positive integer. */
function eventCursor(v: Violations, token: string, query: unknown): string | undefined {
  const after = afterIdFromToken(v, token, query);
  if (after !== undefined && !/^\d{1,19}$/.test(after)) {
    v.add("page_token", "is not a page token of this query");
    return undefined;
  }
  return after;
}

/** Volumes named at launch (src/storage): checked before the server is recorded, created and attached after. */
export type LaunchVolumes = Pick<StorageService, "checkLaunchVolumes" | "attachAtLaunch">;

export function serverHandlers(servers: ServerService, volumes?: LaunchVolumes): RpcService {
  const control = (action: ServerAction) => async (req: { id: string; idempotencyKey: string }, ctx: { principal: Parameters<ServerService["control"]>[0] }) => {
    const { id, key } = validateOne((v) => ({ id: v.string("id", req.id, ID_RULES), key: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES) }));
    return { job: jobToProto(await servers.control(ctx.principal, action, id, key)) };
  };
  const catalogQuery = (req: { accountId: string; regionId: string }) =>
    validateOne((v) => ({ accountId: v.string("account_id", req.accountId, ID_RULES), regionId: v.string("region_id", req.regionId, REGION_ID_RULES) }));

  return defineService(S, {
    launchServer: unary(S.launchServer, async (req, ctx) => {
      const input = validateOne((v) => ({
        accountId: v.string("account_id", req.accountId, ID_RULES),
        regionId: v.string("region_id", req.regionId, REGION_ID_RULES),
        dataCenter: v.optionalString("data_center", req.dataCenter, LAUNCH_DATA_CENTER_RULES),
        productId: v.string("product_id", req.productId, PRODUCT_ID_RULES),
        imageId: v.string("image_id", req.imageId, IMAGE_ID_RULES),
        name: v.optionalString("name", req.name, SERVER_NAME_RULES),
        budgetCode: v.optionalString("budget_code", req.budgetCode, BUDGET_CODE_RULES),
        idempotencyKey: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES),
        firewallIds: firewallIds(v, "firewall_ids", req.firewallIds),
        keyPairId: v.optionalString("key_pair_id", req.keyPairId, ID_RULES),
        userData: userData(v, "user_data", req.userData),
        addressId: v.optionalString("address_id", req.addressId, ID_RULES),
        tags: launchTags(v, "tags", req.tags),
        volumes: launchVolumesFromProto(v, "volumes", req.volumes),
      }));
      if (input.volumes.length > 0 && !volumes) throw InvalidArgumentError.field("volumes", "this server offers no volumes at launch");
      if (input.volumes.length > 0) await volumes?.checkLaunchVolumes(ctx.principal, input, input.volumes);
      const { job, server } = await servers.launch(ctx.principal, input);
      const attached = input.volumes.length > 0 && volumes ? await volumes.attachAtLaunch(ctx.principal, server, input.volumes, input.idempotencyKey) : [];
      return { job: jobToProto(job), server: serverToProto(server), volumeJobs: attached.map((a) => jobToProto(a.attachJob)) };
    }),
    startServer: unary(S.startServer, control("start")),
    stopServer: unary(S.stopServer, control("stop")),
    rebootServer: unary(S.rebootServer, control("reboot")),
    terminateServer: unary(S.terminateServer, control("terminate")),
    setServerFirewalls: unary(S.setServerFirewalls, async (req, ctx) => {
      const input = validateOne((v) => {
        const ids = firewallIds(v, "firewall_ids", req.firewallIds);
        if ((req.firewallIds ?? []).length === 0) v.add("firewall_ids", "name at least one firewall");
        return { id: v.string("id", req.id, ID_RULES), firewallIds: ids, key: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES) };
      });
      return { job: jobToProto(await servers.setFirewalls(ctx.principal, input.id, input.firewallIds, input.key)) };
    }),
    setServerTags: unary(S.setServerTags, async (req, ctx) => {
      const { id, key } = validateOne((v) => ({ id: v.string("id", req.id, ID_RULES), key: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES) }));
      return { job: jobToProto(await servers.setTags(ctx.principal, id, { set: { ...(req.set ?? {}) }, remove: [...(req.remove ?? [])] }, key)) };
    }),
    getServer: unary(S.getServer, async (req, ctx) => {
      const id = validateOne((v) => v.string("id", req.id, ID_RULES));
      return { server: serverToProto(await servers.getServer(ctx.principal, id)) };
    }),
    listServers: unary(S.listServers, async (req, ctx) => {
      const q = validateOne((v) => {
        const filters = {
          accountId: v.optionalString("account_id", req.accountId, ID_RULES) || undefined,
          regionId: v.optionalString("region_id", req.regionId, REGION_ID_RULES) || undefined,
          state: v.optionalEnum("state", req.state, STATE_FROM_PROTO),
          budgetCode: v.optionalString("budget_code", req.budgetCode, BUDGET_CODE_RULES) || undefined,
          agentState: v.optionalEnum("agent_state", req.agentState, AGENT_FROM_PROTO),
          tags: Object.keys(req.tags ?? {}).length > 0 ? { ...req.tags } : undefined,
        };
        for (const k of Object.keys(req.tags ?? {})) if (k.length < 1 || k.length > 128) v.add("tags", "a tag key has 1 to 128 characters");
        return { ...filters, pageSize: v.pageSize("page_size", req.pageSize), afterId: afterIdFromToken(v, req.pageToken, filters) };
      });
      const page = await servers.listServers(ctx.principal, q);
      const { accountId, regionId, state, budgetCode, agentState, tags } = q;
      return { servers: page.items.map(serverToProto), nextPageToken: nextToken(page, { accountId, regionId, state, budgetCode, agentState, tags }) };
    }),
    listServerEvents: unary(S.listServerEvents, async (req, ctx) => {
      const q = validateOne((v) => {
        const id = v.string("id", req.id, ID_RULES);
        return { id, pageSize: v.pageSize("page_size", req.pageSize), afterId: eventCursor(v, req.pageToken, { id }) };
      });
      const page = await servers.listEvents(ctx.principal, q.id, q);
      return { events: page.items.map(serverEventToProto), nextPageToken: nextToken(page, { id: q.id }) };
    }),
    listProducts: unary(S.listProducts, async (req, ctx) => {
      const { accountId, regionId } = catalogQuery(req);
      return { products: (await servers.listProducts(ctx.principal, accountId, regionId)).map(productToProto) };
    }),
    listImages: unary(S.listImages, async (req, ctx) => {
      const { accountId, regionId } = catalogQuery(req);
      return { images: (await servers.listImages(ctx.principal, accountId, regionId)).map(imageToProto) };
    }),
  });
}
