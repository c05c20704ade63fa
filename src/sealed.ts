// Text sealed for a job payload. Payloads are stored in clear (jobs, outbox, dead letters) and travel through NATS, so
// a secret that rides in one (a launch's user data, a script's environment) is sealed: AES-256-GCM under a key derived
// (HKDF-SHA256) per purpose from agent.credentialKey, the key every dispatcher, worker and monitor already shares, with
// associated data (the server's id) so that a sealed value cannot be moved to another server's job. Only the job's
// handler opens it; an Error from open() never quotes the sealed text.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

const VERSION = "v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** What is sealed: the HKDF info that separates its key from every other purpose's, and its name in errors. */
export interface SealPurpose {
  info: string;
  noun: string;
}

// A fleet command seals one value per server: derive each purpose's key once per credential key.
const derived = new WeakMap<Buffer, Map<string, Buffer>>();

function keyOf(credentialKey: Buffer, purpose: SealPurpose): Buffer {
  let keys = derived.get(credentialKey);
  if (!keys) derived.set(credentialKey, (keys = new Map()));
  let key = keys.get(purpose.info);
  if (!key) keys.set(purpose.info, (key = Buffer.from(hkdfSync("sha256", credentialKey, Buffer.alloc(0), purpose.info, 32))));
  return key;
}

/** "v1.<base64url of iv | ciphertext | tag>". */
export function seal(credentialKey: Buffer, purpose: SealPurpose, associated: string, text: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", keyOf(credentialKey, purpose), iv);
  cipher.setAAD(Buffer.from(associated, "utf8"));
  const body = Buffer.concat([cipher.update(text, "utf8"), cipher.final()]);
  return `${VERSION}.${Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64url")}`;
}

/** The text, or an Error when it was sealed for other associated data, another purpose or another key. */
export function open(credentialKey: Buffer, purpose: SealPurpose, associated: string, sealed: string): string | Error {
  const what = `${purpose.noun} of server ${associated}`;
  const [version, data] = sealed.split(".", 2);
  if (version !== VERSION || !data) return new Error(`${what} is not in format ${VERSION}`);
  const bytes = Buffer.from(data, "base64url");
  if (bytes.length < IV_BYTES + TAG_BYTES) return new Error(`${what} is truncated`);
  try {
    const decipher = createDecipheriv("aes-256-gcm", keyOf(credentialKey, purpose), bytes.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(associated, "utf8"));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]).toString("utf8");
  } catch {
    return new Error(`${what} cannot be opened with this agent.credentialKey (was it rotated?)`);
  }
}
