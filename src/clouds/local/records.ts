// The local cloud's firewalls, static addresses, key pairs, volumes, snapshots, images and buckets on disk: one JSON
// file each under the account directory (firewalls/, addresses/, key-pairs/, volumes/ …), replaced by atomic rename
// like a server's state, so any process answers from them. Changes that touch the network happen under the account's "network" lock (src/clouds/local/network/).
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

/** A volume: its content is the directory storage/<id>/ (src/clouds/local/storage-content.ts). */
export interface VolumeRecord {
  id: string;
  regionId: string;
  name: string;
  dataCenter: string;
  sizeGiB: number;
  volumeType: string;
  snapshotId: string | null;
  /** CREATING while its content is being copied from a snapshot (believed only while its lock is held). */
  state: "CREATING" | "AVAILABLE";
  /** The server it is attached to and the device it has there; stale once that server is terminated. */
  attachment: { serverId: string; device: string } | null;
  tags: Record<string, string>;
  createdAt: string;
  clientToken: string | null;
}

export interface SnapshotRecord {
  id: string;
  regionId: string;
  name: string;
  description: string;
  volumeId: string;
  sizeGiB: number;
  state: "PENDING" | "COMPLETED";
  tags: Record<string, string>;
  createdAt: string;
  clientToken: string | null;
}

export interface ImageRecord {
  id: string;
  regionId: string;
  name: string;
  description: string;
  /** The server it was made from, and the catalog image whose command that server ran (and a server launched from this one runs). */
  serverId: string;
  baseImageId: string;
  platform: string;
  state: "PENDING" | "AVAILABLE";
  /** What the copy holds once made (what a cloud bills an image for); absent while PENDING and on older records. */
  sizeBytes?: number;
  tags: Record<string, string>;
  createdAt: string;
  clientToken: string | null;
}

export interface BucketRecord {
  id: string;
  regionId: string;
  name: string;
  tags: Record<string, string>;
  createdAt: string;
  clientToken: string | null;
}

interface Kinds {
  firewall: FirewallRecord;
  address: AddressRecord;
  key_pair: KeyPairRecord;
  volume: VolumeRecord;
  snapshot: SnapshotRecord;
  image: ImageRecord;
  bucket: BucketRecord;
}
export type RecordKind = keyof Kinds;

const DIRS: Readonly<Record<RecordKind, string>> = { firewall: "firewalls", address: "addresses", key_pair: "key-pairs", volume: "volumes", snapshot: "snapshots", image: "images", bucket: "buckets" };
const PREFIX: Readonly<Record<RecordKind, string>> = { firewall: "fw-", address: "eip-", key_pair: "kp-", volume: "vol-", snapshot: "snap-", image: "img-", bucket: "bkt-" };
const ID = /^(fw|eip|kp|vol|snap|img|bkt)-[0-9a-f]{16}$/;

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
