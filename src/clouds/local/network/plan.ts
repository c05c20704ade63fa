// What the local cloud's forwarding should be, derived from the records on disk alone: the listeners (a server's
// address, or a static address associated with it, on the server's port), the backend each leads to, the rules that
// judge each connection, and which addresses are in which firewall. Beside it, the generation counter through which
// the driver publishes a change and the forwarder acknowledges it.
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { FirewallRule } from "../../firewall-rules.js";
import { isOurs } from "../processes.js";
import { RecordFiles } from "../records.js";
import { AccountStore, type ServerRecord } from "../store.js";

export interface Listener {
  /** `ip:port` */
  key: string;
  ip: string;
  port: number;
  /** Where an admitted connection goes: the guest's own address, same port. */
  backend: string;
  serverId: string;
}

export interface Plan {
  listeners: Map<string, Listener>;
  /** The ingress rules of each server: its firewalls' rules together. */
  rulesOf: Map<string, FirewallRule[]>;
  /** The addresses of the servers in each firewall (for rules whose peer is a firewall). */
  members: Map<string, Set<string>>;
}

/** What a server in no firewall (in a region without firewalls) lets in: everything from this machine. */
const OPEN: readonly FirewallRule[] = [{ direction: "INGRESS", protocol: "ALL", ports: null, peer: { cidr: "127.0.0.0/8" } }];

/** The addresses a server answers on: its own and the static addresses associated with it. */
export function serverAddresses(r: ServerRecord, files: RecordFiles): string[] {
  if (!r.address) return [];
  const statics = files.all("address").filter((a) => a.serverId === r.id).map((a) => a.ip);
  return [r.address, ...statics];
}

export function planNetwork(accountDir: string): Plan {
  const store = new AccountStore(accountDir);
  const files = new RecordFiles(accountDir);
  const firewalls = new Map(files.all("firewall").map((f) => [f.id, f]));
  const addresses = files.all("address");
  const plan: Plan = { listeners: new Map(), rulesOf: new Map(), members: new Map() };
  for (const id of store.ids()) {
    const r = store.read(id);
    if (!r?.address || !r.backend || r.desired === "TERMINATED") continue;
    const ips = [r.address, ...addresses.filter((a) => a.serverId === r.id).map((a) => a.ip)];
    const rules = (r.firewallIds ?? []).length === 0 ? OPEN : (r.firewallIds ?? []).flatMap((fw) => firewalls.get(fw)?.rules ?? []).filter((rule) => rule.direction === "INGRESS");
    plan.rulesOf.set(r.id, [...rules]);
    for (const fw of r.firewallIds ?? []) {
      const set = plan.members.get(fw) ?? new Set<string>();
      for (const ip of ips) set.add(ip);
      plan.members.set(fw, set);
    }
    // Only a live guest is listened for: a stopped one, or one killed behind the cloud's back, refuses.
    if (r.desired !== "RUNNING" || r.port <= 0 || r.pid === null || !isOurs(r.pid, r.pidStart)) continue;
    // A port no rule opens (to anyone) has no listener at all: a connection to it is refused by the kernel.
    const opened = rules.some((rule) => (rule.protocol === "TCP" || rule.protocol === "ALL") && (!rule.ports || (rule.ports.from <= r.port && r.port <= rule.ports.to)));
    if (!opened) continue;
    for (const ip of ips) plan.listeners.set(`${ip}:${r.port}`, { key: `${ip}:${r.port}`, ip, port: r.port, backend: r.backend, serverId: r.id });
  }
  return plan;
}

export function networkDir(accountDir: string): string {
  return join(accountDir, "network");
}

/** The last generation published (0 before any). */
export function readGeneration(accountDir: string): number {
  try {
    return Number(readFileSync(join(networkDir(accountDir), "generation"), "utf8").trim()) || 0;
  } catch {
    return 0;
  }
}

/** Publishes a change: the next generation, written by atomic rename under the account's generation lock. */
export async function bumpGeneration(accountDir: string, signal: AbortSignal): Promise<number> {
  const store = new AccountStore(accountDir);
  return store.withLock("network-generation", signal, async () => {
    const next = readGeneration(accountDir) + 1;
    writeAtomic(join(networkDir(accountDir), "generation"), `${next}\n`);
    return next;
  });
}

/** What the forwarder last applied, and the listeners it could not open. */
export interface Applied {
  generation: number;
  pid: number;
  at: string;
  failures: Array<{ listener: string; serverId: string; code: string }>;
}

export function readApplied(accountDir: string): Applied | null {
  try {
    return JSON.parse(readFileSync(join(networkDir(accountDir), "applied.json"), "utf8")) as Applied;
  } catch {
    return null;
  }
}

export function writeApplied(accountDir: string, applied: Applied): void {
  writeAtomic(join(networkDir(accountDir), "applied.json"), `${JSON.stringify(applied)}\n`, false);
}

/** Writes by rename; creates the directory only when asked (the forwarder must never re-create a removed one). */
export function writeAtomic(path: string, content: string, create = true): void {
  if (create) mkdirSync(join(path, ".."), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, path);
}
