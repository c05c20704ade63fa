// Clouds and budget codes through a real gRPC server and MariaDB: CRUD, etags, SSRF refusals with field violations,
// deleting codes in use, and the budget check launches run (requireBudgetCode).
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BudgetCodeState } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import { FailedPreconditionError, PermissionDeniedError } from "../../src/errors.js";
import { requireBudgetCode } from "../../src/provisioning/budgets/guard.js";
import { insertUser, startProvisioningFixture, type ProvisioningFixture } from "./support.js";

let f: ProvisioningFixture;

beforeAll(async () => {
  f = await startProvisioningFixture("prov_api");
});
afterAll(async () => {
  await f?.close();
});

const fields = (err: unknown): string[] => ((err as { fieldViolations?: Array<{ field: string }> }).fieldViolations ?? []).map((v) => v.field).sort();

describe("clouds", () => {
  it("create, get, list, update and delete", async () => {
    const admin = f.client(f.users.admin.secret);
    const regions = [{ id: "eu-west-1", name: "Ireland", dataCenters: ["euw1-az1", "euw1-az2"] }, { id: "us-east-1", name: "", dataCenters: [] }];
    const { cloud } = await admin.clouds.createCloud({ name: "aws main", driver: "aws", endpoint: "https://api.cloud.test", regions });
    expect(cloud).toMatchObject({ name: "aws main", driver: "aws", endpoint: "https://api.cloud.test/", regions: [regions[0], { id: "us-east-1", name: "us-east-1", dataCenters: [] }] });
    const reader = f.client(f.users.reader.secret);
    expect((await reader.clouds.getCloud({ id: cloud?.id })).cloud).toEqual(cloud);
    await admin.clouds.createCloud({ name: "local one", driver: "local", endpoint: "https://127.0.0.1:9000" });
    const page1 = await reader.clouds.listClouds({ pageSize: 1 });
    expect(page1.clouds).toHaveLength(1);
    const page2 = await reader.clouds.listClouds({ pageSize: 1, pageToken: page1.nextPageToken });
    expect(page2.clouds).toHaveLength(1);
    expect(page2.nextPageToken).toBe("");
    expect((await reader.clouds.listClouds({ driver: "local" })).clouds.map((c) => c.name)).toEqual(["local one"]);
    await expect(reader.clouds.listClouds({ driver: "aws", pageToken: page1.nextPageToken })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "page_token" }] });

    const updated = (await admin.clouds.updateCloud({ id: cloud?.id, etag: cloud?.etag, updateMask: ["regions", "name"], name: "aws prod", regions: [{ id: "eu-central-1", name: "Frankfurt", dataCenters: ["a"] }] })).cloud;
    expect(updated).toMatchObject({ name: "aws prod", endpoint: "https://api.cloud.test/", regions: [{ id: "eu-central-1", name: "Frankfurt", dataCenters: ["a"] }] });
    expect(updated?.etag).not.toBe(cloud?.etag);
    await expect(admin.clouds.createCloud({ name: "aws prod", driver: "aws", endpoint: "https://api.cloud.test" })).rejects.toMatchObject({ code: status.ALREADY_EXISTS });
    await expect(reader.clouds.createCloud({ name: "nope", driver: "aws", endpoint: "https://api.cloud.test" })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    await expect(f.client(f.users.operator.secret).clouds.deleteCloud({ id: cloud?.id })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });

    await admin.clouds.deleteCloud({ id: cloud?.id, etag: updated?.etag });
    await expect(reader.clouds.getCloud({ id: cloud?.id })).rejects.toMatchObject({ code: status.NOT_FOUND });
    expect(await f.dbs.provisioning.cloudRegion.count({ where: { cloudId: cloud?.id as string } })).toBe(0);
  });

  it("update and delete with a stale etag are ABORTED and overwrite nothing", async () => {
    const admin = f.client(f.users.admin.secret);
    const { cloud } = await admin.clouds.createCloud({ name: "etag cloud", driver: "aws", endpoint: "https://api.cloud.test", regions: [{ id: "r1", name: "R1", dataCenters: [] }] });
    const updated = (await admin.clouds.updateCloud({ id: cloud?.id, etag: cloud?.etag, updateMask: ["name"], name: "etag cloud 2" })).cloud;
    for (const call of [
      () => admin.clouds.updateCloud({ id: cloud?.id, etag: cloud?.etag, updateMask: ["name", "endpoint", "regions"], name: "overwritten", endpoint: "https://203.0.113.99", regions: [] }),
      () => admin.clouds.deleteCloud({ id: cloud?.id, etag: cloud?.etag }),
      () => admin.clouds.updateCloud({ id: cloud?.id, etag: '"v999"', updateMask: ["name"], name: "overwritten" }),
    ]) {
      await expect(call()).rejects.toMatchObject({ code: status.ABORTED });
    }
    expect((await admin.clouds.getCloud({ id: cloud?.id })).cloud).toEqual(updated);
  });

  it("refuses unsafe endpoints with a field violation, on create and update", async () => {
    const admin = f.client(f.users.admin.secret);
    for (const endpoint of ["http://api.cloud.test", "https://169.254.169.254/latest", "https://[fe80::1]", "https://metadata.google.internal", "https://rebind.cloud.test", "ftp://api.cloud.test", "https://u:p@api.cloud.test"]) {
      const err = await admin.clouds.createCloud({ name: "ssrf", driver: "aws", endpoint }).catch((e: unknown) => e);
      expect(err, endpoint).toMatchObject({ code: status.INVALID_ARGUMENT });
      expect(fields(err), endpoint).toEqual(["endpoint"]);
    }
    expect((await admin.clouds.listClouds({})).clouds.map((c) => c.name)).not.toContain("ssrf");
    const { cloud } = await admin.clouds.createCloud({ name: "ssrf update", driver: "aws", endpoint: "https://api.cloud.test" });
    const err = await admin.clouds.updateCloud({ id: cloud?.id, etag: cloud?.etag, updateMask: ["endpoint"], endpoint: "https://169.254.169.254" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "endpoint" }] });
    expect((await admin.clouds.getCloud({ id: cloud?.id })).cloud).toEqual(cloud);
  });

  it("validates every field, listing all bad ones", async () => {
    const admin = f.client(f.users.admin.secret);
    const err = await admin.clouds.createCloud({ name: "", driver: "AWS!", endpoint: "", regions: [{ id: "ok", name: "x", dataCenters: ["\u0000"] }, { id: "ok", name: "y", dataCenters: [] }] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(fields(err)).toEqual(["driver", "endpoint", "name", "regions[0].data_centers[0]", "regions[1].id"]);
    await expect(admin.clouds.updateCloud({ id: "x", updateMask: ["driver"] })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "update_mask.paths[0]" }] });
  });
});

describe("budget codes", () => {
  it("create, get, list, update, grant and revoke", async () => {
    const finance = f.client(f.users.finance.secret);
    const { budgetCode } = await finance.budgetCodes.createBudgetCode({ code: "RND-1", name: "Research", financeCode: "FIN/42", hardQuotaCents: "100000", softQuotaCents: "80000" });
    expect(budgetCode).toMatchObject({ code: "RND-1", hardQuotaCents: "100000", softQuotaCents: "80000", state: BudgetCodeState.BUDGET_CODE_STATE_ACTIVE, currentUsageCents: "0", projectedUsageCents: "0", userIds: [] });
    await expect(finance.budgetCodes.createBudgetCode({ code: "RND-1", name: "again", hardQuotaCents: "1" })).rejects.toMatchObject({ code: status.ALREADY_EXISTS });
    const reader = f.client(f.users.reader.secret);
    // Readers and operators see only the codes they hold; changing codes is finance's (and admins').
    await expect(reader.budgetCodes.getBudgetCode({ code: "RND-1" })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(reader.budgetCodes.createBudgetCode({ code: "X", name: "x", hardQuotaCents: "1" })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    await expect(f.client(f.users.operator.secret).budgetCodes.createBudgetCode({ code: "X", name: "x", hardQuotaCents: "1" })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    // Granting who may spend is admin-only.
    await expect(finance.budgetCodes.grantBudgetCode({ code: "RND-1", userId: f.users.operator.id })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    await expect(f.client(f.users.operator.secret).budgetCodes.grantBudgetCode({ code: "RND-1", userId: f.users.operator.id })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    const admin = f.client(f.users.admin.secret);
    const granted = (await admin.budgetCodes.grantBudgetCode({ code: "RND-1", userId: f.users.reader.id })).budgetCode;
    expect(granted?.userIds).toEqual([f.users.reader.id]);
    expect((await reader.budgetCodes.getBudgetCode({ code: "RND-1" })).budgetCode).toMatchObject({ code: "RND-1", userIds: [f.users.reader.id] });
    await expect(admin.budgetCodes.grantBudgetCode({ code: "RND-1", userId: "01HZZZZZZZZZZZZZZZZZZZZZZZ" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "user_id" }] });
    await expect(admin.budgetCodes.grantBudgetCode({ code: "NOPE", userId: f.users.reader.id })).rejects.toMatchObject({ code: status.NOT_FOUND });

    const disabled = (await finance.budgetCodes.updateBudgetCode({ code: "RND-1", etag: granted?.etag, updateMask: ["state", "hard_quota_cents"], state: BudgetCodeState.BUDGET_CODE_STATE_DISABLED, hardQuotaCents: "90000" })).budgetCode;
    expect(disabled).toMatchObject({ state: BudgetCodeState.BUDGET_CODE_STATE_DISABLED, hardQuotaCents: "90000", softQuotaCents: "80000" });
    expect((await reader.budgetCodes.listBudgetCodes({ state: BudgetCodeState.BUDGET_CODE_STATE_DISABLED })).budgetCodes.map((b) => b.code)).toEqual(["RND-1"]);
    const bad = await finance.budgetCodes.updateBudgetCode({ code: "RND-1", updateMask: ["hard_quota_cents"], hardQuotaCents: "100" }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "soft_quota_cents" }] });
    const revoked = (await admin.budgetCodes.revokeBudgetCode({ code: "RND-1", userId: f.users.reader.id })).budgetCode;
    expect(revoked).toMatchObject({ userIds: [], hardQuotaCents: "90000" });
  });

  it("stale etags are ABORTED and overwrite nothing", async () => {
    const finance = f.client(f.users.finance.secret);
    const { budgetCode } = await finance.budgetCodes.createBudgetCode({ code: "ETAG-1", name: "etag", hardQuotaCents: "500" });
    const updated = (await finance.budgetCodes.updateBudgetCode({ code: "ETAG-1", etag: budgetCode?.etag, updateMask: ["name"], name: "etag 2" })).budgetCode;
    await expect(finance.budgetCodes.updateBudgetCode({ code: "ETAG-1", etag: budgetCode?.etag, updateMask: ["name", "hard_quota_cents"], name: "x", hardQuotaCents: "1" })).rejects.toMatchObject({ code: status.ABORTED });
    await expect(finance.budgetCodes.deleteBudgetCode({ code: "ETAG-1", etag: budgetCode?.etag })).rejects.toMatchObject({ code: status.ABORTED });
    expect((await finance.budgetCodes.getBudgetCode({ code: "ETAG-1" })).budgetCode).toEqual(updated);
  });

  it("deleting a code in use needs a replacement, which takes over its holders", async () => {
    const finance = f.client(f.users.finance.secret);
    const admin = f.client(f.users.admin.secret);
    await finance.budgetCodes.createBudgetCode({ code: "OLD-1", name: "old", hardQuotaCents: "500" });
    await finance.budgetCodes.createBudgetCode({ code: "NEW-1", name: "new", hardQuotaCents: "500" });
    const holder = await insertUser(f.dbs, ["reader"]);
    await admin.budgetCodes.grantBudgetCode({ code: "OLD-1", userId: holder });
    const err = await finance.budgetCodes.deleteBudgetCode({ code: "OLD-1" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.FAILED_PRECONDITION });
    expect((await finance.budgetCodes.getBudgetCode({ code: "OLD-1" })).budgetCode?.userIds).toEqual([holder]);
    await expect(finance.budgetCodes.deleteBudgetCode({ code: "OLD-1", replacementCode: "MISSING" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "replacement_code" }] });
    await expect(finance.budgetCodes.deleteBudgetCode({ code: "OLD-1", replacementCode: "OLD-1" })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "replacement_code" }] });
    await finance.budgetCodes.deleteBudgetCode({ code: "OLD-1", replacementCode: "NEW-1" });
    await expect(finance.budgetCodes.getBudgetCode({ code: "OLD-1" })).rejects.toMatchObject({ code: status.NOT_FOUND });
    expect((await finance.budgetCodes.getBudgetCode({ code: "NEW-1" })).budgetCode?.userIds).toEqual([holder]);
    // Not in use: no replacement needed.
    await finance.budgetCodes.createBudgetCode({ code: "FREE-1", name: "free", hardQuotaCents: "1" });
    await finance.budgetCodes.deleteBudgetCode({ code: "FREE-1" });
  });

  it("validates amounts, codes and states", async () => {
    const finance = f.client(f.users.finance.secret);
    const err = await finance.budgetCodes.createBudgetCode({ code: "bad code", name: "", financeCode: "a b", hardQuotaCents: "0", softQuotaCents: "-5", state: 7 as BudgetCodeState }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(fields(err)).toEqual(["code", "finance_code", "hard_quota_cents", "name", "soft_quota_cents", "state"]);
    const over = await finance.budgetCodes.createBudgetCode({ code: "OVER", name: "o", hardQuotaCents: "10", softQuotaCents: "11" }).catch((e: unknown) => e);
    expect(fields(over)).toEqual(["soft_quota_cents"]);
    const huge = await finance.budgetCodes.createBudgetCode({ code: "HUGE", name: "h", hardQuotaCents: "9223372036854775807" }).catch((e: unknown) => e);
    expect(fields(huge)).toEqual(["hard_quota_cents"]);
  });
});

describe("requireBudgetCode", () => {
  it("denies codes the user does not hold, refuses over the hard quota with QuotaFailure, warns over the soft one", async () => {
    const db = f.dbs.provisioning;
    const user = { id: await insertUser(f.dbs, ["operator"]) };
    await db.budgetCode.create({ data: { code: "Q-1", name: "q", financeCode: "", hardQuotaCents: 1000n, softQuotaCents: 800n, currentUsageCents: 700n, projectedUsageCents: 0n } });
    await expect(requireBudgetCode(db, user, "Q-1", 10n)).rejects.toBeInstanceOf(PermissionDeniedError);
    await expect(requireBudgetCode(db, user, "NO-SUCH-CODE", 10n)).rejects.toBeInstanceOf(PermissionDeniedError);
    await db.budgetCodeGrant.create({ data: { code: "Q-1", userId: user.id } });
    expect(await requireBudgetCode(db, user, "Q-1", 50n)).toEqual({ softQuotaExceeded: false, usageAfterCents: 750n });
    expect(await requireBudgetCode(db, user, "Q-1", 200n)).toEqual({ softQuotaExceeded: true, usageAfterCents: 900n });
    expect(await requireBudgetCode(db, user, "Q-1", 300n)).toEqual({ softQuotaExceeded: true, usageAfterCents: 1000n });
    const over = await requireBudgetCode(db, user, "Q-1", 301n).catch((e: unknown) => e);
    expect(over).toBeInstanceOf(FailedPreconditionError);
    expect(over).toMatchObject({ reason: "QUOTA_EXCEEDED", quotaViolations: [{ subject: "budget_codes/Q-1" }] });
    await db.budgetCode.update({ where: { code: "Q-1" }, data: { state: "DISABLED" } });
    await expect(requireBudgetCode(db, user, "Q-1", 1n)).rejects.toMatchObject({ reason: "BUDGET_CODE_DISABLED" });
  });
});
