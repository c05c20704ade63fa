// Bearer-token authentication for the gRPC adapter: API keys looked up by hash, with a short cache so a busy client
// does not cost a database query per call. A revoked key stops working within CACHE_TTL_MS.
import { createHash } from "node:crypto";
import type { ProvisioningDb } from "../../db/clients.js";
import { UnavailableError } from "../../errors.js";
import { authenticateApiKey } from "./keys.js";
import type { Authenticate, Principal } from "../principal.js";

const CACHE_TTL_MS = 10_000;
const CACHE_MAX = 10_000;

export function createApiKeyAuthenticator(db: ProvisioningDb, now: () => number = Date.now): Authenticate {
  // Keyed by a hash of the secret, so the cache never holds a usable secret.
  const cache = new Map<string, { principal: Principal; expires: number }>();
  return async (token) => {
    const key = createHash("sha256").update(token).digest("base64url");
    const hit = cache.get(key);
    if (hit && hit.expires > now()) return hit.principal;
    let principal: Principal | null;
    try {
      principal = await authenticateApiKey(db, token);
    } catch (err) {
      throw new UnavailableError("cannot check credentials right now; retry", "AUTH_BACKEND_UNAVAILABLE", { cause: err });
    }
    if (!principal) {
      cache.delete(key);
      return null;
    }
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
    cache.set(key, { principal, expires: now() + CACHE_TTL_MS });
    return principal;
  };
}
