// Bearer-token authentication for the gRPC adapter: API keys looked up by hash, with a short cache so a busy client
// does not cost a database query per call. A revoked key stops working within CACHE_TTL_MS. Refusals are cached too
// (apart, so that a flood of unknown keys cannot push known ones out): a client retrying a revoked or mistyped key in a
// loop costs one lookup per REFUSED_TTL_MS, not one per call.
import { createHash } from "node:crypto";
import type { ProvisioningDb } from "../../db/clients.js";
import { UnavailableError } from "../../errors.js";
import { authenticateApiKey } from "./keys.js";
import type { Authenticate, Principal } from "../principal.js";

const CACHE_TTL_MS = 10_000;
const CACHE_MAX = 10_000;
/** A refused key's answer is kept this long: a key made active again (user re-enabled) works within it. */
export const REFUSED_TTL_MS = 10_000;
const REFUSED_MAX = 10_000;

/** Looks a secret up in the database: its principal, or null when no active key has it. */
export type ApiKeyLookup = (token: string) => Promise<Principal | null>;

export function createApiKeyAuthenticator(db: ProvisioningDb, now: () => number = Date.now, lookup: ApiKeyLookup = (token) => authenticateApiKey(db, token)): Authenticate {
  // Keyed by a hash of the secret, so neither cache holds a usable secret.
  const cache = new Map<string, { principal: Principal; expires: number }>();
  const refused = new Map<string, number>();
  const remember = <V>(map: Map<string, V>, max: number, key: string, value: V): void => {
    map.delete(key);
    if (map.size >= max) map.delete(map.keys().next().value as string);
    map.set(key, value);
  };
  return async (token) => {
    const key = createHash("sha256").update(token).digest("base64url");
    const hit = cache.get(key);
    if (hit && hit.expires > now()) return hit.principal;
    const refusedUntil = refused.get(key);
    if (refusedUntil !== undefined && refusedUntil > now()) return null;
    let principal: Principal | null;
    try {
      principal = await lookup(token);
    } catch (err) {
      throw new UnavailableError("cannot check credentials right now; retry", "AUTH_BACKEND_UNAVAILABLE", { cause: err });
    }
    if (!principal) {
      cache.delete(key);
      remember(refused, REFUSED_MAX, key, now() + REFUSED_TTL_MS);
      return null;
    }
    refused.delete(key);
    remember(cache, CACHE_MAX, key, { principal, expires: now() + CACHE_TTL_MS });
    return principal;
  };
}
