// What a RenewAgent signature covers, shared by the guest (which signs with the key of its current certificate) and
// the dispatcher (which verifies with the key it certified): every field of the request, in one unambiguous string.
import { createHash, sign, verify, type KeyObject } from "node:crypto";

/** Bearer prefix of RenewAgent calls: `dar_<agent id>` names the agent; the signature in the request proves it. */
export const RENEWAL_TOKEN_MARKER = "dar_";

export interface RenewalFields {
  agentId: string;
  address: string;
  port: number;
  certificateRequest: string;
  signedTimeMs: number;
}

function payload(f: RenewalFields): Buffer {
  const request = createHash("sha256").update(f.certificateRequest, "utf8").digest("hex");
  return Buffer.from(["dispatcher-agent-renewal:v1", f.agentId, f.address, String(f.port), request, String(f.signedTimeMs)].join("\n"), "utf8");
}

export function signRenewal(fields: RenewalFields, key: KeyObject): Buffer {
  return sign("sha256", payload(fields), key);
}

export function renewalSignatureValid(fields: RenewalFields, signature: Uint8Array, key: KeyObject): boolean {
  try {
    return verify("sha256", payload(fields), key, signature);
  } catch {
    return false;
  }
}
