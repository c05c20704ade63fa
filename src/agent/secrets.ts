// The agent's secrets on the dispatcher side: one-time join tokens (only their SHA-256 is stored) and agent
// credentials, derived with HMAC-SHA256 from the credential key and the agent id, so the dispatcher can present an
// agent's credential on every call without keeping it anywhere (see docs/agents.md).
import { createHash, createHmac, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, type Config } from "../config.js";

/** Join tokens start with this, so an authenticator can tell them from API keys without a lookup. */
export const JOIN_TOKEN_MARKER = "djt_";
/** Agent credentials start with this (only a label: agents compare the whole value). */
export const AGENT_CREDENTIAL_MARKER = "dac_";

/** A new join token: 32 random bytes, base64url, behind the marker. */
export function newJoinToken(): string {
  return JOIN_TOKEN_MARKER + randomBytes(32).toString("base64url");
}

/** Hex SHA-256: enough for secrets of 256 random bits (no dictionary to attack, so no slow hash needed). */
export function sha256Hex(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** The credential of one agent. The same key and agent id always give the same credential; another id, another one. */
export function deriveAgentCredential(key: Buffer, agentId: string): string {
  return AGENT_CREDENTIAL_MARKER + createHmac("sha256", key).update(`agent-credential:v1:${agentId}`, "utf8").digest("base64url");
}

const KEY_BYTES = 32;

/**
 * The credential key: agent.credentialKey (base64 of 32 bytes); in development mode when unset, a key generated once
 * under <dataDir>/agent/credential.key (mode 0600) and reused by every role of that data directory. Production
 * refuses to run agent features without the configured key (every replica must derive the same credentials).
 */
export function loadCredentialKey(config: Pick<Config, "mode" | "dataDir" | "agent">): Buffer {
  if (config.agent.credentialKey) {
    const key = Buffer.from(config.agent.credentialKey, "base64");
    if (key.length !== KEY_BYTES) throw new ConfigError([`agent.credentialKey (hidden): expected base64 of ${KEY_BYTES} bytes`]);
    return key;
  }
  if (config.mode === "production") throw new ConfigError(["agent.credentialKey: required in production mode (base64 of 32 random bytes, the same for every dispatcher, worker and monitor)"]);
  const dir = join(config.dataDir, "agent");
  const file = join(dir, "credential.key");
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      // wx: when two roles start at once, the first one's key wins and the other reads it.
      writeFileSync(file, randomBytes(KEY_BYTES).toString("base64"), { mode: 0o600, flag: "wx" });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    chmodSync(file, 0o600);
  }
  const key = Buffer.from(readFileSync(file, "utf8").trim(), "base64");
  if (key.length !== KEY_BYTES) throw new ConfigError([`${file}: expected base64 of ${KEY_BYTES} bytes`]);
  return key;
}

// Every process of one configuration derives with one key; read it once.
const keys = new WeakMap<object, Buffer>();

/** The credential key of this configuration (loadCredentialKey), read once per configuration object. */
export function credentialKeyOf(config: Pick<Config, "mode" | "dataDir" | "agent">): Buffer {
  let key = keys.get(config);
  if (!key) keys.set(config, (key = loadCredentialKey(config)));
  return key;
}
