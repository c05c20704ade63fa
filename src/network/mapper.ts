// proto ⇄ domain for the network services (firewalls, addresses, key pairs), and the field rules their handlers
// validate requests with.
import type { FirewallRule as DomainRule, RuleDirection as DomainDirection, RuleProtocol as DomainProtocol } from "../clouds/firewall-rules.js";
import {
  type Address,
  type Firewall,
  type FirewallRule,
  type KeyPair,
  type ResourceEvent as ResourceEventMessage,
  type ResourceInfo,
  KeyType,
  RuleDirection,
  RuleProtocol,
} from "../gen/proto/dispatcher/v1/network.js";
import type { Resource, ResourceEvent } from "../resources/model.js";
import type { Violations } from "../rpc/validate.js";

export { ID_RULES } from "../rpc/validate.js";
export { BUDGET_CODE_RULES, REGION_ID_RULES } from "../provisioning/mapper.js";
export { IDEMPOTENCY_KEY_RULES } from "../jobs/mapper.js";

/** Names the provider shows (EC2 group and key names allow 255 characters; the local cloud's are file names). */
export const RESOURCE_NAME_RULES = { max: 128, pattern: /^[A-Za-z0-9][A-Za-z0-9 _.:@-]*$/, patternHint: "letters, digits, space, _ . : @ - (starting with a letter or digit)" };
export const DESCRIPTION_RULES = { max: 255, min: 0, pattern: /^[^\p{Cc}]*$/u, patternHint: "no control characters" };
export const PUBLIC_KEY_RULES = { max: 16_384 };

const DIRECTIONS: Readonly<Partial<Record<number, DomainDirection>>> = { [RuleDirection.RULE_DIRECTION_INGRESS]: "INGRESS", [RuleDirection.RULE_DIRECTION_EGRESS]: "EGRESS" };
const PROTOCOLS: Readonly<Partial<Record<number, DomainProtocol>>> = {
  [RuleProtocol.RULE_PROTOCOL_TCP]: "TCP",
  [RuleProtocol.RULE_PROTOCOL_UDP]: "UDP",
  [RuleProtocol.RULE_PROTOCOL_ICMP]: "ICMP",
  [RuleProtocol.RULE_PROTOCOL_ALL]: "ALL",
};
export const KEY_TYPES: Readonly<Partial<Record<number, "rsa" | "ed25519">>> = { [KeyType.KEY_TYPE_ED25519]: "ed25519", [KeyType.KEY_TYPE_RSA]: "rsa" };

/** A request's rule in domain terms; direction, protocol and peer are required (violations otherwise). */
export function ruleFromProto(v: Violations, field: string, rule: FirewallRule | undefined): DomainRule {
  if (!rule) v.add(field, "is required");
  const r = rule ?? { direction: 0, protocol: 0, fromPort: 0, toPort: 0, peer: undefined, description: "" };
  const direction = v.enumValue(`${field}.direction`, r.direction, DIRECTIONS) ?? "INGRESS";
  const protocol = v.enumValue(`${field}.protocol`, r.protocol, PROTOCOLS) ?? "TCP";
  if (rule && !r.peer) v.add(`${field}.peer`, "name either a cidr or a firewall_id");
  const peer = r.peer?.$case === "firewallId" ? { firewallId: r.peer.value } : { cidr: r.peer?.value ?? "" };
  const ported = r.fromPort !== 0 || r.toPort !== 0;
  return { direction, protocol, ports: ported ? { from: r.fromPort, to: r.toPort } : null, peer, ...(r.description ? { description: r.description } : {}) };
}

function ruleToProto(r: DomainRule): FirewallRule {
  const direction = r.direction === "EGRESS" ? RuleDirection.RULE_DIRECTION_EGRESS : RuleDirection.RULE_DIRECTION_INGRESS;
  const protocol = { TCP: RuleProtocol.RULE_PROTOCOL_TCP, UDP: RuleProtocol.RULE_PROTOCOL_UDP, ICMP: RuleProtocol.RULE_PROTOCOL_ICMP, ALL: RuleProtocol.RULE_PROTOCOL_ALL }[r.protocol];
  const peer = "cidr" in r.peer ? { $case: "cidr" as const, value: r.peer.cidr } : { $case: "firewallId" as const, value: r.peer.firewallId };
  return { direction, protocol, fromPort: r.ports?.from ?? 0, toPort: r.ports?.to ?? 0, peer, description: r.description ?? "" };
}

export function infoOf(r: Resource): ResourceInfo {
  return {
    id: r.id,
    accountId: r.accountId,
    regionId: r.regionId,
    providerId: r.providerId ?? "",
    name: r.name,
    state: r.state,
    origin: r.origin,
    budgetCode: r.budgetCode,
    tags: r.tags,
    createTime: r.createdAt,
    updateTime: r.updatedAt,
  };
}

function rulesOf(r: Resource): DomainRule[] {
  try {
    const parsed = JSON.parse(r.details.rules ?? "[]") as unknown;
    return Array.isArray(parsed) ? (parsed as DomainRule[]) : [];
  } catch {
    return [];
  }
}

export const firewallToProto = (r: Resource): Firewall => ({ info: infoOf(r), description: r.details.description ?? "", rules: rulesOf(r).map(ruleToProto) });

export const addressToProto = (r: Resource, serverId = ""): Address => ({ info: infoOf(r), ip: r.details.ip ?? "", serverId, serverProviderId: r.details.serverProviderId ?? "" });

export const keyPairToProto = (r: Resource): KeyPair => ({ info: infoOf(r), fingerprint: r.details.fingerprint ?? "", keyType: r.details.keyType ?? "" });

export const resourceEventToProto = (e: ResourceEvent): ResourceEventMessage => ({
  id: e.id.toString(),
  resourceId: e.resourceId,
  type: e.type,
  fromState: e.fromState ?? "",
  toState: e.toState ?? "",
  jobId: e.jobId ?? "",
  message: e.message,
  createTime: e.createdAt,
});

/** A request's tags: each key and value checked by the service (field violations name the key). */
export const tagsOf = (tags: Record<string, string> | undefined): Record<string, string> => ({ ...(tags ?? {}) });
