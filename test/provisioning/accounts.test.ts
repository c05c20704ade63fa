// Accounts through a real gRPC server and MariaDB with an in-memory KM: connecting stores the credentials in KM and
// only their id in the provisioning database (a canary secret is nowhere in the database or the logs), and reads are
// scoped to the accounts the caller's groups may use, others being NOT_FOUND whether they exist or not.
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UnavailableError } from "../../src/errors.js";
import { AccountStatus } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import { createApiKey } from "../../src/iam/api-keys/keys.js";
import { createAccountService, lazyCredentialStore } from "../../src/provisioning/accounts/service.js";
import { insertUser, startProvisioningFixture, type ProvisioningFixture } from "./support.js";

let f: ProvisioningFixture;
let cloudId = "";
const CANARY = "CANARY-7f3a9c1e-secret-do-not-store";

beforeAll(async () => {
  f = await startProvisioningFixture("prov_accounts");
  const { cloud } = await f.client(f.users.admin.secret).clouds.createCloud({ name: "acct cloud", driver: "aws", endpoint: "https://api.cloud.test" });
  cloudId = cloud?.id ?? "";
  await f.client(f.users.finance.secret).budgetCodes.createBudgetCode({ code: "ACCT-1", name: "accounts", hardQuotaCents: "1000" });
});
afterAll(async () => {
  await f?.close();
});

const creds = (secret = CANARY) => ({ type: "aws-access-key", fields: { access_key_id: "AKIAEXAMPLE", secret_access_key: secret } });

/** Every row of every table of the provisioning database, as text. */
async function dumpDatabase(): Promise<string> {
  const tables = await f.dbs.provisioning.$queryRawUnsafe<Array<Record<string, string>>>("SHOW TABLES");
  const out: string[] = [];
  for (const t of tables) {
    const name = Object.values(t)[0] as string;
    const rows = await f.dbs.provisioning.$queryRawUnsafe<unknown[]>(`SELECT * FROM \`${name}\``);
    out.push(JSON.stringify(rows, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)));
  }
  expect(out.length).toBeGreaterThan(10);
  return out.join("\n");
}

describe("accounts", () => {
  it("connect through KM: the credentials reach KM, only their id stays here, and the secret is in no row or log", async () => {
    const admin = f.client(f.users.admin.secret);
    const { account } = await admin.accounts.createAccount({ name: "prod", cloudId, defaultBudgetCode: "ACCT-1", credentials: creds() });
    expect(account).toMatchObject({ name: "prod", cloudId, defaultBudgetCode: "ACCT-1", status: AccountStatus.ACCOUNT_STATUS_PENDING });
    const stored = f.km.stored.get(account?.credentialId ?? "");
    expect(stored).toEqual({ accountId: account?.id, type: "aws-access-key", fields: creds().fields });
    expect((await admin.accounts.getAccount({ id: account?.id })).account).toEqual(account);
    const dump = await dumpDatabase();
    expect(dump).toContain(account?.credentialId);
    expect(dump).not.toContain(CANARY);
    expect(dump).not.toContain("AKIAEXAMPLE");
    expect(JSON.stringify(f.server.logLines)).not.toContain(CANARY);
    expect(JSON.stringify(f.server.requests)).not.toContain(CANARY);
  });

  it("refuses bad input before KM sees it, without echoing secrets", async () => {
    const admin = f.client(f.users.admin.secret);
    const before = f.km.stored.size;
    const unknownCloud = await admin.accounts.createAccount({ name: "x", cloudId: "01HZZZZZZZZZZZZZZZZZZZZZZZ", defaultBudgetCode: "NOPE", credentials: creds() }).catch((e: unknown) => e);
    expect(unknownCloud).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect((unknownCloud as { fieldViolations: Array<{ field: string }> }).fieldViolations.map((v) => v.field).sort()).toEqual(["cloud_id", "default_budget_code"]);
    const badFields = await admin.accounts.createAccount({ name: "x", cloudId, credentials: { type: "aws", fields: { "bad key!": CANARY } } }).catch((e: unknown) => e);
    expect(badFields).toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "credentials.fields" }] });
    const tooLong = await admin.accounts.createAccount({ name: "x", cloudId, credentials: creds(CANARY.repeat(1000)) }).catch((e: unknown) => e);
    expect(tooLong).toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "credentials.fields" }] });
    expect(JSON.stringify([badFields, tooLong, (badFields as Error).message])).not.toContain(CANARY);
    await expect(admin.accounts.createAccount({ name: "x", cloudId })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(f.km.stored.size).toBe(before);
  });

  it("shreds the stored credential when the account cannot be recorded, and reports a KM outage as UNAVAILABLE", async () => {
    const admin = f.client(f.users.admin.secret);
    await admin.accounts.createAccount({ name: "dup", cloudId, credentials: creds() });
    const stored = f.km.stored.size;
    await expect(admin.accounts.createAccount({ name: "dup", cloudId, credentials: creds() })).rejects.toMatchObject({ code: status.ALREADY_EXISTS });
    expect(f.km.stored.size).toBe(stored);
    expect(f.km.deleted).toHaveLength(1);
    f.km.failWith = new UnavailableError("KM is down", "KM_UNAVAILABLE");
    try {
      await expect(admin.accounts.createAccount({ name: "outage", cloudId, credentials: creds() })).rejects.toMatchObject({ code: status.UNAVAILABLE });
    } finally {
      f.km.failWith = null;
    }
    expect(await f.dbs.provisioning.account.count({ where: { name: "outage" } })).toBe(0);
    // Each connected account has its one validation job, and a refused connection left none behind.
    const accounts = await f.dbs.provisioning.account.findMany({ select: { id: true } });
    const jobs = await f.dbs.provisioning.job.findMany({ where: { kind: "account.discover" }, select: { resourceType: true, resourceId: true } });
    expect(jobs.map((j) => `${j.resourceType}/${j.resourceId}`).sort()).toEqual(accounts.map((a) => `account/${a.id}`).sort());
    await expect(f.client(f.users.operator.secret).accounts.createAccount({ name: "op", cloudId, credentials: creds() })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
  });

  it("shows a user only the accounts its groups may use; others are NOT_FOUND whether they exist or not", async () => {
    const admin = f.client(f.users.admin.secret);
    const a = (await admin.accounts.createAccount({ name: "team a", cloudId, credentials: creds() })).account;
    const b = (await admin.accounts.createAccount({ name: "team b", cloudId, credentials: creds() })).account;
    const { group } = await admin.groups.createGroup({ name: "team a users", roles: ["operator"] });
    const userId = await insertUser(f.dbs, ["reader"]);
    const added = (await admin.groups.addGroupMember({ groupId: group?.id, userId })).group;
    await admin.groups.setGroupAccounts({ groupId: group?.id, etag: added?.etag, accountIds: [a?.id ?? ""] });
    const member = f.client((await createApiKey(f.dbs.provisioning, userId, "member")).secret);

    expect((await member.accounts.getAccount({ id: a?.id })).account).toEqual(a);
    expect((await member.accounts.listAccounts({})).accounts.map((x) => x.id)).toEqual([a?.id]);
    expect((await member.accounts.listAccounts({ cloudId })).accounts.map((x) => x.id)).toEqual([a?.id]);
    const missing = "01HZZZZZZZZZZZZZZZZZZZZZZZ";
    const hidden = (await member.accounts.getAccount({ id: b?.id }).catch((e: unknown) => e)) as Error & { code: number };
    const absent = (await member.accounts.getAccount({ id: missing }).catch((e: unknown) => e)) as Error & { code: number };
    expect(hidden.code).toBe(status.NOT_FOUND);
    expect(absent.code).toBe(status.NOT_FOUND);
    expect(hidden.message.replace(b?.id ?? "", "ID")).toBe(absent.message.replace(missing, "ID"));
    // No group, no accounts; admins see them all.
    expect((await f.client(f.users.reader.secret).accounts.listAccounts({})).accounts).toEqual([]);
    const all = (await admin.accounts.listAccounts({ pageSize: 2 }));
    expect(all.accounts).toHaveLength(2);
    expect(all.nextPageToken).not.toBe("");
  });

  it("keep their cloud (FAILED_PRECONDITION) and follow a deleted default budget code to its replacement", async () => {
    const admin = f.client(f.users.admin.secret);
    const finance = f.client(f.users.finance.secret);
    const { cloud } = await admin.clouds.createCloud({ name: "busy cloud", driver: "aws", endpoint: "https://api.cloud.test" });
    await finance.budgetCodes.createBudgetCode({ code: "DEF-OLD", name: "old default", hardQuotaCents: "10" });
    await finance.budgetCodes.createBudgetCode({ code: "DEF-NEW", name: "new default", hardQuotaCents: "10" });
    const { account } = await admin.accounts.createAccount({ name: "busy", cloudId: cloud?.id, defaultBudgetCode: "DEF-OLD", credentials: creds() });
    await expect(admin.clouds.deleteCloud({ id: cloud?.id })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION, errorInfo: { reason: "CLOUD_IN_USE" } });
    expect((await admin.clouds.getCloud({ id: cloud?.id })).cloud?.name).toBe("busy cloud");
    await expect(finance.budgetCodes.deleteBudgetCode({ code: "DEF-OLD" })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION, errorInfo: { reason: "BUDGET_CODE_IN_USE" } });
    await finance.budgetCodes.deleteBudgetCode({ code: "DEF-OLD", replacementCode: "DEF-NEW" });
    expect((await admin.accounts.getAccount({ id: account?.id })).account?.defaultBudgetCode).toBe("DEF-NEW");
  });
});

describe("connecting an account", () => {
  it("writes the account and its validation job in one transaction: a job that cannot be created leaves no account", async () => {
    const failingJobs = { createJob: () => Promise.reject(new Error("the job could not be written")) };
    const service = createAccountService(f.dbs.provisioning, () => f.km, failingJobs, { discoveryIntervalMs: 60_000 });
    const caller = { id: f.users.admin.id, kind: "user" as const, roles: ["admin"], displayName: "admin" };
    const deleted = f.km.deleted.length;
    await expect(service.createAccount(caller, { name: "half", cloudId, defaultBudgetCode: "", credentialType: "k", credentialFields: { key: "x" } })).rejects.toThrow("the job could not be written");
    expect(await f.dbs.provisioning.account.count({ where: { name: "half" } })).toBe(0);
    expect(f.km.deleted.length).toBe(deleted + 1);
  });
});

describe("lazyCredentialStore", () => {
  it("makes the KM client once, on first use, and turns a configuration that cannot make one into FAILED_PRECONDITION", () => {
    let made = 0;
    const store = lazyCredentialStore(() => {
      made++;
      return f.km;
    });
    expect(made).toBe(0);
    expect(store()).toBe(f.km);
    expect(store()).toBe(f.km);
    expect(made).toBe(1);
    const broken = lazyCredentialStore(() => {
      throw new Error("km.tlsCa is not set");
    });
    expect(() => broken()).toThrow(expect.objectContaining({ reason: "KM_NOT_CONFIGURED" }));
  });
});
