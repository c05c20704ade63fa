// In-memory resource services for the fake cloud of test/servers: firewalls, static addresses, key pairs and tags,
// idempotent by client token like a real provider's, with changes that become visible only after `steps` reads (as
// a real cloud's do), per-call failure injection, and resources a test can plant or remove behind the dispatcher.
import { DriverError, type ServerRef } from "../../src/clouds/calls.js";
import { sameRule, type FirewallRule } from "../../src/clouds/firewall-rules.js";
import type { AddressObservation, DriverServices, FirewallObservation, KeyPairObservation, ResourceObservation, ResourceType } from "../../src/clouds/resources.js";
import { parsePublicKey, sha256Fingerprint } from "../../src/clouds/ssh-keys.js";
import type { FakeCloud } from "../servers/fake-driver.js";

type Any = FirewallObservation | AddressObservation | KeyPairObservation;

interface Entry {
  account: string;
  type: ResourceType;
  obs: Any;
  /** Reads left before `next` becomes what get() shows. */
  lag: number;
  next: Any | null | "gone";
}

export interface FakeResources {
  entries: Map<string, Entry>;
  calls: string[];
  /** Reads before a change shows (default 1). */
  steps: number;
  /** Thrown by the next call whose name starts with the key, once. */
  failNext: Map<string, DriverError>;
  plant(account: string, type: ResourceType, o: Partial<Any> & { providerId: string }): void;
  remove(providerId: string): void;
}

export function withFakeResources(cloud: FakeCloud): FakeResources {
  let n = 0;
  const entries = new Map<string, Entry>();
  const calls: string[] = [];
  const f: FakeResources = {
    entries,
    calls,
    steps: 1,
    failNext: new Map(),
    plant(account, type, o) {
      entries.set(o.providerId, { account, type, obs: base(type, { regionId: "r1", ...o } as Partial<Any> & { providerId: string; regionId: string }), lag: 0, next: null });
    },
    remove(providerId) {
      entries.delete(providerId);
    },
  };
  const record = (name: string): void => {
    calls.push(name);
    for (const [prefix, err] of f.failNext) {
      if (name.startsWith(prefix)) {
        f.failNext.delete(prefix);
        throw err;
      }
    }
  };
  const view = (e: Entry): Any | null => {
    if (e.next !== null && e.lag-- <= 0) {
      if (e.next === "gone") {
        entries.delete(e.obs.providerId);
        return null;
      }
      e.obs = e.next;
      e.next = null;
    }
    return structuredClone(e.obs);
  };
  const entry = (account: string, type: ResourceType, ref: ServerRef): Entry => {
    const e = entries.get(ref.providerId);
    if (!e || e.account !== account || e.type !== type) throw new DriverError("NOT_FOUND", `no ${type} ${ref.providerId}`);
    return e;
  };
  /** Schedules a change: what get() shows after `steps` more reads. */
  const change = (e: Entry, to: Any | "gone"): void => {
    const from = e.next && e.next !== "gone" ? e.next : e.obs;
    e.next = to === "gone" ? "gone" : { ...structuredClone(from), ...to };
    e.lag = f.steps;
  };
  const byToken = (account: string, type: ResourceType, token: string): Entry | undefined => [...entries.values()].find((e) => e.account === account && e.type === type && e.obs.clientToken === token);
  const create = (account: string, type: ResourceType, o: Partial<Any> & { regionId: string; name: string; clientToken: string; tags: Record<string, string> }): Any => {
    const existing = byToken(account, type, o.clientToken);
    if (existing) return structuredClone(existing.next && existing.next !== "gone" ? existing.next : existing.obs);
    const providerId = `${type}-${++n}`;
    const obs = base(type, { ...o, providerId });
    entries.set(providerId, { account, type, obs: { ...obs }, lag: f.steps, next: null });
    return structuredClone(obs);
  };
  const common = (type: ResourceType) => ({
    async get(t: { account: { id: string } }, ref: ServerRef) {
      record(`${type}.get ${ref.providerId}`);
      const e = entries.get(ref.providerId);
      return e && e.account === t.account.id && e.type === type ? (view(e) as never) : null;
    },
    async list(t: { account: { id: string } }, regionId: string) {
      record(`${type}.list ${regionId}`);
      return [...entries.values()].filter((e) => e.account === t.account.id && e.type === type && e.obs.regionId === regionId).map(view).filter((o) => o !== null) as never[];
    },
    async delete(t: { account: { id: string } }, ref: ServerRef) {
      record(`${type}.delete ${ref.providerId}`);
      const e = entries.get(ref.providerId);
      if (!e || e.account !== t.account.id) return;
      if (type === "address" && (e.obs as AddressObservation).serverProviderId) throw new DriverError("CONFLICT", `address ${ref.providerId} is associated`);
      change(e, "gone");
    },
  });
  /** A server of the fake cloud (tags on servers act on it directly). */
  const serverOf = (providerId: string) => {
    const s = cloud.servers.get(providerId);
    if (!s) throw new DriverError("NOT_FOUND", `no server ${providerId}`);
    return s;
  };
  const services: DriverServices = {
    firewalls: {
      ...common("firewall"),
      support: { directions: ["INGRESS", "EGRESS"], protocols: ["TCP", "UDP", "ICMP", "ALL"], firewallPeers: true, ipv6: true },
      async create(t, req) {
        record(`firewall.create ${req.clientToken}`);
        return create(t.account.id, "firewall", { ...req, description: req.description, rules: [] } as never) as FirewallObservation;
      },
      async authorize(t, ref, rule) {
        record(`firewall.authorize ${ref.providerId}`);
        const e = entry(t.account.id, "firewall", ref);
        const now = pendingView<FirewallObservation>(e);
        if (!now.rules.some((r) => sameRule(r, rule))) change(e, { ...now, rules: [...now.rules, rule] });
      },
      async revoke(t, ref, rule) {
        record(`firewall.revoke ${ref.providerId}`);
        const e = entry(t.account.id, "firewall", ref);
        const now = pendingView<FirewallObservation>(e);
        change(e, { ...now, rules: now.rules.filter((r: FirewallRule) => !sameRule(r, rule)) });
      },
      async setServerFirewalls(_t, server, ids) {
        record(`firewall.set ${server.providerId} ${ids.join(",")}`);
        const s = cloud.servers.get(server.providerId);
        if (!s) throw new DriverError("NOT_FOUND", `no server ${server.providerId}`);
        s.obs.firewallIds = [...ids];
      },
    },
    addresses: {
      ...common("address"),
      async allocate(t, req) {
        record(`address.allocate ${req.clientToken}`);
        return create(t.account.id, "address", { ...req, ip: `198.51.100.${n + 1}`, serverProviderId: null, state: "ALLOCATED" } as never) as AddressObservation;
      },
      async associate(t, ref, server) {
        record(`address.associate ${ref.providerId} ${server.providerId}`);
        const e = entry(t.account.id, "address", ref);
        const now = pendingView(e) as AddressObservation;
        if (now.serverProviderId && now.serverProviderId !== server.providerId) throw new DriverError("CONFLICT", `address ${ref.providerId} is associated with another server`);
        change(e, { ...now, state: "ASSOCIATED", serverProviderId: server.providerId });
      },
      async disassociate(t, ref) {
        record(`address.disassociate ${ref.providerId}`);
        const e = entry(t.account.id, "address", ref);
        change(e, { ...(pendingView(e) as AddressObservation), state: "ALLOCATED", serverProviderId: null });
      },
    },
    keyPairs: {
      ...common("key_pair"),
      async importKey(t, req) {
        record(`key_pair.import ${req.clientToken}`);
        const parsed = parsePublicKey(req.publicKey);
        if (typeof parsed === "string") throw new DriverError("INVALID", parsed);
        return create(t.account.id, "key_pair", { ...req, fingerprint: sha256Fingerprint(parsed.blob), keyType: parsed.keyType } as never) as KeyPairObservation;
      },
      async create() {
        throw new DriverError("UNSUPPORTED", "the fake cloud imports keys only");
      },
    },
    tags: {
      async set(t, ref, tags) {
        record(`tags.set ${ref.providerId}`);
        if (ref.type === "server") return void Object.assign(serverOf(ref.providerId).obs, { tags: { ...serverOf(ref.providerId).obs.tags, ...tags } });
        const e = entry(t.account.id, ref.type as ResourceType, ref);
        change(e, { ...pendingView(e), tags: { ...pendingView(e).tags, ...tags } });
      },
      async remove(t, ref, keys) {
        record(`tags.remove ${ref.providerId}`);
        if (ref.type === "server") {
          const s = serverOf(ref.providerId);
          s.obs.tags = Object.fromEntries(Object.entries(s.obs.tags ?? {}).filter(([k]) => !keys.includes(k)));
          return;
        }
        const e = entry(t.account.id, ref.type as ResourceType, ref);
        const next = { ...pendingView(e).tags };
        for (const k of keys) delete next[k];
        change(e, { ...pendingView(e), tags: next });
      },
    },
  };
  (cloud as { services?: DriverServices }).services = services;
  return f;
}

/** What the entry will show once its pending change lands. */
function pendingView<T extends Any>(e: Entry): T {
  return structuredClone((e.next && e.next !== "gone" ? e.next : e.obs) as T);
}

function base(type: ResourceType, o: Partial<Any> & { providerId: string; regionId: string }): Any {
  const common: ResourceObservation = { providerId: o.providerId, regionId: o.regionId, name: o.name ?? o.providerId, state: "AVAILABLE", tags: { ...(o.tags ?? {}) }, createdAt: new Date(), clientToken: o.clientToken ?? null, details: {} };
  if (type === "firewall") return { ...common, state: "AVAILABLE", description: "", rules: [], ...o } as FirewallObservation;
  if (type === "address") return { ...common, state: "ALLOCATED", ip: "198.51.100.250", serverProviderId: null, ...o } as AddressObservation;
  return { ...common, state: "AVAILABLE", fingerprint: "SHA256:x", keyType: "ssh-ed25519", ...o } as KeyPairObservation;
}
