// The API-key authenticator's caches (the lookup itself is covered against MariaDB in api.test.ts): a known key is
// looked up once per CACHE_TTL_MS, a refused one once per REFUSED_TTL_MS, a flood of unknown keys does not push the
// known ones out, and a lookup that fails is UNAVAILABLE and not remembered.
import { describe, expect, it } from "vitest";
import { createApiKeyAuthenticator, REFUSED_TTL_MS, type ApiKeyLookup } from "../../src/iam/api-keys/authenticator.js";
import type { ProvisioningDb } from "../../src/db/clients.js";
import type { Principal } from "../../src/iam/principal.js";

const ann: Principal = { id: "ann", kind: "user", roles: ["reader"], displayName: "Ann" };

function harness(known: Record<string, Principal>) {
  let t = 1_000_000;
  const looked: string[] = [];
  let failing = false;
  const lookup: ApiKeyLookup = async (token) => {
    looked.push(token);
    if (failing) throw new Error("connection refused");
    return known[token] ?? null;
  };
  const authenticate = createApiKeyAuthenticator(null as unknown as ProvisioningDb, () => t, lookup);
  return { authenticate: (token: string) => authenticate(token, "peer"), looked, advance: (ms: number) => (t += ms), fail: (f: boolean) => (failing = f) };
}

describe("the API-key authenticator", () => {
  it("looks a refused key up once per REFUSED_TTL_MS however often it is tried", async () => {
    const h = harness({});
    for (let i = 0; i < 100; i++) expect(await h.authenticate("dk_revoked")).toBeNull();
    expect(h.looked).toEqual(["dk_revoked"]);
    h.advance(REFUSED_TTL_MS + 1);
    expect(await h.authenticate("dk_revoked")).toBeNull();
    expect(h.looked).toHaveLength(2);
  });

  it("keeps known keys cached while a flood of unknown ones passes", async () => {
    const h = harness({ dk_ann: ann });
    expect(await h.authenticate("dk_ann")).toEqual(ann);
    for (let i = 0; i < 20_000; i++) await h.authenticate(`dk_unknown_${i}`);
    h.looked.length = 0;
    expect(await h.authenticate("dk_ann")).toEqual(ann);
    expect(h.looked).toEqual([]);
  });

  it("answers UNAVAILABLE when the lookup fails, and remembers nothing of it", async () => {
    const h = harness({ dk_ann: ann });
    h.fail(true);
    await expect(h.authenticate("dk_ann")).rejects.toMatchObject({ code: "UNAVAILABLE" });
    h.fail(false);
    expect(await h.authenticate("dk_ann")).toEqual(ann);
    expect(h.looked).toEqual(["dk_ann", "dk_ann"]);
  });
});
