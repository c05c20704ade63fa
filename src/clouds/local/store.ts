// The local cloud's records on disk, which are its only memory: any process (worker, monitor) answers from them.
// Per account directory: <serverId>/state.json (replaced by atomic rename) beside the guest's root directory
// <serverId>/root, locks/<id>.lock (created with wx, held while one operation changes a server or the network),
// tokens/<sha256(client token)> (linked exclusively: one server per token).
import { createHash, randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DriverError } from "../driver.js";
import { isOurs, processStart } from "./processes.js";

/** What the account asked of a server; the process itself says whether it is really up. */
export type Desired = "RUNNING" | "STOPPED" | "TERMINATED";
/** An operation under way (only believed while its lock is held). */
export type Phase = "STOPPING" | "REBOOTING" | "TERMINATING";

export interface ServerRecord {
  id: string;
  name: string;
  regionId: string;
  dataCenter: string;
  productId: string;
  imageId: string;
  clientToken: string;
  desired: Desired;
  phase: Phase | null;
  /** Leader of the server's process group, with its start time (clock ticks after boot) against pid reuse. */
  pid: number | null;
  pidStart: string | null;
  port: number;
  launchedAt: string;
  startedAt: string | null;
  terminatedAt: string | null;
  boots: number;
  // Below: absent in records written before the local cloud had networking (read as null / empty).
  /** The server's own loopback address (what it answers on, through its firewalls), or null: it has none. */
  address?: string | null;
  /** The loopback address its guest binds, behind the local cloud's forwarding; never shown. */
  backend?: string | null;
  /** Provider ids of the firewalls it is in. */
  firewallIds?: string[];
  keyPairName?: string | null;
  tags?: Record<string, string>;
  /** The network generation its current boot was published in: it is reachable once that is applied. */
  netGeneration?: number;
  /** Whether its first boot ran a user data script. */
  userData?: boolean;
  /** Launched from one of the account's own images: the catalog image whose command it runs (imageId names the own image). */
  bootImageId?: string;
}

const SERVER_ID = /^ls-[0-9a-f]{16}$/;
/** A lock older than this is left over by a process that died holding it. */
const LOCK_STALE_MS = 120_000;

export function newServerId(): string {
  return `ls-${randomBytes(8).toString("hex")}`;
}

export function isServerId(id: string): boolean {
  return SERVER_ID.test(id);
}

export class AccountStore {
  constructor(readonly dir: string) {}

  serverDir(id: string): string {
    if (!isServerId(id)) throw new DriverError("NOT_FOUND", `the local cloud has no server "${id}"`);
    return join(this.dir, id);
  }

  /** The guest's root directory: its HOME and working directory, what it owns. */
  rootDir(id: string): string {
    return join(this.serverDir(id), "root");
  }

  /** The state file's path (what claims of the server's address name as their owner). */
  statePath(id: string): string {
    return join(this.serverDir(id), "state.json");
  }

  read(id: string): ServerRecord | null {
    if (!isServerId(id)) return null;
    try {
      return JSON.parse(readFileSync(join(this.serverDir(id), "state.json"), "utf8")) as ServerRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  write(record: ServerRecord): void {
    const dir = this.serverDir(record.id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.state.${process.pid}.${randomBytes(4).toString("hex")}`);
    writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, join(dir, "state.json"));
  }

  /** Every server id of the account with a state file. */
  ids(): string[] {
    try {
      return readdirSync(this.dir).filter(isServerId);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
  }

  /** The server id a client token is already bound to, if any. */
  tokenOwner(clientToken: string): string | null {
    try {
      return readFileSync(this.tokenPath(clientToken), "utf8").trim() || null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /** Servers' tokens hash the token alone; other resources' hash `<type>:<token>`, so one token names one of each. */
  private tokenPath(clientToken: string, type?: string): string {
    return join(this.dir, "tokens", createHash("sha256").update(type ? `${type}:${clientToken}` : clientToken).digest("hex"));
  }

  /**
   * The id a client token is bound to, binding it to `candidate` when the token is new. The binding is a file linked
   * into place, so two creates with one token agree on one id whoever comes first.
   */
  bindToken(clientToken: string, candidate: string, type?: string): { id: string; fresh: boolean } {
    mkdirSync(join(this.dir, "tokens"), { recursive: true, mode: 0o700 });
    const path = this.tokenPath(clientToken, type);
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
    writeFileSync(tmp, candidate, { mode: 0o600, flag: "wx" });
    try {
      linkSync(tmp, path);
      return { id: candidate, fresh: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      return { id: readFileSync(path, "utf8").trim(), fresh: false };
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  lockPath(id: string): string {
    return join(this.dir, "locks", `${id}.lock`);
  }

  /** Whether a live process holds the server's lock (an operation is under way). */
  locked(id: string): boolean {
    return lockHolder(this.lockPath(id)) !== null;
  }

  /** Runs `fn` holding the lock named `id` (a server's id, or "network"); waits for another holder until `signal` aborts. */
  withLock<T>(id: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    mkdirSync(join(this.dir, "locks"), { recursive: true, mode: 0o700 });
    return withFileLock(this.lockPath(id), signal, fn);
  }

  /** Removes a terminated server's last trace (its state file), after which the cloud no longer knows it. */
  forget(id: string): void {
    rmSync(this.serverDir(id), { recursive: true, force: true });
  }

  /** Removes everything of the server but its state file (a terminated server stays listed for a while). */
  cleanWorkDir(id: string): void {
    const dir = this.serverDir(id);
    for (const entry of readdirSync(dir)) if (entry !== "state.json") rmSync(join(dir, entry), { recursive: true, force: true });
  }
}

/**
 * Runs `fn` holding the lock file at `path` (created with wx, naming this process); waits while a live process holds
 * it, breaks one whose holder died, until `signal` aborts.
 */
export async function withFileLock<T>(path: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  const token = `${process.pid} ${processStart(process.pid) ?? "-"} ${randomBytes(6).toString("hex")}`;
  for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
    signal.throwIfAborted();
    try {
      writeFileSync(path, token, { flag: "wx", mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    if (lockHolder(path) === null) {
      // Left by a process that died holding it: move it aside (only one breaker's rename succeeds) and retry.
      try {
        renameSync(path, `${path}.stale.${randomBytes(4).toString("hex")}`);
      } catch {
        /* someone else broke or released it */
      }
      continue;
    }
    await sleep(wait, undefined, { signal });
  }
  try {
    return await fn();
  } finally {
    try {
      if (readFileSync(path, "utf8") === token) rmSync(path, { force: true });
    } catch {
      /* already gone */
    }
  }
}

/** The pid holding the lock file at `path`, or null when there is none or its holder is gone or it is stale. */
function lockHolder(path: string): number | null {
  let content: string;
  let mtimeMs: number;
  try {
    content = readFileSync(path, "utf8");
    mtimeMs = statSync(path).mtimeMs;
  } catch {
    return null;
  }
  const [pidText, start] = content.split(" ");
  const pid = Number(pidText);
  // Empty for the instant between its creation and its write.
  if (!Number.isInteger(pid) || pid <= 0) return Date.now() - mtimeMs > 1_000 ? null : 0;
  if (Date.now() - mtimeMs > LOCK_STALE_MS) return null;
  return isOurs(pid, start === undefined || start === "-" ? null : start) ? pid : null;
}
