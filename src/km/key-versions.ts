// The master key versions as the credentials database records them: reconciling the configured keyring at start
// (fingerprints must match, one version is current), reserving encryptions under the current version (counted, with
// rotation long before AES-GCM's 2^32 random-nonce limit), and rotation.
import { ConfigError } from "../config.js";
import { FailedPreconditionError } from "../errors.js";
import type { Logger } from "../log.js";
import type { MasterKey } from "./crypto.js";
import type { Keyring } from "./keys.js";
import type { Sql } from "../db/sql.js";
import { addEncryptions, countCredentialsByVersion, inTransaction, insertKeyVersion, keyVersions, lockCurrentKeyVersion, makeCurrent, markRetired, type CredentialsPool } from "./repository.js";

/**
 * With random 96-bit nonces, NIST SP 800-38D allows at most 2^32 encryptions per key. A version that reaches
 * `rotateAt` hands over to a newer configured version automatically (or warns when there is none); at `refuseAt`
 * it refuses to wrap more. Both are far below 2^32.
 */
export interface EncryptionLimits {
  rotateAt: bigint;
  refuseAt: bigint;
}

export const ENCRYPTION_LIMITS: EncryptionLimits = { rotateAt: 2n ** 30n, refuseAt: 2n ** 31n };

export interface KeySync {
  current: number;
  /** Versions recorded in the database but not configured, with their live records (0: retired now). */
  missing: { version: number; records: number }[];
}

/**
 * Reconciles the configured keyring with the database: records new versions, refuses a key whose fingerprint differs
 * from the one recorded for its version, makes the newest version current on first start, refuses to start when the
 * current version is not configured, and retires unconfigured versions that no record uses any more.
 */
export async function syncKeyVersions(db: CredentialsPool, keyring: Keyring, now: Date): Promise<KeySync> {
  const current = await inTransaction(db, async (tx) => {
    const rows = await keyVersions(tx, true);
    const recorded = new Map(rows.map((r) => [r.version, r]));
    const problems: string[] = [];
    for (const version of keyring.versions) {
      const row = recorded.get(version);
      if (!row) await insertKeyVersion(tx, version, keyring.fingerprint(version));
      else if (row.fingerprint !== keyring.fingerprint(version)) {
        problems.push(`encryption.masterKeys version ${version} is not the key this credentials database recorded for version ${version} (fingerprint differs): with it, records under that version would not decrypt. Configure the key that wrote them (a development install keeps it in <dataDir>/km, so a fresh clone beside an earlier install's databases has a new one); or, on a development install whose state can go, run \`dispatcher reset\` (it lists what it removes; \`--yes\` removes it) and start again`);
      }
    }
    let currentRow = rows.find((r) => r.isCurrent);
    if (!currentRow && problems.length === 0) {
      await makeCurrent(tx, keyring.newest.version, now);
      currentRow = { version: keyring.newest.version } as (typeof rows)[number];
    }
    if (currentRow && !keyring.has(currentRow.version)) {
      problems.push(`master key version ${currentRow.version} is current in the credentials database but is not configured in encryption.masterKeys`);
    }
    if (problems.length > 0) throw new ConfigError(problems);
    return (currentRow as { version: number }).version;
  });
  const counts = await countCredentialsByVersion(db);
  const missing: KeySync["missing"] = [];
  for (const row of await keyVersions(db)) {
    if (keyring.has(row.version)) continue;
    const records = counts.get(row.version) ?? 0;
    if (records === 0 && !row.retiredAt) await markRetired(db, row.version, now);
    missing.push({ version: row.version, records });
  }
  return { current, missing };
}

export interface Reservation {
  master: MasterKey;
  /** Set when the current version reached its rotation point and this call moved to a newer one. */
  rotatedFrom?: number;
}

/** Reserves `n` encryptions under the current version inside `tx` (its row stays locked until `tx` ends). */
export async function reserveEncryptions(tx: Sql, keyring: Keyring, n: number, limits: EncryptionLimits, log: Logger, now: Date): Promise<Reservation> {
  let row = await lockCurrentKeyVersion(tx);
  if (!row) throw new FailedPreconditionError("no master key version is current: KM has not initialised its credentials database", "MASTER_KEY_UNINITIALISED");
  let rotatedFrom: number | undefined;
  const count = BigInt(n);
  if (row.encryptions + count > limits.rotateAt && keyring.newest.version > row.version) {
    rotatedFrom = row.version;
    await makeCurrent(tx, keyring.newest.version, now);
    log.warn({ from: row.version, to: keyring.newest.version, encryptions: String(row.encryptions) }, "master key version reached its rotation point: newer configured version made current");
    row = (await lockCurrentKeyVersion(tx)) as { version: number; encryptions: bigint };
  }
  if (row.encryptions + count > limits.refuseAt) {
    throw new FailedPreconditionError(
      `master key version ${row.version} has made ${row.encryptions} encryptions, its limit: add a new version to encryption.masterKeys and call RotateMasterKey`,
      "MASTER_KEY_EXHAUSTED",
    );
  }
  if (row.encryptions + count > limits.rotateAt) log.warn({ version: row.version, encryptions: String(row.encryptions) }, "master key version is past its rotation point: add a new version and rotate");
  const key = keyring.key(row.version);
  if (!key) throw new FailedPreconditionError(`master key version ${row.version} is current but not configured on this KM instance`, "MASTER_KEY_VERSION_UNAVAILABLE");
  await addEncryptions(tx, row.version, n);
  return { master: { version: row.version, key }, ...(rotatedFrom !== undefined ? { rotatedFrom } : {}) };
}

/** Makes the newest configured version current; resolves to the previous and the new current version. */
export async function rotateToNewest(tx: Sql, keyring: Keyring, now: Date): Promise<{ from: number | undefined; to: number }> {
  const rows = await keyVersions(tx, true);
  const from = rows.find((r) => r.isCurrent)?.version;
  const to = keyring.newest.version;
  if (from !== undefined && to < from) throw new FailedPreconditionError(`the newest configured master key version (${to}) is older than the current one (${from})`, "MASTER_KEY_ROLLBACK");
  if (from !== to) {
    if (!rows.some((r) => r.version === to)) await insertKeyVersion(tx, to, keyring.fingerprint(to));
    await makeCurrent(tx, to, now);
  }
  return { from, to };
}
