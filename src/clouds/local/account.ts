// The local cloud's one account: a secret generated on first use in <dataDir>/local-cloud/account.key (0600), which
// credentials must carry as `key`. Servers live under a directory named by a fingerprint of that key, never the key.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { join } from "node:path";
import { DriverError } from "../driver.js";

export function cloudDir(dataDir: string): string {
  return join(dataDir, "local-cloud");
}

/** The account secret, created (atomically, 0600) when this data directory has none yet. */
export function ensureAccountKey(dataDir: string): string {
  const dir = cloudDir(dataDir);
  const path = join(dir, "account.key");
  try {
    return readKey(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Written aside, then linked into place: link fails when another process won the race, and nobody ever reads a
  // half-written key.
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
  writeFileSync(tmp, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600, flag: "wx" });
  try {
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
  return readKey(path);
}

function readKey(path: string): string {
  const key = readFileSync(path, "utf8").trim();
  if (key === "") throw new DriverError("INTERNAL", `the local cloud account key ${path} is empty`, { retryable: false });
  return key;
}

/** The provider's name for the account: which machine and user the servers run as. */
export function providerAccountId(): string {
  return `local:${hostname()}:${userInfo().uid}`;
}

/**
 * The directory name of the account's servers when `credentials` carry the account key; AUTH otherwise. The compare
 * takes the same time however much of the key matches.
 */
export function authenticate(dataDir: string, credentials: Readonly<Record<string, string>>): string {
  const expected = ensureAccountKey(dataDir);
  const given = credentials.key ?? "";
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  if (!timingSafeEqual(a, b) || given.length === 0) throw new DriverError("AUTH", "the local cloud refused the credentials: the key does not match this machine's account key");
  return accountFingerprint(expected);
}

export function accountFingerprint(key: string): string {
  return createHash("sha256").update(`local-cloud-account:${key}`).digest("hex").slice(0, 16);
}
