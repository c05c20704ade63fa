// A launch's user data between the request and the cloud: sealed in the launch job's payload (src/sealed.ts, with the
// server's id as associated data) and opened only by the launch job's handler, to hand it to the driver; the text is
// never logged, traced or put in an error.
import { MAX_USER_DATA_BYTES } from "../clouds/driver.js";
import { open, seal, type SealPurpose } from "../sealed.js";

export { MAX_USER_DATA_BYTES };

const USER_DATA: SealPurpose = { info: "dispatcher:launch-user-data:v1", noun: "sealed user data" };

export function sealUserData(credentialKey: Buffer, serverId: string, text: string): string {
  return seal(credentialKey, USER_DATA, serverId, text);
}

/** The script, or an Error (never quoting the sealed text) when it was sealed for another server or another key. */
export function openUserData(credentialKey: Buffer, serverId: string, sealed: string): string | Error {
  return open(credentialKey, USER_DATA, serverId, sealed);
}
