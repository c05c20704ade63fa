// A launch's user data between the request and the cloud. Job payloads are stored in clear (jobs, outbox, dead
// letters) and travel through NATS, so the script rides in the launch job's payload sealed: AES-256-GCM under a key
// derived (HKDF-SHA256) from agent.credentialKey, the key every dispatcher, worker and monitor already shares, with
// the server's id as associated data so that a sealed script cannot be moved to another server's launch. Only the
// launch job's handler opens it, to hand it to the driver; the text is never logged, traced or put in an error.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { MAX_USER_DATA_BYTES } from "../clouds/driver.js";

export { MAX_USER_DATA_BYTES };

const VERSION = "v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

function userDataKey(credentialKey: Buffer): Buffer {
  return Buffer.from(hkdfSync("sha256", credentialKey, Buffer.alloc(0), "dispatcher:launch-user-data:v1", 32));
}

/** "v1.<base64url of iv | ciphertext | tag>". */
export function sealUserData(credentialKey: Buffer, serverId: string, text: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", userDataKey(credentialKey), iv);
  cipher.setAAD(Buffer.from(serverId, "utf8"));
  const body = Buffer.concat([cipher.update(text, "utf8"), cipher.final()]);
  return `${VERSION}.${Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64url")}`;
}

/** The script, or an Error (never quoting the sealed text) when it was sealed for another server or another key. */
export function openUserData(credentialKey: Buffer, serverId: string, sealed: string): string | Error {
  const [version, data] = sealed.split(".", 2);
  if (version !== VERSION || !data) return new Error(`sealed user data of server ${serverId} is not in format ${VERSION}`);
  const bytes = Buffer.from(data, "base64url");
  if (bytes.length < IV_BYTES + TAG_BYTES) return new Error(`sealed user data of server ${serverId} is truncated`);
  try {
    const decipher = createDecipheriv("aes-256-gcm", userDataKey(credentialKey), bytes.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(serverId, "utf8"));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]).toString("utf8");
  } catch {
    return new Error(`sealed user data of server ${serverId} cannot be opened with this agent.credentialKey (was it rotated?)`);
  }
}
