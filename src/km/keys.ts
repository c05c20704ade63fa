// Versioned 32-byte keys from configuration (master keys, channel keys): parsing, validation, fingerprints, and a
// holder that never prints its keys (not in logs, JSON, util.inspect or error messages).
import { createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { inspect } from "node:util";
import { KEY_BYTES, type MasterKey } from "./crypto.js";

/** Why a key text is unusable; the message names the setting and version, never the value. */
export class KeyConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyConfigError";
  }
}

const MAX_VERSION = 2 ** 31 - 1;

/** A set of versioned keys; `newest` is the highest version. */
export class Keyring {
  readonly #keys: ReadonlyMap<number, Buffer>;

  constructor(keys: ReadonlyMap<number, Buffer>) {
    if (keys.size === 0) throw new KeyConfigError("a keyring needs at least one key");
    this.#keys = new Map([...keys].sort(([a], [b]) => a - b));
  }

  get versions(): number[] {
    return [...this.#keys.keys()];
  }

  get newest(): MasterKey {
    const version = Math.max(...this.#keys.keys());
    return { version, key: this.#keys.get(version) as Buffer };
  }

  has(version: number): boolean {
    return this.#keys.has(version);
  }

  /** The key of `version`, or undefined. Callers must not keep or print it. */
  key(version: number): Buffer | undefined {
    return this.#keys.get(version);
  }

  /** A lookup function for openRecord/rewrapRecord. */
  readonly lookup = (version: number): Buffer | undefined => this.#keys.get(version);

  /** A key check value: HMAC-SHA256(key, label). Identifies a key without revealing it. */
  fingerprint(version: number): string {
    const key = this.#keys.get(version);
    if (!key) throw new KeyConfigError(`key version ${version} is not configured`);
    return createHmac("sha256", key).update("dispatcher.km/key-check/v1").digest("hex");
  }

  toJSON(): string {
    return `[Keyring versions ${this.versions.join(",")}]`;
  }

  [inspect.custom](): string {
    return this.toJSON();
  }
}

/**
 * Parses `<version>:<base64>` pairs separated by commas or newlines (`#` starts a comment line). With
 * `allowBare`, a single bare base64 key is version 1. Each key must decode to exactly 32 bytes.
 */
export function parseKeyring(text: string, setting: string, options: { allowBare?: boolean } = {}): Keyring {
  const entries = text
    .split("\n")
    .filter((line) => !line.trim().startsWith("#"))
    .flatMap((line) => line.split(","))
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (entries.length === 0) throw new KeyConfigError(`${setting} is empty`);
  const keys = new Map<number, Buffer>();
  for (const [i, entry] of entries.entries()) {
    const m = /^(\d+):(.*)$/.exec(entry);
    let version: number;
    let b64: string;
    if (m) {
      version = Number(m[1]);
      b64 = m[2] as string;
    } else if (options.allowBare && entries.length === 1) {
      version = 1;
      b64 = entry;
    } else {
      throw new KeyConfigError(`${setting}: entry ${i + 1} is not <version>:<base64 key>`);
    }
    if (!Number.isSafeInteger(version) || version < 1 || version > MAX_VERSION) throw new KeyConfigError(`${setting}: entry ${i + 1} has version ${m?.[1] ?? ""}; versions are whole numbers from 1`);
    if (keys.has(version)) throw new KeyConfigError(`${setting}: version ${version} appears twice`);
    keys.set(version, decodeKey(b64, `${setting} version ${version}`));
  }
  return new Keyring(keys);
}

function decodeKey(b64: string, what: string): Buffer {
  const clean = b64.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(clean)) throw new KeyConfigError(`${what} is not base64`);
  const key = Buffer.from(clean.replace(/-/g, "+").replace(/_/g, "/"), "base64");
  if (key.length !== KEY_BYTES) throw new KeyConfigError(`${what} is ${key.length} bytes; a key must be ${KEY_BYTES} random bytes (base64 of 32 bytes is 44 characters)`);
  if (key.every((b) => b === key[0])) throw new KeyConfigError(`${what} is one byte repeated; a key must be random`);
  return key;
}

/** The key text from a setting's value or, when that is empty, from a file (whose contents are never echoed). */
export function keyText(value: string, file: string, setting: string): string | undefined {
  if (value.trim() !== "") return value;
  if (file.trim() === "") return undefined;
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new KeyConfigError(`${setting}File ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** A new random key as `<version>:<base64>`, the format of encryption.masterKeys and encryption.kmChannelKey. */
export function generateKeyText(version = 1): string {
  if (!Number.isSafeInteger(version) || version < 1 || version > MAX_VERSION) throw new RangeError("version must be a whole number from 1");
  return `${version}:${randomBytes(KEY_BYTES).toString("base64")}`;
}
