// The IAM services over gRPC against a real database: users, groups with etags (stale → ABORTED, nothing
// overwritten), roles, API keys (secret shown once, works, stops working once revoked), group roles and accounts in
// the principal, and field validation.
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKeyAuthenticator } from "../../src/iam/api-keys/authenticator.js";
import { PrincipalKind } from "../../src/gen/proto/dispatcher/v1/system.js";
import { UserKind, UserStatus } from "../../src/gen/proto/dispatcher/v1/iam.js";
import { insertAccounts, insertUser, startIamFixture, type IamFixture } from "./support.js";

let f: IamFixture;

beforeAll(async () => {
  f = await startIamFixture("iam_api");
});
afterAll(() => f?.close());

describe("users", () => {
  it("are created, read, listed page by page and disabled", async () => {
    const admin = f.client(f.users.admin.secret);
    const { user } = await admin.users.createUser({ email: "ann@example.test", name: "Ann", kind: UserKind.USER_KIND_USER, roles: ["reader", "reader"] });
    expect(user).toMatchObject({ email: "ann@example.test", name: "Ann", status: UserStatus.USER_STATUS_ACTIVE, roles: ["reader"], effectiveRoles: ["reader"] });
    expect((await admin.users.getUser({ id: user?.id })).user).toEqual(user);
    await expect(admin.users.createUser({ email: "ANN@example.test", name: "Ann 2", kind: UserKind.USER_KIND_USER })).rejects.toMatchObject({ code: status.ALREADY_EXISTS });

    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await admin.users.listUsers({ pageSize: 2, pageToken });
      expect(page.users.length).toBeLessThanOrEqual(2);
      seen.push(...page.users.map((u) => u.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual([...new Set(seen)]);
    expect(seen).toEqual(expect.arrayContaining([user?.id, f.users.admin.id, f.users.reader.id]));
    await expect(admin.users.listUsers({ pageToken: "bm90IGEgdG9rZW4" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "page_token" }] });

    const disabled = (await admin.users.deleteUser({ id: user?.id, etag: user?.etag })).user;
    expect(disabled?.status).toBe(UserStatus.USER_STATUS_DISABLED);
    const active = await admin.users.listUsers({ status: UserStatus.USER_STATUS_ACTIVE, pageSize: 1000 });
    expect(active.users.map((u) => u.id)).not.toContain(user?.id);
  });

  it("update with a stale etag is ABORTED and overwrites nothing", async () => {
    const admin = f.client(f.users.admin.secret);
    const { user } = await admin.users.createUser({ email: "bob@example.test", name: "Bob", kind: UserKind.USER_KIND_USER, roles: ["reader"] });
    const first = (await admin.users.updateUser({ id: user?.id, etag: user?.etag, updateMask: ["name"], name: "Robert" })).user;
    expect(first?.etag).not.toBe(user?.etag);
    const stale = await admin.users.updateUser({ id: user?.id, etag: user?.etag, updateMask: ["name", "roles"], name: "Bobby", roles: ["admin"] }).catch((e: unknown) => e);
    expect(stale).toMatchObject({ code: status.ABORTED });
    expect((await admin.users.getUser({ id: user?.id })).user).toMatchObject({ name: "Robert", roles: ["reader"], etag: first?.etag });
    await expect(admin.users.updateUser({ id: user?.id, etag: '"v999"', updateMask: ["name"], name: "X" })).rejects.toMatchObject({ code: status.ABORTED });
    await expect(admin.users.updateUser({ id: "01HZZZZZZZZZZZZZZZZZZZZZZZ", etag: "", updateMask: ["name"], name: "X" })).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  it("refuse to leave no active admin", async () => {
    const admin = f.client(f.users.admin.secret);
    const me = (await admin.users.getUser({ id: f.users.admin.id })).user;
    for (const call of [() => admin.users.deleteUser({ id: me?.id }), () => admin.users.updateUser({ id: me?.id, updateMask: ["roles"], roles: ["reader"] })]) {
      await expect(call()).rejects.toMatchObject({ code: status.FAILED_PRECONDITION, errorInfo: { reason: "LAST_ADMIN" } });
    }
    expect((await admin.users.getUser({ id: f.users.admin.id })).user).toEqual(me);
    // With a second admin through a group, the first may step down; the group then may not drop its admin role.
    const second = await insertUser(f.dbs, []);
    const { group } = await admin.groups.createGroup({ name: "admins", roles: ["admin"] });
    await admin.groups.addGroupMember({ groupId: group?.id, userId: second });
    const stepped = (await admin.users.updateUser({ id: me?.id, updateMask: ["roles"], roles: ["operator"] })).user;
    expect(stepped?.effectiveRoles).toEqual(["operator"]);
    await expect(admin.groups.setGroupRoles({ groupId: group?.id, roles: ["reader"] })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
    await expect(admin.groups.removeGroupMember({ groupId: group?.id, userId: second })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
    // Restore the fixture's admin directly (the server's authenticator still caches it as admin anyway).
    await f.dbs.provisioning.userRole.create({ data: { userId: me?.id as string, role: "admin" } });
    await admin.groups.deleteGroup({ id: group?.id });
  });

  it("validates every field with field violations", async () => {
    const admin = f.client(f.users.admin.secret);
    const err = await admin.users.createUser({ email: "not an email", name: "", kind: UserKind.USER_KIND_UNSPECIFIED, roles: ["root"] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT });
    const fields = (err as { fieldViolations: Array<{ field: string }> }).fieldViolations.map((v) => v.field).sort();
    expect(fields).toEqual(["email", "kind", "name", "roles[0]"]);
    const bad = await admin.users.updateUser({ id: f.users.reader.id, updateMask: ["email"] }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "update_mask.paths[0]" }] });
  });
});

describe("groups", () => {
  it("grant their members roles and accounts, seen by authentication", async () => {
    const admin = f.client(f.users.admin.secret);
    const userId = await insertUser(f.dbs, ["reader"]);
    const { secret } = await f.client(f.users.admin.secret).apiKeys.createApiKey({ userId, name: "member key" });
    const { group } = await admin.groups.createGroup({ name: "ops team", description: "operators", roles: ["operator"] });
    const added = (await admin.groups.addGroupMember({ groupId: group?.id, userId })).group;
    expect(added?.memberUserIds).toEqual([userId]);
    await insertAccounts(f.dbs, ["acct-a", "acct-b"]);
    await expect(admin.groups.setGroupAccounts({ groupId: group?.id, etag: added?.etag, accountIds: ["acct-a", "acct-nope"] })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "account_ids", description: 'no such account "acct-nope"' }] });
    expect((await admin.groups.getGroup({ id: group?.id })).group?.accountIds).toEqual([]);
    const withAccounts = (await admin.groups.setGroupAccounts({ groupId: group?.id, etag: added?.etag, accountIds: ["acct-b", "acct-a", "acct-a"] })).group;
    expect(withAccounts?.accountIds).toEqual(["acct-a", "acct-b"]);
    // A fresh authenticator: the server's caches principals for 10 s.
    const principal = await createApiKeyAuthenticator(f.dbs.provisioning)(secret, "test");
    expect(principal).toMatchObject({ id: userId, roles: ["operator", "reader"], accountIds: ["acct-a", "acct-b"] });
    expect((await admin.users.getUser({ id: userId })).user).toMatchObject({ roles: ["reader"], effectiveRoles: ["operator", "reader"], groupIds: [group?.id] });
    await expect(admin.groups.addGroupMember({ groupId: group?.id, userId: "01HZZZZZZZZZZZZZZZZZZZZZZZ" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "user_id" }] });
    const removed = (await admin.groups.removeGroupMember({ groupId: group?.id, userId })).group;
    expect(removed?.memberUserIds).toEqual([]);
    expect(await createApiKeyAuthenticator(f.dbs.provisioning)(secret, "test")).toMatchObject({ roles: ["reader"] });
  });

  it("update, set roles and delete with a stale etag are ABORTED and overwrite nothing", async () => {
    const admin = f.client(f.users.admin.secret);
    const { group } = await admin.groups.createGroup({ name: "etag team", description: "before" });
    const updated = (await admin.groups.updateGroup({ id: group?.id, etag: group?.etag, updateMask: ["description"], description: "after" })).group;
    for (const call of [
      () => admin.groups.updateGroup({ id: group?.id, etag: group?.etag, updateMask: ["name", "description"], name: "overwritten", description: "overwritten" }),
      () => admin.groups.setGroupRoles({ groupId: group?.id, etag: group?.etag, roles: ["admin"] }),
      () => admin.groups.setGroupAccounts({ groupId: group?.id, etag: group?.etag, accountIds: ["acct-x"] }),
      () => admin.groups.deleteGroup({ id: group?.id, etag: group?.etag }),
    ]) {
      await expect(call()).rejects.toMatchObject({ code: status.ABORTED });
    }
    expect((await admin.groups.getGroup({ id: group?.id })).group).toEqual(updated);
    await admin.groups.deleteGroup({ id: group?.id, etag: updated?.etag });
    await expect(admin.groups.getGroup({ id: group?.id })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(admin.groups.createGroup({ name: "\u0000bad" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "name" }] });
  });
});

describe("roles", () => {
  it("lists the built-in roles with the permissions the table grants", async () => {
    const reader = f.client(f.users.reader.secret);
    const { roles } = await reader.roles.listRoles({});
    expect(roles.map((r) => r.name)).toEqual(["admin", "operator", "finance", "reader"]);
    const byName = Object.fromEntries(roles.map((r) => [r.name, r.permissions]));
    expect(byName.admin).toEqual(expect.arrayContaining(["admin.users", "admin.groups", "jobs.read"]));
    expect(byName.operator).not.toContain("admin.users");
    expect(byName.operator).not.toContain("finance.budgets");
    expect(byName.operator).not.toContain("agents.join");
    expect(byName.finance).toEqual(expect.arrayContaining(["finance.budgets", "budgets.read"]));
    expect(byName.finance?.filter((p) => !p.endsWith(".read") && !p.endsWith(".self"))).toEqual(["finance.budgets"]);
    expect(byName.reader?.every((p) => p.endsWith(".read") || p.endsWith(".self"))).toBe(true);
    expect(byName.admin).not.toContain("credentials.use");
    expect((await reader.roles.getRole({ name: "reader" })).role?.permissions).toEqual(byName.reader);
    await expect(reader.roles.getRole({ name: "root" })).rejects.toMatchObject({ code: status.NOT_FOUND });
  });
});

describe("API keys", () => {
  it("are issued to oneself with the secret shown once; it works, and stops working once revoked", async () => {
    const reader = f.client(f.users.reader.secret);
    const created = await reader.apiKeys.createApiKey({ name: "laptop" });
    expect(created.secret).toMatch(/^dsp_/);
    expect(created.apiKey).toMatchObject({ userId: f.users.reader.id, name: "laptop", prefix: created.secret.slice(0, 12) });
    const listed = await reader.apiKeys.listApiKeys({});
    expect(listed.apiKeys.map((k) => k.id)).toContain(created.apiKey?.id);
    expect(JSON.stringify(listed)).not.toContain(created.secret.slice(12));

    const viaNewKey = f.client(created.secret);
    expect(await viaNewKey.system.whoAmI({})).toMatchObject({ principalId: f.users.reader.id, kind: PrincipalKind.PRINCIPAL_KIND_USER });
    const revoked = (await reader.apiKeys.revokeApiKey({ id: created.apiKey?.id })).apiKey;
    expect(revoked?.revokeTime).toBeInstanceOf(Date);
    expect(await createApiKeyAuthenticator(f.dbs.provisioning)(created.secret, "test")).toBeNull();
    // The server's authenticator caches a principal for 10 s: past that, the revoked key is refused.
    f.advance(11_000);
    await expect(viaNewKey.system.whoAmI({})).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    await expect(reader.apiKeys.revokeApiKey({ id: created.apiKey?.id })).resolves.toMatchObject({ apiKey: { id: created.apiKey?.id } });
  });

  it("of other users are for admins only; others' keys look like missing ones", async () => {
    const reader = f.client(f.users.reader.secret);
    const operator = f.client(f.users.operator.secret);
    const admin = f.client(f.users.admin.secret);
    await expect(operator.apiKeys.createApiKey({ userId: f.users.reader.id, name: "sneaky" })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    await expect(reader.apiKeys.listApiKeys({ userId: f.users.admin.id })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    const { apiKey } = await admin.apiKeys.createApiKey({ userId: f.users.operator.id, name: "issued by admin", expireTime: new Date(Date.now() + 3_600_000) });
    expect(apiKey?.userId).toBe(f.users.operator.id);
    await expect(reader.apiKeys.revokeApiKey({ id: apiKey?.id })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(reader.apiKeys.revokeApiKey({ id: "01HZZZZZZZZZZZZZZZZZZZZZZZ" })).rejects.toMatchObject({ code: status.NOT_FOUND });
    expect((await operator.apiKeys.listApiKeys({})).apiKeys.map((k) => k.id)).toContain(apiKey?.id);
    await expect(admin.apiKeys.createApiKey({ userId: "01HZZZZZZZZZZZZZZZZZZZZZZZ", name: "nobody" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "user_id" }] });
    await expect(admin.apiKeys.createApiKey({ name: "past", expireTime: new Date(Date.now() - 1000) })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "expire_time" }] });
  });
});
