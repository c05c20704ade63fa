// dispatcher.v1 FirewallService, AddressService and KeyPairService over gRPC: every request field validated here
// (INVALID_ARGUMENT with field violations; enums' UNSPECIFIED rejected), then the network service, then full messages.
import { AddressServiceService as A, FirewallServiceService as F, KeyPairServiceService as K } from "../gen/proto/dispatcher/v1/network.js";
import { jobToProto } from "../jobs/mapper.js";
import type { Principal } from "../iam/principal.js";
import { defineService, unary, type RpcService } from "../rpc/adapter.js";
import { nextToken, validateOne, type Violations } from "../rpc/validate.js";
import { resourceChange, resourceEventsQuery, resourceListQuery } from "../resources/requests.js";
import {
  addressToProto,
  BUDGET_CODE_RULES,
  DESCRIPTION_RULES,
  firewallToProto,
  ID_RULES,
  IDEMPOTENCY_KEY_RULES,
  KEY_TYPES,
  keyPairToProto,
  PUBLIC_KEY_RULES,
  REGION_ID_RULES,
  RESOURCE_NAME_RULES,
  resourceEventToProto,
  ruleFromProto,
  tagsOf,
} from "./mapper.js";
import type { NetworkService, NetworkType } from "./service.js";

type Ctx = { principal: Readonly<Principal> };


const newResource = (v: Violations, req: { accountId: string; regionId: string; name: string; tags: Record<string, string>; idempotencyKey: string }) => ({
  accountId: v.string("account_id", req.accountId, ID_RULES),
  regionId: v.string("region_id", req.regionId, REGION_ID_RULES),
  name: v.optionalString("name", req.name, RESOURCE_NAME_RULES),
  tags: tagsOf(req.tags),
  idempotencyKey: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES),
});

export function networkHandlers(net: NetworkService): RpcService[] {
  const remove = (type: NetworkType) => async (req: { id: string; idempotencyKey: string }, ctx: Ctx) => {
    const { id, key } = resourceChange(req);
    return { job: jobToProto(await net.delete(ctx.principal, type, id, key)) };
  };
  const setTags = (type: NetworkType) => async (req: { id: string; change?: { set: Record<string, string>; remove: string[] } | undefined; idempotencyKey: string }, ctx: Ctx) => {
    const { id, key } = resourceChange(req);
    const change = { set: tagsOf(req.change?.set), remove: [...(req.change?.remove ?? [])] };
    return { job: jobToProto(await net.setTags(ctx.principal, type, id, change, key)) };
  };
  const events = (type: NetworkType) => async (req: { id: string; pageSize: number; pageToken: string }, ctx: Ctx) => {
    const q = resourceEventsQuery(req);
    const page = await net.listEvents(ctx.principal, type, q.id, q);
    return { events: page.items.map(resourceEventToProto), nextPageToken: nextToken(page, { id: q.id }) };
  };
  const rule = (op: "add" | "remove") => async (req: Parameters<typeof ruleFromProto>[2] extends infer R ? { id: string; rule?: R; idempotencyKey: string } : never, ctx: Ctx) => {
    const input = validateOne((v) => ({ id: v.string("id", req.id, ID_RULES), rule: ruleFromProto(v, "rule", req.rule), key: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES) }));
    return { job: jobToProto(await net.changeRule(ctx.principal, op, input.id, input.rule, input.key)) };
  };

  const firewalls = defineService(F, {
    createFirewall: unary(F.createFirewall, async (req, ctx) => {
      const input = validateOne((v) => ({ ...newResource(v, req), description: v.optionalString("description", req.description, DESCRIPTION_RULES) }));
      const { job, resource } = await net.createFirewall(ctx.principal, input);
      return { job: jobToProto(job), firewall: firewallToProto(resource) };
    }),
    getFirewall: unary(F.getFirewall, async (req, ctx) => ({ firewall: firewallToProto(await net.get(ctx.principal, "firewall", validateOne((v) => v.string("id", req.id, ID_RULES)))) })),
    listFirewalls: unary(F.listFirewalls, async (req, ctx) => {
      const q = resourceListQuery(req);
      const page = await net.list(ctx.principal, "firewall", q);
      return { firewalls: page.items.map(firewallToProto), nextPageToken: nextToken(page, q.filters) };
    }),
    deleteFirewall: unary(F.deleteFirewall, remove("firewall")),
    addFirewallRule: unary(F.addFirewallRule, rule("add")),
    removeFirewallRule: unary(F.removeFirewallRule, rule("remove")),
    setFirewallTags: unary(F.setFirewallTags, setTags("firewall")),
    listFirewallEvents: unary(F.listFirewallEvents, events("firewall")),
  });

  const addresses = defineService(A, {
    allocateAddress: unary(A.allocateAddress, async (req, ctx) => {
      const input = validateOne((v) => ({ ...newResource(v, req), budgetCode: v.optionalString("budget_code", req.budgetCode, BUDGET_CODE_RULES) }));
      const { job, resource } = await net.allocateAddress(ctx.principal, input);
      return { job: jobToProto(job), address: addressToProto(resource) };
    }),
    getAddress: unary(A.getAddress, async (req, ctx) => {
      const address = await net.get(ctx.principal, "address", validateOne((v) => v.string("id", req.id, ID_RULES)));
      return { address: addressToProto(address, (await net.serverIdsOf([address])).get(address.id)) };
    }),
    listAddresses: unary(A.listAddresses, async (req, ctx) => {
      const q = resourceListQuery(req);
      const page = await net.list(ctx.principal, "address", q);
      const servers = await net.serverIdsOf(page.items);
      return { addresses: page.items.map((a) => addressToProto(a, servers.get(a.id))), nextPageToken: nextToken(page, q.filters) };
    }),
    associateAddress: unary(A.associateAddress, async (req, ctx) => {
      const input = validateOne((v) => ({ id: v.string("id", req.id, ID_RULES), serverId: v.string("server_id", req.serverId, ID_RULES), key: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES) }));
      return { job: jobToProto(await net.associateAddress(ctx.principal, input.id, input.serverId, input.key)) };
    }),
    disassociateAddress: unary(A.disassociateAddress, async (req, ctx) => {
      const { id, key } = resourceChange(req);
      return { job: jobToProto(await net.disassociateAddress(ctx.principal, id, key)) };
    }),
    releaseAddress: unary(A.releaseAddress, remove("address")),
    setAddressTags: unary(A.setAddressTags, setTags("address")),
    listAddressEvents: unary(A.listAddressEvents, events("address")),
  });

  const keyPairs = defineService(K, {
    importKeyPair: unary(K.importKeyPair, async (req, ctx) => {
      const input = validateOne((v) => ({ ...newResource(v, req), publicKey: v.string("public_key", req.publicKey, PUBLIC_KEY_RULES) }));
      const { job, resource } = await net.importKeyPair(ctx.principal, input);
      return { job: jobToProto(job), keyPair: keyPairToProto(resource) };
    }),
    createKeyPair: unary(K.createKeyPair, async (req, ctx) => {
      const input = validateOne((v) => ({ ...newResource(v, req), keyType: v.enumValue("key_type", req.keyType, KEY_TYPES) ?? "ed25519" }));
      const { job, resource, privateKey, publicKey } = await net.createKeyPair(ctx.principal, input);
      return { job: jobToProto(job), keyPair: keyPairToProto(resource), privateKey, publicKey };
    }),
    getKeyPair: unary(K.getKeyPair, async (req, ctx) => ({ keyPair: keyPairToProto(await net.get(ctx.principal, "key_pair", validateOne((v) => v.string("id", req.id, ID_RULES)))) })),
    listKeyPairs: unary(K.listKeyPairs, async (req, ctx) => {
      const q = resourceListQuery(req);
      const page = await net.list(ctx.principal, "key_pair", q);
      return { keyPairs: page.items.map(keyPairToProto), nextPageToken: nextToken(page, q.filters) };
    }),
    deleteKeyPair: unary(K.deleteKeyPair, remove("key_pair")),
    setKeyPairTags: unary(K.setKeyPairTags, setTags("key_pair")),
    listKeyPairEvents: unary(K.listKeyPairEvents, events("key_pair")),
  });

  return [firewalls, addresses, keyPairs];
}
