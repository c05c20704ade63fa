// Comparing secrets (tokens, credentials) in constant time, wherever one is checked: dispatcher or guest.
import { createHash, timingSafeEqual } from "node:crypto";

/** Constant-time comparison of two secrets (their hashes are compared, so lengths never leak either). */
export function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(createHash("sha256").update(a).digest(), createHash("sha256").update(b).digest());
}
