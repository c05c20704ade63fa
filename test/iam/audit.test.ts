// The audit trail over a real server and database: a role grant names its principal and the call's trace id, a budget
// change its before and after; refused or failed changes leave no row, and a row that cannot be written undoes the
// change (same transaction); the table refuses UPDATE, and DELETE of a row younger than 7 days; diffs hold
// allow-listed fields only (never an API key's secret); reads filter by object, principal and time with keyset pages,
// and only admins may read.
import { randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditDiff } from "../../src/audit/diff.js";
import { DispatcherError } from "../../src/client/index.js";
import type { AuditEvent } from "../../src/gen/proto/dispatcher/v1/audit.js";
import { BudgetCodeState } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import { budgetCodeHandlers } from "../../src/provisioning/budgets/handlers.js";
import { createBudgetCodeService } from "../../src/provisioning/budgets/service.js";
import { startIamFixture, type IamFixture } from "./support.js";

let f: IamFixture;

beforeAll(async () => {
  f = await startIamFixture("iam_audit", (dbs) => [budgetCodeHandlers(createBudgetCodeService(dbs.provisioning))]);
});
afterAll(() => f?.close());

const traceparent = (): { traceId: string; header: string } => {
  const traceId = randomBytes(16).toString("hex");
  return { traceId, header: `00-${traceId}-${randomBytes(8).toString("hex")}-01` };
};

async function eventsOf(objectType: string, objectId: string): Promise<AuditEvent[]> {
  return (await f.client(f.users.admin.secret).audit.listAuditEvents({ objectType, objectId, pageSize: 100 })).events;
}

const diffOf = (e: AuditEvent | undefined): Record<string, { from?: unknown; to?: unknown }> => (e?.diffJson ? JSON.parse(e.diffJson) : {});

async function count(): Promise<number> {
  const [row] = await f.dbs.provisioning.$queryRaw<Array<{ n: bigint }>>`SELECT COUNT(*) AS n FROM audit_events`;
  return Number(row?.n ?? 0);
}

describe("the audit trail", () => {
  it("shows a role grant (a group's roles, a user's roles) with the principal and the call's trace id", async () => {
    const admin = f.client(f.users.admin.secret);
    const { group } = await admin.groups.createGroup({ name: `ops-${randomBytes(3).toString("hex")}`, description: "", roles: ["reader"] });
    const grant = traceparent();
    await admin.groups.setGroupRoles({ groupId: group?.id ?? "", etag: group?.etag ?? "", roles: ["reader", "operator"] }, { metadata: { traceparent: grant.header } });

    const [set, created] = await eventsOf("group", group?.id ?? "");
    expect(created).toMatchObject({ action: "group.create", principal: f.users.admin.id, objectType: "group", objectId: group?.id });
    expect(set).toMatchObject({ action: "group.set_roles", principal: f.users.admin.id, traceId: grant.traceId });
    expect(diffOf(set)).toEqual({ roles: { from: ["reader"], to: ["operator", "reader"] } });
    expect(Number(set?.id)).toBeGreaterThan(Number(created?.id));
    // The request log line of the same call carries the same trace id.
    expect(f.server.requests.find((r) => r.method.endsWith("/SetGroupRoles"))?.traceId).toBe(grant.traceId);

    const user = f.users.reader;
    const before = (await admin.users.getUser({ id: user.id })).user;
    const promote = traceparent();
    await admin.users.updateUser({ id: user.id, etag: before?.etag ?? "", updateMask: ["roles"], roles: ["reader", "finance"] }, { metadata: { traceparent: promote.header } });
    const [update] = await eventsOf("user", user.id);
    expect(update).toMatchObject({ action: "user.update", principal: f.users.admin.id, traceId: promote.traceId });
    expect(diffOf(update)).toEqual({ roles: { from: ["reader"], to: ["finance", "reader"] } });
    await admin.users.updateUser({ id: user.id, etag: "", updateMask: ["roles"], roles: ["reader"] });
  });

  it("records a budget code's quota change with from and to, by whoever made it; a refused change leaves no row", async () => {
    const admin = f.client(f.users.admin.secret);
    const code = `AUD${randomBytes(3).toString("hex").toUpperCase()}`;
    const created = (await admin.budgetCodes.createBudgetCode({ code, name: "audited", financeCode: "F-9", hardQuotaCents: "100000", softQuotaCents: "0", state: BudgetCodeState.BUDGET_CODE_STATE_ACTIVE })).budgetCode;
    const rows = await count();
    const raise = { code, etag: created?.etag ?? "", updateMask: ["hard_quota_cents"], hardQuotaCents: "1000000000000000" };
    await expect(f.client(f.users.operator.secret).budgetCodes.updateBudgetCode(raise)).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    await expect(admin.budgetCodes.updateBudgetCode({ ...raise, etag: '"v999"' })).rejects.toMatchObject({ code: status.ABORTED });
    expect(await count()).toBe(rows);

    await f.client(f.users.finance.secret).budgetCodes.updateBudgetCode({ ...raise, hardQuotaCents: "200000" });
    const [update, create] = await eventsOf("budget_code", code);
    expect(create).toMatchObject({ action: "budget_code.create", principal: f.users.admin.id });
    expect(diffOf(create)).toMatchObject({ code: { to: code }, hardQuotaCents: { to: "100000" }, state: { to: "ACTIVE" } });
    expect(update).toMatchObject({ action: "budget_code.update", principal: f.users.finance.id });
    expect(diffOf(update)).toEqual({ hardQuotaCents: { from: "100000", to: "200000" } });
  });

  it("is written in the change's transaction: when the row cannot be written, the change is undone", async () => {
    const admin = f.client(f.users.admin.secret);
    const name = `undone-${randomBytes(3).toString("hex")}`;
    await f.dbs.provisioning.$executeRawUnsafe("CREATE TRIGGER audit_events_test_refuse BEFORE INSERT ON audit_events FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit refused (test)'");
    try {
      const err = await admin.groups.createGroup({ name, description: "", roles: [] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DispatcherError);
    } finally {
      await f.dbs.provisioning.$executeRawUnsafe("DROP TRIGGER audit_events_test_refuse");
    }
    const { groups } = await admin.groups.listGroups({ pageSize: 1000 });
    expect(groups.map((g) => g.name)).not.toContain(name);
  });

  it("is append-only: the database refuses UPDATE, and DELETE of a row younger than 7 days", async () => {
    expect(await count()).toBeGreaterThan(0);
    await expect(f.dbs.provisioning.$executeRaw`UPDATE audit_events SET principal = 'someone-else'`).rejects.toThrow(/append-only/);
    await expect(f.dbs.provisioning.$executeRaw`DELETE FROM audit_events`).rejects.toThrow(/append-only/);
    const [row] = await f.dbs.provisioning.$queryRaw<Array<{ n: bigint }>>`SELECT COUNT(*) AS n FROM audit_events WHERE principal = 'someone-else'`;
    expect(Number(row?.n)).toBe(0);
  });

  it("holds no API key secret nor its prefix: diffs show allow-listed fields only", async () => {
    const made = await f.client(f.users.reader.secret).apiKeys.createApiKey({ name: "audited key" });
    const id = made.apiKey?.id ?? "";
    await f.client(f.users.reader.secret).apiKeys.revokeApiKey({ id });
    const [revoke, create] = await eventsOf("api_key", id);
    expect(create).toMatchObject({ action: "api_key.create", principal: f.users.reader.id });
    expect(Object.keys(diffOf(create)).sort()).toEqual(["name", "userId"]);
    expect(revoke).toMatchObject({ action: "api_key.revoke", principal: f.users.reader.id });
    expect(Object.keys(diffOf(revoke))).toEqual(["revokedAt"]);
    const rows = await f.dbs.provisioning.$queryRaw<Array<Record<string, unknown>>>`SELECT * FROM audit_events`;
    const dump = JSON.stringify(rows, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
    expect(dump).not.toContain(made.secret);
    expect(dump).not.toContain(made.apiKey?.prefix);
    for (const u of Object.values(f.users)) expect(dump).not.toContain(u.secret);
  });

  it("cuts diffs by allow-list: a field nobody listed never reaches the trail", () => {
    const diff = auditDiff("user", { name: "a", roles: ["reader"], passwordHash: "x" }, { name: "b", roles: ["reader"], passwordHash: "y", secret: "s", token: "t" });
    expect(diff).toEqual({ name: { from: "a", to: "b" } });
    expect(auditDiff("no_such_type", null, { name: "a", secret: "s" })).toEqual({});
    expect(auditDiff("api_key", null, { userId: "u", name: "k", prefix: "dsp_abcdefgh", secretHash: "h" })).toEqual({ userId: { to: "u" }, name: { to: "k" } });
  });

  it("filters by principal and time and walks keyset pages, newest first", async () => {
    const admin = f.client(f.users.admin.secret);
    const all = (await admin.audit.listAuditEvents({ pageSize: 1000 })).events;
    expect(all.length).toBeGreaterThan(5);
    expect(all.map((e) => Number(e.id))).toEqual([...all.map((e) => Number(e.id))].sort((a, b) => b - a));

    const walked: AuditEvent[] = [];
    let pageToken = "";
    do {
      const page = await admin.audit.listAuditEvents({ pageSize: 2, pageToken });
      expect(page.events.length).toBeLessThanOrEqual(2);
      walked.push(...page.events);
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(walked.map((e) => e.id)).toEqual(all.map((e) => e.id));

    const byReader = (await admin.audit.listAuditEvents({ principal: f.users.reader.id, pageSize: 1000 })).events;
    expect(byReader.length).toBeGreaterThan(0);
    expect(new Set(byReader.map((e) => e.principal))).toEqual(new Set([f.users.reader.id]));

    const future = new Date(Date.now() + 3_600_000);
    expect((await admin.audit.listAuditEvents({ startTime: future, pageSize: 10 })).events).toEqual([]);
    expect((await admin.audit.listAuditEvents({ startTime: new Date(Date.now() - 3_600_000), endTime: future, pageSize: 1000 })).events.length).toBe(all.length);

    const first = await admin.audit.listAuditEvents({ pageSize: 1 });
    await expect(admin.audit.listAuditEvents({ pageSize: 1, pageToken: first.nextPageToken, principal: f.users.admin.id })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await expect(admin.audit.listAuditEvents({ objectId: "x", pageSize: 1 })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await expect(admin.audit.listAuditEvents({ startTime: future, endTime: new Date(), pageSize: 1 })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
  });

  it("is read by admins only", async () => {
    for (const role of ["operator", "finance", "reader"] as const) {
      await expect(f.client(f.users[role].secret).audit.listAuditEvents({ pageSize: 1 }), role).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    }
  });
});
