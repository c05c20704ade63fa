// The backup keyring (backup.key or backup.keyFile): versioned 32-byte keys, a fingerprint that names a key without
// revealing it, and the refusal of a key that KM also uses. A backup key is a key of its own: whoever holds it can
// read the archives, which hold KM's ciphertext but never KM's master keys.
import { createHmac } from "node:crypto";
import { existsSync } from "node:fs";
import { ConfigError, type Config } from "../config.js";
import { devPaths } from "../km/dev-files.js";
import { KeyConfigError, keyText, parseKeyring, type Keyring } from "../km/keys.js";

const GENERATE_HINT = "generate one with `dispatcher backup generate-key` and set backup.key (DISPATCHER_BACKUP_KEY) or backup.keyFile";

/** A key check value: HMAC-SHA256(key, label), recorded in each archive's header. */
export function backupKeyFingerprint(key: Buffer): string {
  return createHmac("sha256", key).update("dispatcher.backup/key-check/v1").digest("hex");
}

/**
 * The configured backup keyring; a ConfigError (exit 2) when it is missing, malformed, or shares a key with KM's
 * master keys or channel key (configured, or the development files under <dataDir>/km).
 */
export function loadBackupKeys(config: Config): Keyring {
  let keys: Keyring;
  try {
    const text = keyText(config.backup.key, config.backup.keyFile, "backup.key");
    if (text === undefined) throw new KeyConfigError(`backup.key is not set: backups are encrypted with a key of their own; ${GENERATE_HINT}`);
    keys = parseKeyring(text, "backup.key", { allowBare: true });
  } catch (err) {
    if (err instanceof KeyConfigError) throw new ConfigError([err.message]);
    throw err;
  }
  const problems: string[] = [];
  for (const [setting, ring] of kmKeyrings(config)) {
    for (const v of keys.versions) {
      for (const k of ring.versions) {
        if (keys.key(v)?.equals(ring.key(k) as Buffer)) problems.push(`backup.key version ${v} equals ${setting} version ${k}: a backup key must be a key of its own (${GENERATE_HINT})`);
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return keys;
}

/** KM's keyrings as far as this process can see them; unreadable ones are KM's business, not the backup's. */
function kmKeyrings(config: Config): [string, Keyring][] {
  const dev = devPaths(config.dataDir);
  const sources: [string, string, string][] = [
    ["encryption.masterKeys", config.encryption.masterKeys, config.encryption.masterKeysFile || (existsSync(dev.masterKeys) ? dev.masterKeys : "")],
    ["encryption.kmChannelKey", config.encryption.kmChannelKey, config.encryption.kmChannelKeyFile || (existsSync(dev.channelKey) ? dev.channelKey : "")],
  ];
  const out: [string, Keyring][] = [];
  for (const [setting, value, file] of sources) {
    try {
      const text = keyText(value, file, setting);
      if (text !== undefined) out.push([setting, parseKeyring(text, setting, { allowBare: true })]);
    } catch {
      // KM reports its own configuration problems at its start.
    }
  }
  return out;
}
