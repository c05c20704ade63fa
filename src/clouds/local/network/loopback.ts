// The local cloud's addresses: Linux routes all of 127.0.0.0/8 to the loopback interface, so every server gets a
// loopback address of its own — 127.64.0.0/10 for what it answers on, the matching 127.128.0.0/10 address for its
// guest to bind behind the forwarding, 127.192.0.0/10 for static addresses — and any user may bind them, no root
// needed. Addresses are claimed machine-wide (files under the temp directory), so two data directories, or two
// people's tests, never hand out the same one while it is in use.
import { randomBytes, randomInt } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DriverError } from "../../driver.js";

export type Pool = "server" | "static";

/** Second octets of each pool (the third and fourth are random, avoiding .0 and .255 for readability). */
const POOLS: Readonly<Record<Pool, readonly [number, number]>> = { server: [64, 127], static: [192, 254] };
/** A server's guest binds the address 64 above its own in the second octet. */
const BACKEND_OFFSET = 64;
/** A claim whose owner file is missing is taken over only after this (its owner may be about to write it). */
const CLAIM_GRACE_MS = 60_000;

export function claimsDir(): string {
  return join(tmpdir(), "dispatcher-local-cloud", "address-claims");
}

/** The address a server's guest binds, behind its own. */
export function backendOf(address: string): string {
  const [a, b, c, d] = address.split(".").map(Number);
  if (a !== 127 || b === undefined || b < POOLS.server[0] || b > POOLS.server[1]) throw new Error(`${address} is not a server address`);
  return `127.${b + BACKEND_OFFSET}.${c}.${d}`;
}

/**
 * Claims a free address of the pool for `owner` (the path of the record that holds it): tries random addresses until
 * one is not claimed. UNAVAILABLE when none is found (it would take millions of servers).
 */
export function claimAddress(pool: Pool, owner: string): string {
  const [lo, hi] = POOLS[pool];
  for (let attempt = 0; attempt < 64; attempt++) {
    const ip = `127.${randomInt(lo, hi + 1)}.${randomInt(1, 255)}.${randomInt(1, 255)}`;
    if (claim(ip, owner)) return ip;
  }
  throw new DriverError("UNAVAILABLE", `the local cloud found no free ${pool} address`);
}

/** Claims `ip` for `owner`; false when someone else holds it. Claiming one's own claim again is true. */
export function claim(ip: string, owner: string): boolean {
  const dir = claimsDir();
  mkdirSync(dir, { recursive: true, mode: 0o1777 });
  const path = join(dir, ip);
  try {
    writeFileSync(path, owner, { flag: "wx", mode: 0o644 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const holder = readClaim(path);
  if (holder === owner) return true;
  if (holder !== null && !stale(path, holder)) return false;
  // The owner's record is gone: take the claim over by rename (atomic), then check no one else did the same.
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
  writeFileSync(tmp, owner, { mode: 0o644 });
  renameSync(tmp, path);
  return readClaim(path) === owner;
}

/** Gives up `owner`'s claim of `ip` (someone else's is left alone). */
export function releaseClaim(ip: string, owner: string): void {
  const path = join(claimsDir(), ip);
  if (readClaim(path) === owner) rmSync(path, { force: true });
}

function readClaim(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

function stale(path: string, holder: string): boolean {
  try {
    statSync(holder);
    return false;
  } catch {
    try {
      return Date.now() - statSync(path).mtimeMs > CLAIM_GRACE_MS;
    } catch {
      return true;
    }
  }
}

export type LoopbackCheck = { usable: true } | { usable: false; reason: string };

let checked: Promise<LoopbackCheck> | undefined;

/**
 * Whether this machine lets the local cloud give servers addresses of their own: a listener on an address of each
 * range must bind (Linux: always; macOS only has 127.0.0.1 unless aliases are added). Asked once per process.
 */
export function checkLoopback(): Promise<LoopbackCheck> {
  checked ??= (async (): Promise<LoopbackCheck> => {
    for (const ip of ["127.64.0.1", "127.128.0.1", "127.192.0.1"]) {
      const why = await bindable(ip);
      if (why) return { usable: false, reason: `cannot bind ${ip} (${why})` };
    }
    return { usable: true };
  })();
  return checked;
}

function bindable(ip: string): Promise<string | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ host: ip, port: 0, exclusive: true }, () => server.close(() => resolve(null)));
  });
}
