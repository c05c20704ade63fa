// Firewall rules in the dispatcher's terms, the same for every driver: what a rule is, what makes one valid (with the
// field that is wrong, for INVALID_ARGUMENT field violations above), when two rules are the same rule, and whether a
// rule lets a connection in. Pure functions: the drivers, the local cloud's forwarder and the service layer share them.
import { BlockList, isIPv4, isIPv6 } from "node:net";

export const RULE_DIRECTIONS = ["INGRESS", "EGRESS"] as const;
export type RuleDirection = (typeof RULE_DIRECTIONS)[number];
export const RULE_PROTOCOLS = ["TCP", "UDP", "ICMP", "ALL"] as const;
export type RuleProtocol = (typeof RULE_PROTOCOLS)[number];

/** Where traffic comes from (ingress) or goes to (egress): an IPv4/IPv6 CIDR, or the servers in another firewall. */
export type FirewallPeer = { cidr: string } | { firewallId: string };

export interface FirewallRule {
  direction: RuleDirection;
  protocol: RuleProtocol;
  /** TCP and UDP: an inclusive port range within 1–65535. ICMP and ALL: null (every type, every port). */
  ports: { from: number; to: number } | null;
  peer: FirewallPeer;
  /** Free text shown beside the rule; not part of what makes two rules the same. */
  description?: string;
}

export interface RuleViolation {
  /** The rule's field, relative to the rule: "protocol", "ports.from", "peer.cidr", … */
  field: string;
  description: string;
}

const MAX_DESCRIPTION = 255;

/** Everything wrong with a rule; empty when it is valid. */
export function ruleViolations(rule: FirewallRule): RuleViolation[] {
  const out: RuleViolation[] = [];
  if (!RULE_DIRECTIONS.includes(rule.direction)) out.push({ field: "direction", description: "must be INGRESS or EGRESS" });
  if (!RULE_PROTOCOLS.includes(rule.protocol)) out.push({ field: "protocol", description: "must be TCP, UDP, ICMP or ALL" });
  const ported = rule.protocol === "TCP" || rule.protocol === "UDP";
  if (ported) {
    if (!rule.ports) out.push({ field: "ports", description: `a ${rule.protocol} rule needs a port range` });
    else {
      const { from, to } = rule.ports;
      if (!Number.isInteger(from) || from < 1 || from > 65535) out.push({ field: "ports.from", description: "must be a port from 1 to 65535" });
      if (!Number.isInteger(to) || to < 1 || to > 65535) out.push({ field: "ports.to", description: "must be a port from 1 to 65535" });
      else if (Number.isInteger(from) && to < from) out.push({ field: "ports.to", description: "must not be below ports.from" });
    }
  } else if (rule.ports && RULE_PROTOCOLS.includes(rule.protocol)) {
    out.push({ field: "ports", description: `a ${rule.protocol} rule covers every port: leave the range out` });
  }
  const peer = rule.peer as Partial<{ cidr: unknown; firewallId: unknown }> | undefined;
  const cidr = typeof peer?.cidr === "string" ? peer.cidr : null;
  const firewallId = typeof peer?.firewallId === "string" ? peer.firewallId : null;
  if ((cidr === null) === (firewallId === null)) out.push({ field: "peer", description: "name either a CIDR or a firewall" });
  else if (cidr !== null) {
    const why = cidrProblem(cidr);
    if (why) out.push({ field: "peer.cidr", description: why });
  } else if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/.test(firewallId ?? "")) out.push({ field: "peer.firewall_id", description: "must be a firewall's id" });
  if (rule.description !== undefined && (rule.description.length > MAX_DESCRIPTION || /\p{Cc}/u.test(rule.description))) {
    out.push({ field: "description", description: `at most ${MAX_DESCRIPTION} characters, no control characters` });
  }
  return out;
}

/** Why `cidr` is not a canonical IPv4 or IPv6 CIDR (host bits zero), or null when it is one. */
export function cidrProblem(cidr: string): string | null {
  const parsed = parseCidr(cidr);
  if (!parsed) return "must be an IPv4 or IPv6 CIDR such as 203.0.113.0/24 or 2001:db8::/32";
  const canonical = `${parsed.network}/${parsed.prefix}`;
  if (canonical !== cidr) return `host bits are set: did you mean ${canonical}?`;
  return null;
}

interface ParsedCidr {
  family: "ipv4" | "ipv6";
  /** The address with its host bits cleared, in canonical text. */
  network: string;
  prefix: number;
}

export function parseCidr(cidr: string): ParsedCidr | null {
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) return null;
  const [, address = "", prefixText = ""] = m;
  const prefix = Number(prefixText);
  const family = isIPv4(address) ? "ipv4" : isIPv6(address) ? "ipv6" : null;
  if (!family || prefix > (family === "ipv4" ? 32 : 128) || (prefixText.length > 1 && prefixText.startsWith("0"))) return null;
  const bits = family === "ipv4" ? 32 : 128;
  const value = toBigInt(address, family);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
  return { family, network: fromBigInt(value & mask, family), prefix };
}

function toBigInt(address: string, family: "ipv4" | "ipv6"): bigint {
  if (family === "ipv4") return address.split(".").reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
  const [head = "", tail = ""] = address.includes("::") ? address.split("::") : [address, ""];
  const groups = (s: string): string[] => (s === "" ? [] : s.split(":"));
  let h = groups(head);
  let t = groups(tail);
  // An embedded IPv4 tail (::ffff:1.2.3.4) is two groups.
  const v4 = (list: string[]): string[] => list.flatMap((g) => (g.includes(".") ? ipv4Groups(g) : [g]));
  h = v4(h);
  t = v4(t);
  const missing = 8 - h.length - t.length;
  const all = address.includes("::") ? [...h, ...Array<string>(missing).fill("0"), ...t] : h;
  return all.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g || "0", 16)), 0n);
}

function ipv4Groups(v4: string): string[] {
  const n = Number(toBigInt(v4, "ipv4"));
  return [(n >>> 16).toString(16), (n & 0xffff).toString(16)];
}

function fromBigInt(value: bigint, family: "ipv4" | "ipv6"): string {
  if (family === "ipv4") return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 255n)).join(".");
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt((7 - i) * 16)) & 0xffffn));
  // RFC 5952: the longest run (of two or more) of zero groups becomes "::".
  let best = { start: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len && j - i >= 2) best = { start: i, len: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.start < 0) return hex.join(":");
  return `${hex.slice(0, best.start).join(":")}::${hex.slice(best.start + best.len).join(":")}`;
}

/** What makes a rule this rule: two rules with the same key are one rule (the description aside). */
export function ruleKey(rule: FirewallRule): string {
  const ports = rule.ports ? `${rule.ports.from}-${rule.ports.to}` : "*";
  const peer = "cidr" in rule.peer ? `cidr:${rule.peer.cidr}` : `firewall:${rule.peer.firewallId}`;
  return `${rule.direction} ${rule.protocol} ${ports} ${peer}`;
}

export function sameRule(a: FirewallRule, b: FirewallRule): boolean {
  return ruleKey(a) === ruleKey(b);
}

/** One incoming connection, as a firewall judges it. */
export interface Connection {
  protocol: "TCP" | "UDP";
  port: number;
  /** The address it comes from. */
  source: string;
}

/**
 * Whether any ingress rule lets the connection in. `membersOf(firewallId)` gives the addresses of the servers in a
 * firewall, for rules whose peer is a firewall.
 */
export function admits(rules: readonly FirewallRule[], connection: Connection, membersOf: (firewallId: string) => ReadonlySet<string>): boolean {
  return rules.some((rule) => {
    if (rule.direction !== "INGRESS") return false;
    if (rule.protocol !== "ALL" && rule.protocol !== connection.protocol) return false;
    if (rule.ports && (connection.port < rule.ports.from || connection.port > rule.ports.to)) return false;
    if ("firewallId" in rule.peer) return membersOf(rule.peer.firewallId).has(connection.source);
    return inCidr(connection.source, rule.peer.cidr);
  });
}

const blockLists = new Map<string, BlockList>();

/** Whether `address` is inside `cidr` (IPv4-mapped IPv6 sources count as their IPv4 address). */
export function inCidr(address: string, cidr: string): boolean {
  const parsed = parseCidr(cidr);
  if (!parsed) return false;
  let list = blockLists.get(cidr);
  if (!list) {
    list = new BlockList();
    list.addSubnet(parsed.network, parsed.prefix, parsed.family);
    if (blockLists.size > 10_000) blockLists.clear();
    blockLists.set(cidr, list);
  }
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  const source = mapped ?? address;
  const family = isIPv4(source) ? "ipv4" : isIPv6(source) ? "ipv6" : null;
  return family !== null && family === parsed.family && list.check(source, family);
}
