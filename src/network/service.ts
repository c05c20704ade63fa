// The rules of firewalls, static addresses and key pairs on top of the generic resource service: rule validation
// (field violations), a peer firewall and a server named by the dispatcher's id (of the same account), an address
// released only once disassociated, and key pairs made here so that a private key reaches its caller once and
// nothing else (neither a job, a row, a log line nor a span).
import { ruleViolations, type FirewallRule } from "../clouds/firewall-rules.js";
import { generateKeyPair, parsePublicKey } from "../clouds/ssh-keys.js";
import type { Page } from "../db/page.js";
import type { Sql } from "../db/sql.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";
import type { Principal } from "../iam/principal.js";
import { inScope, scopeOf } from "../iam/scope.js";
import type { Job } from "../jobs/model.js";
import type { Resource, ResourceEvent } from "../resources/model.js";
import type { ListResourcesQuery, ResourceService } from "../resources/service.js";
import { ADDRESS, FIREWALL, KEY_PAIR, type ResourceTypeSpec } from "../resources/types.js";
import {
  ADDRESS_ALLOCATE_KIND,
  ADDRESS_ASSOCIATE_KIND,
  ADDRESS_DISASSOCIATE_KIND,
  ADDRESS_RELEASE_KIND,
  FIREWALL_AUTHORIZE_KIND,
  FIREWALL_CREATE_KIND,
  FIREWALL_DELETE_KIND,
  FIREWALL_REVOKE_KIND,
  KEY_PAIR_DELETE_KIND,
  KEY_PAIR_IMPORT_KIND,
} from "./kinds.js";

export interface NewResource {
  accountId: string;
  regionId: string;
  name: string;
  tags: Record<string, string>;
  idempotencyKey: string;
}

/** A rule as callers name it: a peer firewall by the dispatcher's id. */
export type RuleInput = FirewallRule;

export type NetworkType = "firewall" | "address" | "key_pair";

export const SPECS: Readonly<Record<NetworkType, ResourceTypeSpec>> = { firewall: FIREWALL as ResourceTypeSpec, address: ADDRESS as ResourceTypeSpec, key_pair: KEY_PAIR as ResourceTypeSpec };

export interface NetworkService {
  get(principal: Readonly<Principal>, type: NetworkType, id: string): Promise<Resource>;
  list(principal: Readonly<Principal>, type: NetworkType, query: ListResourcesQuery): Promise<Page<Resource>>;
  listEvents(principal: Readonly<Principal>, type: NetworkType, id: string, query: { pageSize: number; afterId?: string | undefined }): Promise<Page<ResourceEvent>>;
  setTags(principal: Readonly<Principal>, type: NetworkType, id: string, change: { set: Record<string, string>; remove: string[] }, idempotencyKey: string): Promise<Job>;
  delete(principal: Readonly<Principal>, type: NetworkType, id: string, idempotencyKey: string): Promise<Job>;

  createFirewall(principal: Readonly<Principal>, input: NewResource & { description: string }): Promise<{ job: Job; resource: Resource }>;
  changeRule(principal: Readonly<Principal>, op: "add" | "remove", id: string, rule: RuleInput, idempotencyKey: string): Promise<Job>;

  allocateAddress(principal: Readonly<Principal>, input: NewResource & { budgetCode: string }): Promise<{ job: Job; resource: Resource }>;
  associateAddress(principal: Readonly<Principal>, id: string, serverId: string, idempotencyKey: string): Promise<Job>;
  disassociateAddress(principal: Readonly<Principal>, id: string, idempotencyKey: string): Promise<Job>;
  /** The dispatcher's ids of the servers these addresses are associated with, by address id (where it knows them). */
  serverIdsOf(addresses: readonly Resource[]): Promise<Map<string, string>>;

  importKeyPair(principal: Readonly<Principal>, input: NewResource & { publicKey: string }): Promise<{ job: Job; resource: Resource }>;
  /** The private key is in this answer only; "" when the idempotency key was used before (it is not kept anywhere). */
  createKeyPair(principal: Readonly<Principal>, input: NewResource & { keyType: "rsa" | "ed25519" }): Promise<{ job: Job; resource: Resource; privateKey: string; publicKey: string }>;
}

const DELETE_KINDS: Readonly<Record<NetworkType, string>> = { firewall: FIREWALL_DELETE_KIND, address: ADDRESS_RELEASE_KIND, key_pair: KEY_PAIR_DELETE_KIND };

export function createNetworkService(deps: { sql: Sql; resources: ResourceService }): NetworkService {
  const { sql, resources } = deps;

  const serverOf = async (principal: Readonly<Principal>, serverId: string): Promise<{ id: string; accountId: string; regionId: string; providerId: string | null; state: string }> => {
    const [row] = await sql.query<{ id: string; accountId: string; regionId: string; providerId: string | null; state: string }>`
      SELECT id, account_id AS accountId, region_id AS regionId, provider_id AS providerId, state FROM servers WHERE id = ${serverId}`;
    if (!row || !inScope(scopeOf(principal), row.accountId)) throw new NotFoundError("server", serverId);
    return row;
  };

  /** The rule with a peer firewall's dispatcher id replaced by its provider id (same account, created on the cloud). */
  const resolveRule = async (principal: Readonly<Principal>, firewall: Resource, rule: RuleInput): Promise<FirewallRule> => {
    const violations = ruleViolations(rule).map((v) => ({ field: `rule.${v.field === "peer.firewall_id" ? "firewall_id" : v.field === "peer.cidr" ? "cidr" : v.field === "ports.from" ? "from_port" : v.field === "ports.to" ? "to_port" : v.field}`, description: v.description }));
    if (violations.length > 0) throw new InvalidArgumentError(violations);
    if (!("firewallId" in rule.peer)) return rule;
    const peerId = rule.peer.firewallId;
    const peer = await resources.get(principal, FIREWALL as ResourceTypeSpec, peerId).catch(() => null);
    if (!peer || peer.accountId !== firewall.accountId || peer.regionId !== firewall.regionId) throw InvalidArgumentError.field("rule.firewall_id", `no firewall ${JSON.stringify(peerId)} in the firewall's account and region`);
    if (!peer.providerId || peer.state === "DELETED") throw new FailedPreconditionError(`firewall ${peerId} is ${peer.state}`, "PEER_NOT_AVAILABLE", [], { firewall: peerId });
    return { ...rule, peer: { firewallId: peer.providerId } };
  };

  return {
    get: (p, type, id) => resources.get(p, SPECS[type], id),
    list: (p, type, q) => resources.list(p, SPECS[type], q),
    listEvents: (p, type, id, q) => resources.listEvents(p, SPECS[type], id, q),
    setTags: (p, type, id, change, key) => resources.setTags(p, SPECS[type], id, change, key),

    delete(p, type, id, key) {
      return resources.act(p, SPECS[type], id, {
        kind: DELETE_KINDS[type],
        idempotencyKey: key,
        message: `${SPECS[type].noun} deletion requested by ${p.id}`,
        deletes: true,
        allowed: (r) => {
          if (type === "address" && r.state === "ASSOCIATED") {
            throw new FailedPreconditionError(`address ${id} is associated with a server: disassociate it first`, "ADDRESS_ASSOCIATED", [], { address: id });
          }
        },
      });
    },

    createFirewall: (p, input) =>
      resources.create(p, FIREWALL as ResourceTypeSpec, { ...input, budgetCode: "", kind: FIREWALL_CREATE_KIND, payload: { description: input.description }, details: { description: input.description, rules: "[]" } }),

    async changeRule(p, op, id, rule, key) {
      const firewall = await resources.get(p, FIREWALL as ResourceTypeSpec, id);
      const resolved = await resolveRule(p, firewall, rule);
      const ports = resolved.ports ? ` ${resolved.ports.from}-${resolved.ports.to}` : "";
      const peer = "cidr" in resolved.peer ? resolved.peer.cidr : `firewall ${resolved.peer.firewallId}`;
      return resources.act(p, FIREWALL as ResourceTypeSpec, id, {
        kind: op === "add" ? FIREWALL_AUTHORIZE_KIND : FIREWALL_REVOKE_KIND,
        payload: { rule: resolved },
        idempotencyKey: key,
        message: `rule ${op === "add" ? "added" : "removed"} by ${p.id}: ${resolved.direction} ${resolved.protocol}${ports} ${resolved.direction === "INGRESS" ? "from" : "to"} ${peer}`,
        allowed: (r) => {
          if (!r.providerId) throw new FailedPreconditionError(`firewall ${id} has not reached its cloud yet`, "RESOURCE_PENDING", [], { firewall: id });
        },
      });
    },

    allocateAddress: (p, input) => resources.create(p, ADDRESS as ResourceTypeSpec, { ...input, kind: ADDRESS_ALLOCATE_KIND }),

    async associateAddress(p, id, serverId, key) {
      const address = await resources.get(p, ADDRESS as ResourceTypeSpec, id);
      const server = await serverOf(p, serverId);
      if (server.accountId !== address.accountId) throw new NotFoundError("server", serverId);
      if (server.regionId !== address.regionId) throw InvalidArgumentError.field("server_id", `server ${serverId} is in region ${server.regionId}, the address in ${address.regionId}`);
      if (server.state === "TERMINATED" || server.state === "TERMINATING") throw new FailedPreconditionError(`server ${serverId} is ${server.state}`, "SERVER_STATE", [], { server: serverId, state: server.state });
      return resources.act(p, ADDRESS as ResourceTypeSpec, id, { kind: ADDRESS_ASSOCIATE_KIND, payload: { serverId }, idempotencyKey: key, message: `association with server ${serverId} requested by ${p.id}`, details: { serverId } });
    },

    disassociateAddress: (p, id, key) => resources.act(p, ADDRESS as ResourceTypeSpec, id, { kind: ADDRESS_DISASSOCIATE_KIND, idempotencyKey: key, message: `disassociation requested by ${p.id}` }),

    async serverIdsOf(addresses) {
      const wanted = addresses.filter((a) => a.details.serverProviderId);
      if (wanted.length === 0) return new Map();
      const rows = await sql.query<{ id: string; accountId: string; providerId: string }>`
        SELECT id, account_id AS accountId, provider_id AS providerId FROM servers
         WHERE account_id IN (${[...new Set(wanted.map((a) => a.accountId))]}) AND provider_id IN (${wanted.map((a) => a.details.serverProviderId ?? "")})`;
      const out = new Map<string, string>();
      for (const a of wanted) {
        const s = rows.find((r) => r.accountId === a.accountId && r.providerId === a.details.serverProviderId);
        if (s) out.set(a.id, s.id);
      }
      return out;
    },

    async importKeyPair(p, input) {
      const parsed = parsePublicKey(input.publicKey);
      if (typeof parsed === "string") throw InvalidArgumentError.field("public_key", parsed);
      return resources.create(p, KEY_PAIR as ResourceTypeSpec, { ...input, budgetCode: "", kind: KEY_PAIR_IMPORT_KIND, payload: { publicKey: parsed.canonical }, details: { keyType: parsed.keyType } });
    },

    async createKeyPair(p, input) {
      // Made here, not by the provider: the job carries only the public key, so the private key is never stored.
      const made = generateKeyPair(input.keyType, input.name);
      const { job, resource } = await resources.create(p, KEY_PAIR as ResourceTypeSpec, { ...input, budgetCode: "", kind: KEY_PAIR_IMPORT_KIND, payload: { publicKey: made.publicKey }, details: { keyType: made.keyType, fingerprint: made.fingerprint } });
      // A repeated idempotency key answers the first request's key pair, whose private key nobody has kept.
      const fresh = (job.payload as { publicKey?: unknown } | null)?.publicKey === made.publicKey;
      return { job, resource, privateKey: fresh ? made.privateKey : "", publicKey: fresh ? made.publicKey : "" };
    },
  };
}
