// Where the dispatcher may call an agent: only at an address the cloud observed for the agent's server, never at a
// link-local or metadata-service address, and never at one of the dispatcher's own endpoints (its listeners, its
// databases, NATS, KM, the trace collector). Checked when an agent registers and again before every call, so a row
// written before an address changed (or before these rules) cannot point the dispatcher elsewhere.
import { BlockList, isIP } from "node:net";
import { networkInterfaces } from "node:os";
import type { Config } from "../config.js";
import type { FieldViolation } from "../errors.js";

/** The addresses and details a driver observed for a server (servers.addresses, servers.details). */
export interface ObservedServer {
  addresses: unknown;
  details: unknown;
}

export interface Endpoint {
  /** An IP literal or host name; "*" for a listener bound to every address of this host. */
  host: string;
  port: number;
}

export interface AgentEndpointRules {
  /** The dispatcher's own endpoints (listeners and the services it depends on): never an agent's. */
  ownEndpoints(): Endpoint[];
  /** Whether an address belongs to this host (loopback or one of its interfaces). */
  isLocal(address: string): boolean;
}

function neverCalledAddresses(): BlockList {
  const list = new BlockList();
  list.addSubnet("169.254.0.0", 16, "ipv4"); // link-local, with 169.254.169.254 (AWS, GCP, Azure, OpenStack metadata)
  list.addSubnet("0.0.0.0", 8, "ipv4"); // "this network", 0.0.0.0 reaching every local listener
  list.addSubnet("224.0.0.0", 3, "ipv4"); // multicast, reserved, broadcast
  list.addSubnet("fe80::", 10, "ipv6"); // link-local
  list.addSubnet("ff00::", 8, "ipv6"); // multicast
  list.addAddress("::", "ipv6");
  list.addAddress("fd00:ec2::254", "ipv6"); // AWS metadata over IPv6
  list.addSubnet("::ffff:169.254.0.0", 112, "ipv6");
  list.addSubnet("::ffff:0.0.0.0", 104, "ipv6");
  return list;
}

const NEVER = neverCalledAddresses();
const METADATA_HOSTS = new Set(["metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"]);

/** An IP literal in one spelling (brackets, zone and IPv4 mapping removed; IPv6 in lower case); host names lower case. */
export function normalizeHost(address: string): string {
  const bare = address.trim().replace(/^\[|\]$/g, "").replace(/%.*$/, "").toLowerCase().replace(/\.$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
  if (mapped?.[1]) return mapped[1];
  if (isIP(bare) === 6) return expandIpv6(bare);
  return bare;
}

function expandIpv6(a: string): string {
  const [head = "", tail] = a.split("::");
  const parts = (s: string): string[] => (s === "" ? [] : s.split(":"));
  const h = parts(head);
  const t = tail === undefined ? [] : parts(tail);
  const zeros = Array<string>(Math.max(0, 8 - h.length - t.length)).fill("0");
  return [...h, ...(tail === undefined ? [] : zeros), ...t].map((g) => g.replace(/^0+(?=.)/, "")).join(":");
}

/** Why the dispatcher never calls this address (link-local, metadata service, unspecified, multicast), or null. */
export function neverCalledReason(address: string): string | null {
  const host = normalizeHost(address);
  if (METADATA_HOSTS.has(host)) return "is a cloud metadata service";
  const family = isIP(host);
  if (family === 0) return null;
  return NEVER.check(host, family === 4 ? "ipv4" : "ipv6") ? "is a link-local, metadata-service, unspecified or multicast address" : null;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "0:0:0:0:0:0:0:1" || (isIP(host) === 4 && host.startsWith("127."));
}

function defaultPort(protocol: string): number {
  return ({ "mysql:": 3306, "mariadb:": 3306, "nats:": 4222, "tls:": 4222, "http:": 80, "https:": 443 } as Record<string, number>)[protocol] ?? 0;
}

/** host:port of a URL (or a bare host:port), or null when it names none. */
function endpointOfUrl(value: string): Endpoint | null {
  if (value === "") return null;
  try {
    const url = new URL(value.includes("://") ? value : `tcp://${value}`);
    const port = url.port ? Number(url.port) : defaultPort(url.protocol);
    return port > 0 ? { host: normalizeHost(url.hostname), port } : null;
  } catch {
    return null;
  }
}

function ownEndpointsOf(config: RulesConfig): Endpoint[] {
  const urls = [config.provisioning.url, config.analytics.url, config.km.url, config.km.databaseUrl, config.telemetry.otlpEndpoint, ...config.mq.url.split(",")];
  return [
    listener(config.server.bind, config.server.port),
    listener(config.bridge.bind, config.bridge.port),
    listener(config.console.bind, config.console.port),
    listener(config.km.bind, config.km.port),
    ...urls.map((u) => endpointOfUrl(u.trim())).filter((e): e is Endpoint => e !== null),
  ].filter((e) => e.port > 0);
}

function listener(bind: string, port: number): Endpoint {
  const host = normalizeHost(bind);
  return { host: host === "0.0.0.0" || host === "0:0:0:0:0:0:0:0" ? "*" : host, port };
}

type RulesConfig = Pick<Config, "server" | "bridge" | "console" | "km" | "provisioning" | "analytics" | "mq" | "telemetry">;

/** Rules by configuration: a configuration is read once and never changes, and every agent call checks its endpoint. */
const rulesOf = new WeakMap<RulesConfig, AgentEndpointRules>();

/** The rules of a configuration: its listeners and the URLs of what it depends on; this host's interfaces. */
export function agentEndpointRules(config: RulesConfig): AgentEndpointRules {
  let rules = rulesOf.get(config);
  if (!rules) rulesOf.set(config, (rules = endpointRules(config)));
  return rules;
}

function endpointRules(config: RulesConfig): AgentEndpointRules {
  let own: Endpoint[] | undefined;
  return {
    ownEndpoints() {
      // Parsed on first use, not per call: eight URLs per agent call showed in a worker's profile.
      own ??= ownEndpointsOf(config);
      return own;
    },
    isLocal(address) {
      const host = normalizeHost(address);
      if (isLoopback(host)) return true;
      return Object.values(networkInterfaces()).some((list) => (list ?? []).some((i) => normalizeHost(i.address) === host));
    },
  };
}

/** The addresses a driver observed for a server: private ones first. */
export function observedAddresses(server: ObservedServer): string[] {
  const a = (parse(server.addresses) ?? {}) as { private?: unknown; public?: unknown };
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === "string" && s !== "") : []);
  return [...list(a.private), ...list(a.public)];
}

/** The port a driver observed the server's guest serving on, where it reports one (the local cloud does). */
function observedPort(server: ObservedServer): number | null {
  const d = (parse(server.details) ?? {}) as { port?: unknown };
  const port = typeof d.port === "string" ? Number(d.port) : typeof d.port === "number" ? d.port : NaN;
  return Number.isInteger(port) && port > 0 && port <= 65535 ? port : null;
}

function parse(value: unknown): unknown {
  if (typeof value !== "string") return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return null;
  }
}

function isOwnEndpoint(rules: AgentEndpointRules, host: string, port: number): boolean {
  return rules.ownEndpoints().some((e) => e.port === port && (e.host === "*" ? rules.isLocal(host) : e.host === host || (isLoopback(e.host) && isLoopback(host))));
}

export type EndpointCheck = { ok: true; address: string } | { ok: false; violations: FieldViolation[] };

/**
 * Whether the dispatcher may call the agent of `server` at `address:port`; an empty address means the server's first
 * callable observed address. Refused: an address the cloud did not observe for this server, one never called, one of
 * the dispatcher's own endpoints, and — on an address of this host, which servers of the local cloud may share — a
 * port other than the one the driver observed.
 */
export function checkAgentEndpoint(server: ObservedServer, address: string, port: number, rules: AgentEndpointRules): EndpointCheck {
  const observed = observedAddresses(server).filter((a) => neverCalledReason(a) === null);
  const byHost = new Map(observed.map((a) => [normalizeHost(a), a]));
  const violations: FieldViolation[] = [];
  const declared = address === "" ? (observed[0] ?? "") : address;
  const host = normalizeHost(declared);
  const never = declared === "" ? null : neverCalledReason(declared);
  if (never) violations.push({ field: "address", description: `${never}: the dispatcher never calls it` });
  else if (!byHost.has(host)) {
    const known = observed.length > 0 ? observed.join(", ") : "none yet";
    violations.push({ field: "address", description: `must be an address the cloud reports for this server (${known})` });
  } else if (isOwnEndpoint(rules, host, port)) {
    violations.push({ field: "port", description: "is one of the dispatcher's own endpoints: the dispatcher never calls it" });
  } else if (rules.isLocal(host)) {
    const vouched = observedPort(server);
    if (vouched !== null && vouched !== port) violations.push({ field: "port", description: `must be the port the cloud reports for this server on ${declared} (${vouched})` });
  }
  return violations.length > 0 ? { ok: false, violations } : { ok: true, address: byHost.get(host) ?? declared };
}
