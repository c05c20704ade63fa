// The local cloud's firewalls, static addresses and key pairs on disk: one JSON file each under the account directory
// (firewalls/, addresses/, key-pairs/), replaced by atomic rename like a server's state, so any process answers from
// them. Changes that touch the network happen under the account's "network" lock (src/clouds/local/network/).
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { FirewallRule } from "../firewall-rules.js";

export interface FirewallRecord {
  id: string;
  regionId: string;
  name: string;
  description: string;
  rules: FirewallRule[];
  tags: Record<string, string>;
  createdAt: string;
  clientToken: string | null;
}

export interface AddressRecord {
  id: string;
  regionId: string;
  name: string;
  ip: string;
  /** The server it is associated with, or null. */
  serverId: string | null;
  tags: Record<string, string>;
  createdAt: string;
  clientToken: string | null;
}

export interface KeyPairRecord {
  id: string;
  regionId: string;
  name: string;
  /** The OpenSSH public key line as imported or made (public: no secret here). */
  publicKey: string;
  keyType: string;
  fingerprint: string;
  tags: Record<string, string>;
  createdAt: string;
  clientToken: string | null;
}

interface Kinds {
  firewall: FirewallRecord;
  address: AddressRecord;
  key_pair: KeyPairRecord;
}
export type RecordKind = keyof Kinds;

const DIRS: Readonly<Record<RecordKind, string>> = { firewall: "firewalls", address: "addresses", key_pair: "key-pairs" };
const PREFIX: Readonly<Record<RecordKind, string>> = { firewall: "fw-", address: "eip-", key_pair: "kp-" };
const ID = /^(fw|eip|kp)-[0-9a-f]{16}$/;

export function newRecordId(kind: RecordKind): string {
  return `${PREFIX[kind]}${randomBytes(8).toString("hex")}`;
}

export class RecordFiles {
  constructor(readonly accountDir: string) {}

  path(kind: RecordKind, id: string): string {
    return join(this.accountDir, DIRS[kind], `${id}.json`);
  }

  /** The record, or null for an unknown (or malformed) id. */
  read<K extends RecordKind>(kind: K, id: string): Kinds[K] | null {
    if (!ID.test(id) || !id.startsWith(PREFIX[kind])) return null;
    try {
      return JSON.parse(readFileSync(this.path(kind, id), "utf8")) as Kinds[K];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  write<K extends RecordKind>(kind: K, record: Kinds[K]): void {
    const dir = join(this.accountDir, DIRS[kind]);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.${record.id}.${process.pid}.${randomBytes(4).toString("hex")}`);
    writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.path(kind, record.id));
  }

  remove(kind: RecordKind, id: string): void {
    rmSync(this.path(kind, id), { force: true });
  }

  /** Every record of the kind (in any region). */
  all<K extends RecordKind>(kind: K): Array<Kinds[K]> {
    let names: string[];
    try {
      names = readdirSync(join(this.accountDir, DIRS[kind]));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const out: Array<Kinds[K]> = [];
    for (const name of names) {
      if (!name.endsWith(".json")) continue;
      const r = this.read(kind, name.slice(0, -5));
      if (r) out.push(r);
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }
}
