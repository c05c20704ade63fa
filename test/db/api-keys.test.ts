// src/iam/api-keys.ts against a real provisioning database: keys are stored hashed, authenticate to the right
// principal, stop working when revoked, expired or disabled, and the bootstrap admin is created exactly once.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createProvisioningClient } from "../../src/db/clients.js";
import { newId } from "../../src/db/ids.js";
import { authenticateApiKey, BOOTSTRAP_ADMIN_EMAIL, createApiKey, createApiKeyForEmail, ensureBootstrapAdmin, revokeApiKey } from "../../src/iam/api-keys/keys.js";
import { InvalidArgumentError } from "../../src/errors.js";
import { createTestDatabases, type TestDatabases } from "../support/db.js";

let dbs: TestDatabases;

beforeAll(async () => {
  dbs = await createTestDatabases("api_keys");
});
afterAll(() => dbs?.drop());

async function newUser(opts: { kind?: "USER" | "SERVICE"; roles?: string[]; status?: "ACTIVE" | "DISABLED" } = {}): Promise<string> {
  const id = newId();
  await dbs.provisioning.user.create({
    data: { id, email: `${id.toLowerCase()}@example.test`, name: `User ${id.slice(-4)}`, kind: opts.kind ?? "USER", status: opts.status ?? "ACTIVE", roles: { create: (opts.roles ?? ["reader"]).map((role) => ({ role })) } },
  });
  return id;
}

describe("API keys", () => {
  it("are shown once and stored only as a sha256 hash with a short prefix", async () => {
    const userId = await newUser();
    const { id, secret } = await createApiKey(dbs.provisioning, userId, "laptop");
    expect(secret).toMatch(/^dsp_[A-Za-z0-9_-]{43}$/);
    const row = await dbs.provisioning.apiKey.findUniqueOrThrow({ where: { id } });
    expect(row.secretHash).toBe(createHash("sha256").update(secret).digest("hex"));
    expect(row.prefix).toBe(secret.slice(0, 12));
    expect(JSON.stringify(row)).not.toContain(secret.slice(12));
  });

  it("authenticate to the owner's principal", async () => {
    const userId = await newUser({ roles: ["reader", "operator"] });
    const { secret } = await createApiKey(dbs.provisioning, userId, "ci");
    const principal = await authenticateApiKey(dbs.provisioning, secret);
    expect(principal).toEqual({ id: userId, kind: "user", roles: ["operator", "reader"], displayName: `User ${userId.slice(-4)}` });
  });

  it("of a service principal authenticate as kind service", async () => {
    const userId = await newUser({ kind: "SERVICE", roles: ["operator"] });
    const { secret } = await createApiKey(dbs.provisioning, userId, "console");
    expect((await authenticateApiKey(dbs.provisioning, secret))?.kind).toBe("service");
  });

  it("reject unknown, malformed, revoked and expired keys and disabled users", async () => {
    const userId = await newUser();
    const { id, secret } = await createApiKey(dbs.provisioning, userId, "soon revoked");
    const other = secret.slice(0, -1) + (secret.endsWith("A") ? "B" : "A");
    expect(await authenticateApiKey(dbs.provisioning, other)).toBeNull();
    expect(await authenticateApiKey(dbs.provisioning, "not-a-key")).toBeNull();
    expect(await authenticateApiKey(dbs.provisioning, "")).toBeNull();
    expect(await authenticateApiKey(dbs.provisioning, secret)).not.toBeNull();
    expect(await revokeApiKey(dbs.provisioning, id)).toBe(true);
    expect(await revokeApiKey(dbs.provisioning, id)).toBe(false);
    expect(await authenticateApiKey(dbs.provisioning, secret)).toBeNull();

    const expiring = await createApiKey(dbs.provisioning, userId, "expiring", new Date(Date.now() + 60_000));
    expect(await authenticateApiKey(dbs.provisioning, expiring.secret)).not.toBeNull();
    expect(await authenticateApiKey(dbs.provisioning, expiring.secret, new Date(Date.now() + 61_000))).toBeNull();

    const disabledUser = await newUser();
    const disabled = await createApiKey(dbs.provisioning, disabledUser, "k");
    expect(await authenticateApiKey(dbs.provisioning, disabled.secret)).not.toBeNull();
    await dbs.provisioning.user.update({ where: { id: disabledUser }, data: { status: "DISABLED" } });
    expect(await authenticateApiKey(dbs.provisioning, disabled.secret)).toBeNull();
  });

  it("record last use at most once a minute", async () => {
    const userId = await newUser();
    const { id, secret } = await createApiKey(dbs.provisioning, userId, "busy");
    const lastUsed = async (): Promise<number | undefined> => (await dbs.provisioning.apiKey.findUniqueOrThrow({ where: { id } })).lastUsedAt?.getTime();
    const t0 = new Date(Math.floor(Date.now() / 1000) * 1000);
    await authenticateApiKey(dbs.provisioning, secret, t0);
    expect(await lastUsed()).toBe(t0.getTime());
    await authenticateApiKey(dbs.provisioning, secret, new Date(t0.getTime() + 30_000));
    expect(await lastUsed()).toBe(t0.getTime());
    const t2 = new Date(t0.getTime() + 61_000);
    await authenticateApiKey(dbs.provisioning, secret, t2);
    expect(await lastUsed()).toBe(t2.getTime());
  });
});

describe("createApiKeyForEmail", () => {
  it("creates the user with the role, then grants further roles to the same user", async () => {
    const first = await createApiKeyForEmail(dbs.provisioning, { email: "ops@example.test", role: "reader", kind: "service", name: "first" });
    const second = await createApiKeyForEmail(dbs.provisioning, { email: "ops@example.test", role: "operator", kind: "service", name: "second" });
    expect(second.userId).toBe(first.userId);
    const principal = await authenticateApiKey(dbs.provisioning, first.secret);
    expect(principal).toMatchObject({ id: first.userId, kind: "service", roles: ["operator", "reader"] });
  });

  it("refuses an unknown role", async () => {
    await expect(createApiKeyForEmail(dbs.provisioning, { email: "x@example.test", role: "root", kind: "user", name: "k" })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe("ensureBootstrapAdmin", () => {
  it("creates one admin with a working key on an empty database, and nothing afterwards", async () => {
    const fresh = await createTestDatabases("bootstrap");
    try {
      const result = await ensureBootstrapAdmin(fresh.provisioning);
      expect(result?.secret).toMatch(/^dsp_/);
      const principal = await authenticateApiKey(fresh.provisioning, result?.secret as string);
      expect(principal).toMatchObject({ kind: "user", roles: ["admin"] });
      expect(await ensureBootstrapAdmin(fresh.provisioning)).toBeNull();
      expect(await fresh.provisioning.user.count()).toBe(1);
    } finally {
      await fresh.drop();
    }
  });

  it("creates exactly one admin when several processes start at once", async () => {
    const fresh = await createTestDatabases("bootstrap_race");
    const clients = [0, 1, 2, 3].map(() => createProvisioningClient(fresh.urls.provisioning, 1));
    try {
      const results = await Promise.all(clients.map((c) => ensureBootstrapAdmin(c)));
      expect(results.filter((r) => r !== null)).toHaveLength(1);
      expect(await fresh.provisioning.user.count({ where: { email: BOOTSTRAP_ADMIN_EMAIL } })).toBe(1);
      expect(await fresh.provisioning.apiKey.count()).toBe(1);
    } finally {
      await Promise.all(clients.map((c) => c.$disconnect()));
      await fresh.drop();
    }
  });
});
