// The local cloud's firewalls: records of ingress rules that its forwarder enforces on every server in them (a
// connection to a server's address is admitted only when a rule of one of its firewalls covers its port and source).
// Each region has a `default` firewall, made on first need, that servers launched without firewalls are in: it lets
// in everything from this machine (127.0.0.0/8), so the quick start's servers answer as before until a user says
// otherwise. TCP only (guests serve TCP; the forwarder forwards nothing else), ingress only (a guest is a process of
// this machine: nothing can hold its outgoing connections without root).
import { createHash } from "node:crypto";
import { DriverError, type DriverCallOptions, type DriverTarget, type ServerRef } from "../driver.js";
import { ruleKey, ruleViolations, sameRule, type FirewallRule } from "../firewall-rules.js";
import { checkTags, type FirewallObservation, type FirewallService, type FirewallSupport } from "../resources.js";
import { runCall } from "./call.js";
import { checkName, requireCapability, withNetworkLock, type LocalContext } from "./context.js";
import { newRecordId, type FirewallRecord } from "./records.js";
import { isServerId } from "./store.js";

export const LOCAL_FIREWALL_SUPPORT: FirewallSupport = { directions: ["INGRESS"], protocols: ["TCP", "ALL"], firewallPeers: true, ipv6: false };
export const DEFAULT_FIREWALL = "default";

type Context = (target: DriverTarget) => Promise<LocalContext>;

export function observeFirewall(f: FirewallRecord): FirewallObservation {
  return { providerId: f.id, regionId: f.regionId, name: f.name, state: "AVAILABLE", tags: { ...f.tags }, createdAt: new Date(f.createdAt), clientToken: f.clientToken, details: {}, description: f.description, rules: f.rules.map((r) => structuredClone(r)) };
}

/** The region's default firewall's id: the same in every process, so concurrent first uses make one. */
export function defaultFirewallId(regionId: string): string {
  return `fw-${createHash("sha256").update(`default-firewall:${regionId}`).digest("hex").slice(0, 16)}`;
}

/** The region's default firewall, made when it does not exist yet. Call under the network lock. */
export function ensureDefaultFirewall(ctx: LocalContext, regionId: string): FirewallRecord {
  const id = defaultFirewallId(regionId);
  const existing = ctx.files.read("firewall", id);
  if (existing) return existing;
  const record: FirewallRecord = {
    id,
    regionId,
    name: DEFAULT_FIREWALL,
    description: "servers launched without firewalls are in it; lets in everything from this machine",
    rules: [{ direction: "INGRESS", protocol: "ALL", ports: null, peer: { cidr: "127.0.0.0/8" }, description: "this machine" }],
    tags: {},
    createdAt: new Date().toISOString(),
    clientToken: null,
  };
  ctx.files.write("firewall", record);
  return record;
}

/** The firewall in the region, or NOT_FOUND. */
function find(ctx: LocalContext, regionId: string, id: string): FirewallRecord {
  const f = ctx.files.read("firewall", id);
  if (!f || f.regionId !== regionId) throw new DriverError("NOT_FOUND", `the local cloud has no firewall "${id.slice(0, 64)}" in region "${regionId.slice(0, 64)}"`);
  return f;
}

/** INVALID naming the first thing wrong with the rule; UNSUPPORTED for what the local cloud cannot enforce. */
export function checkRule(ctx: LocalContext, regionId: string, rule: FirewallRule): void {
  const [bad] = ruleViolations(rule);
  if (bad) throw new DriverError("INVALID", `firewall rule ${bad.field}: ${bad.description}`);
  if (!LOCAL_FIREWALL_SUPPORT.directions.includes(rule.direction)) throw new DriverError("UNSUPPORTED", "the local cloud's firewalls have ingress rules only");
  if (!LOCAL_FIREWALL_SUPPORT.protocols.includes(rule.protocol)) throw new DriverError("UNSUPPORTED", `the local cloud's firewalls filter TCP only (rules for TCP or ALL), not ${rule.protocol}`);
  if ("cidr" in rule.peer && rule.peer.cidr.includes(":")) throw new DriverError("UNSUPPORTED", "the local cloud's servers have IPv4 loopback addresses only");
  if ("firewallId" in rule.peer) find(ctx, regionId, rule.peer.firewallId);
}

export function localFirewalls(contextOf: Context): FirewallService {
  /** Changes the firewall under the network lock and returns once the forwarder applies it. */
  async function change(target: DriverTarget, ref: ServerRef, opts: DriverCallOptions, edit: (ctx: LocalContext, f: FirewallRecord) => boolean): Promise<void> {
    await runCall(opts, async (signal) => {
      const ctx = await contextOf(target);
      requireCapability(ctx, ref.regionId, "firewalls");
      const changed = await withNetworkLock(ctx, signal, async () => {
        const f = find(ctx, ref.regionId, ref.providerId);
        if (!edit(ctx, f)) return false;
        ctx.files.write("firewall", f);
        return true;
      });
      if (changed) await ctx.net.changed(signal);
    });
  }

  return {
    support: LOCAL_FIREWALL_SUPPORT,

    create: (target, request, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        requireCapability(ctx, request.regionId, "firewalls");
        checkName("firewall", request.name);
        if (request.description.length > 255) throw new DriverError("INVALID", "a firewall description has at most 255 characters");
        checkTags(request.tags);
        if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
        const { id } = ctx.store.bindToken(request.clientToken, newRecordId("firewall"), "firewall");
        return withNetworkLock(ctx, signal, async () => {
          const existing = ctx.files.read("firewall", id);
          if (existing) return observeFirewall(existing);
          ensureDefaultFirewall(ctx, request.regionId);
          const clash = ctx.files.all("firewall").find((f) => f.regionId === request.regionId && f.name === request.name);
          if (clash) throw new DriverError("CONFLICT", `region "${request.regionId}" already has a firewall named "${request.name}" (${clash.id})`);
          const record: FirewallRecord = { id, regionId: request.regionId, name: request.name, description: request.description, rules: [], tags: { ...request.tags }, createdAt: new Date().toISOString(), clientToken: request.clientToken };
          ctx.files.write("firewall", record);
          return observeFirewall(record);
        });
      }),

    get: (target, ref, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        const f = ctx.files.read("firewall", ref.providerId);
        return f && f.regionId === ref.regionId ? observeFirewall(f) : null;
      }),

    list: (target, regionId, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        requireCapability(ctx, regionId, "firewalls");
        // The default firewall exists from the account's first look, as a provider's default group does.
        await withNetworkLock(ctx, signal, async () => ensureDefaultFirewall(ctx, regionId));
        return ctx.files.all("firewall").filter((f) => f.regionId === regionId).map(observeFirewall);
      }),

    delete: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        await withNetworkLock(ctx, signal, async () => {
          const f = ctx.files.read("firewall", ref.providerId);
          if (!f || f.regionId !== ref.regionId) return;
          if (f.id === defaultFirewallId(f.regionId)) throw new DriverError("CONFLICT", "the default firewall cannot be deleted");
          const user = ctx.store.ids().map((id) => ctx.store.read(id)).find((r) => r && r.desired !== "TERMINATED" && (r.firewallIds ?? []).includes(f.id));
          if (user) throw new DriverError("CONFLICT", `firewall ${f.id} is in use by server ${user.id}`);
          const referrer = ctx.files.all("firewall").find((o) => o.id !== f.id && o.rules.some((r) => "firewallId" in r.peer && r.peer.firewallId === f.id));
          if (referrer) throw new DriverError("CONFLICT", `firewall ${f.id} is named by a rule of firewall ${referrer.id}`);
          ctx.files.remove("firewall", f.id);
        });
      }),

    authorize: (target, ref, rule, opts) =>
      change(target, ref, opts, (ctx, f) => {
        checkRule(ctx, ref.regionId, rule);
        if (f.rules.some((r) => sameRule(r, rule))) return false;
        f.rules.push(structuredClone(rule));
        return true;
      }),

    revoke: (target, ref, rule, opts) =>
      change(target, ref, opts, (_ctx, f) => {
        const kept = f.rules.filter((r) => ruleKey(r) !== ruleKey(rule));
        if (kept.length === f.rules.length) return false;
        f.rules = kept;
        return true;
      }),

    setServerFirewalls: (target, server, firewallIds, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        requireCapability(ctx, server.regionId, "firewalls");
        if (firewallIds.length === 0) throw new DriverError("INVALID", "a server is in at least one firewall");
        const ids = [...new Set(firewallIds)];
        if (!isServerId(server.providerId)) throw new DriverError("NOT_FOUND", `the local cloud has no server "${server.providerId.slice(0, 64)}"`);
        await ctx.store.withLock(server.providerId, signal, () =>
          withNetworkLock(ctx, signal, async () => {
            for (const id of ids) find(ctx, server.regionId, id);
            const r = ctx.store.read(server.providerId);
            if (!r || r.regionId !== server.regionId) throw new DriverError("NOT_FOUND", `the local cloud has no server "${server.providerId.slice(0, 64)}" in region "${server.regionId.slice(0, 64)}"`);
            if (r.desired === "TERMINATED") throw new DriverError("CONFLICT", `server ${r.id} is terminated`);
            if (!r.address) throw new DriverError("CONFLICT", `server ${r.id} was launched without an address of its own, so no firewall can apply to it`);
            ctx.store.write({ ...r, firewallIds: ids });
          }),
        );
        await ctx.net.changed(signal);
      }),
  };
}
