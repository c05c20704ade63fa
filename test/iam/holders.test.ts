// Who may see and change budget codes, users and groups, over a real server with the DB-backed authenticator: a role ×
// change matrix with operators and readers inside and outside a code's holders and a group's members, and what each
// caller sees of codes, users and groups it does or does not share.
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../src/iam/api-keys/keys.js";
import { roleGrants } from "../../src/iam/permissions.js";
import { BudgetCodeState } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import { requireBudgetCode } from "../../src/provisioning/budgets/guard.js";
import { budgetCodeHandlers } from "../../src/provisioning/budgets/handlers.js";
import { createBudgetCodeService } from "../../src/provisioning/budgets/service.js";
import { insertAccounts, insertUser, startIamFixture, type IamFixture } from "./support.js";

let f: IamFixture;
/** Callers by where they stand: holders of code HELD and members of group G_IN, or neither. */
const actors: Record<string, { id: string; secret: string }> = {};
const groups = { in: "", out: "" };
const ACCOUNT_IN = "acct-holders-in";
const ACCOUNT_OUT = "acct-holders-out";

async function actor(name: string, roles: string[]): Promise<void> {
  const id = await insertUser(f.dbs, roles);
  actors[name] = { id, secret: (await createApiKey(f.dbs.provisioning, id, name)).secret };
}

beforeAll(async () => {
  f = await startIamFixture("iam_holders", (dbs) => [budgetCodeHandlers(createBudgetCodeService(dbs.provisioning))]);
  await insertAccounts(f.dbs, [ACCOUNT_IN, ACCOUNT_OUT]);
  actors.admin = f.users.admin;
  actors.finance = f.users.finance;
  for (const [name, roles] of [["operatorIn", ["operator"]], ["operatorOut", ["operator"]], ["readerIn", ["reader"]], ["readerOut", ["reader"]]] as const) await actor(name, [...roles]);
  const admin = f.client(f.users.admin.secret);
  await admin.budgetCodes.createBudgetCode({ code: "HELD", name: "held", hardQuotaCents: "100000" });
  await admin.budgetCodes.createBudgetCode({ code: "OTHER", name: "other", hardQuotaCents: "100000" });
  for (const who of ["operatorIn", "readerIn"]) await admin.budgetCodes.grantBudgetCode({ code: "HELD", userId: actors[who]?.id });
  await admin.budgetCodes.grantBudgetCode({ code: "OTHER", userId: actors.operatorOut?.id });
  groups.in = (await admin.groups.createGroup({ name: "holders in", roles: [] })).group?.id ?? "";
  groups.out = (await admin.groups.createGroup({ name: "holders out", roles: [] })).group?.id ?? "";
  for (const who of ["operatorIn", "readerIn"]) await admin.groups.addGroupMember({ groupId: groups.in, userId: actors[who]?.id });
  await admin.groups.addGroupMember({ groupId: groups.out, userId: actors.operatorOut?.id });
  await admin.groups.setGroupAccounts({ groupId: groups.in, accountIds: [ACCOUNT_IN] });
  await admin.groups.setGroupAccounts({ groupId: groups.out, accountIds: [ACCOUNT_OUT] });
});
afterAll(async () => {
  await f?.close();
});

const client = (who: string) => f.client(actors[who]?.secret);
const outcome = (p: Promise<unknown>): Promise<number> => p.then(
  () => status.OK,
  (e: { code?: number }) => e.code ?? -1,
);

/** Each change, made harmless to repeat (same values, fresh codes), so that allowed ones can really run. */
const CHANGES: Record<string, (who: string) => Promise<number>> = {
  "disable HELD": (w) => outcome(client(w).budgetCodes.updateBudgetCode({ code: "HELD", updateMask: ["state"], state: BudgetCodeState.BUDGET_CODE_STATE_ACTIVE })),
  "rename HELD": (w) => outcome(client(w).budgetCodes.updateBudgetCode({ code: "HELD", updateMask: ["name"], name: "held" })),
  "raise HELD's hard quota": (w) => outcome(client(w).budgetCodes.updateBudgetCode({ code: "HELD", updateMask: ["hard_quota_cents"], hardQuotaCents: "100000" })),
  "disable OTHER": (w) => outcome(client(w).budgetCodes.updateBudgetCode({ code: "OTHER", updateMask: ["state"], state: BudgetCodeState.BUDGET_CODE_STATE_ACTIVE })),
  "create a code": (w) => outcome(client(w).budgetCodes.createBudgetCode({ code: `NEW-${w.toUpperCase()}`, name: "new", hardQuotaCents: "1" })),
  "delete a code": async (w) => {
    await f.client(f.users.admin.secret).budgetCodes.createBudgetCode({ code: `DEL-${w.toUpperCase()}`, name: "doomed", hardQuotaCents: "1" });
    return outcome(client(w).budgetCodes.deleteBudgetCode({ code: `DEL-${w.toUpperCase()}` }));
  },
  "grant HELD": (w) => outcome(client(w).budgetCodes.grantBudgetCode({ code: "HELD", userId: actors.operatorIn?.id })),
  "rename its group": (w) => outcome(client(w).groups.updateGroup({ id: groups.in, updateMask: ["description"], description: "" })),
  "add a member to its group": (w) => outcome(client(w).groups.addGroupMember({ groupId: groups.in, userId: actors.readerIn?.id })),
  "set its group's accounts": (w) => outcome(client(w).groups.setGroupAccounts({ groupId: groups.in, accountIds: [ACCOUNT_IN] })),
  "set its group's roles": (w) => outcome(client(w).groups.setGroupRoles({ groupId: groups.in, roles: [] })),
};
const BUDGET_SHAPE = new Set(["disable HELD", "rename HELD", "raise HELD's hard quota", "disable OTHER", "create a code", "delete a code"]);

describe("the role × change matrix", () => {
  it("lets admins make every change, finance change budget codes only, and operators and readers nothing, held or not", async () => {
    const table: string[] = [];
    for (const who of ["admin", "finance", "operatorIn", "operatorOut", "readerIn", "readerOut"]) {
      for (const [change, run] of Object.entries(CHANGES)) {
        const allowed = who === "admin" || (who === "finance" && BUDGET_SHAPE.has(change));
        const code = await run(who);
        table.push(`${who} ${change}: ${code}`);
        if (allowed) expect(code, `${who} ${change}`).toBe(status.OK);
        else expect(code, `${who} ${change}`).toBe(status.PERMISSION_DENIED);
      }
    }
    expect(table).toHaveLength(6 * Object.keys(CHANGES).length);
  });

  it("keeps a code's quota where finance left it: an operator holding it cannot lift it to 10^15 cents", async () => {
    const raise = client("operatorIn").budgetCodes.updateBudgetCode({ code: "HELD", updateMask: ["hard_quota_cents"], hardQuotaCents: (10n ** 15n).toString() });
    await expect(raise).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    expect((await f.client(f.users.admin.secret).budgetCodes.getBudgetCode({ code: "HELD" })).budgetCode?.hardQuotaCents).toBe("100000");
  });

  it("grants operators neither agents.join nor finance.*, and only the agent-join principal joins", () => {
    expect(roleGrants("operator", "agents.join")).toBe(false);
    expect(roleGrants("operator", "finance.budgets")).toBe(false);
    expect(roleGrants("agent-join", "agents.join")).toBe(true);
    for (const role of ["finance", "reader"]) expect(roleGrants(role, "agents.join"), role).toBe(false);
  });
});

describe("what each caller sees", () => {
  it("shows operators and readers only the codes they hold, and of the holders only themselves; others are NOT_FOUND", async () => {
    const mine = await client("operatorIn").budgetCodes.listBudgetCodes({});
    expect(mine.budgetCodes.map((b) => b.code)).toEqual(["HELD"]);
    expect(mine.budgetCodes[0]?.userIds).toEqual([actors.operatorIn?.id]);
    expect((await client("readerIn").budgetCodes.getBudgetCode({ code: "HELD" })).budgetCode?.userIds).toEqual([actors.readerIn?.id]);
    await expect(client("operatorIn").budgetCodes.getBudgetCode({ code: "OTHER" })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(client("readerOut").budgetCodes.getBudgetCode({ code: "HELD" })).rejects.toMatchObject({ code: status.NOT_FOUND });
    expect((await client("readerOut").budgetCodes.listBudgetCodes({})).budgetCodes).toEqual([]);
    const all = await f.client(f.users.finance.secret).budgetCodes.listBudgetCodes({ pageSize: 100 });
    expect(all.budgetCodes.map((b) => b.code)).toEqual(expect.arrayContaining(["HELD", "OTHER"]));
    expect(all.budgetCodes.find((b) => b.code === "HELD")?.userIds).toHaveLength(2);
  });

  it("lets operators spend only codes they hold", async () => {
    await expect(requireBudgetCode(f.dbs.provisioning, { id: actors.operatorIn?.id ?? "" }, "HELD", 10n)).resolves.toMatchObject({ usageAfterCents: 10n });
    await expect(requireBudgetCode(f.dbs.provisioning, { id: actors.operatorIn?.id ?? "" }, "OTHER", 10n)).rejects.toMatchObject({ reason: "BUDGET_CODE_NOT_HELD" });
  });

  it("shows non-admins their own groups (with accounts) and no foreign group", async () => {
    const listed = await client("operatorIn").groups.listGroups({});
    expect(listed.groups.map((g) => g.id)).toEqual([groups.in]);
    expect(listed.groups[0]?.accountIds).toEqual([ACCOUNT_IN]);
    await expect(client("operatorIn").groups.getGroup({ id: groups.out })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(client("readerOut").groups.getGroup({ id: groups.in })).rejects.toMatchObject({ code: status.NOT_FOUND });
    expect((await client("readerOut").groups.listGroups({})).groups).toEqual([]);
    expect((await f.client(f.users.admin.secret).groups.listGroups({ pageSize: 100 })).groups.map((g) => g.id)).toEqual(expect.arrayContaining([groups.in, groups.out]));
  });

  it("shows non-admins themselves and the members of their groups, without other users' emails", async () => {
    const listed = (await client("operatorIn").users.listUsers({ pageSize: 100 })).users;
    expect(listed.map((u) => u.id).sort()).toEqual([actors.operatorIn?.id, actors.readerIn?.id].sort());
    const self = listed.find((u) => u.id === actors.operatorIn?.id);
    const peer = listed.find((u) => u.id === actors.readerIn?.id);
    expect(self?.email).toMatch(/@example\.test$/);
    expect(peer?.email).toBe("");
    expect(peer?.groupIds).toEqual([groups.in]);
    await expect(client("operatorIn").users.getUser({ id: actors.operatorOut?.id })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(client("readerOut").users.getUser({ id: actors.readerIn?.id })).rejects.toMatchObject({ code: status.NOT_FOUND });
    expect((await client("readerOut").users.listUsers({ pageSize: 100 })).users.map((u) => u.id)).toEqual([actors.readerOut?.id]);
    const everyone = (await f.client(f.users.admin.secret).users.listUsers({ pageSize: 100 })).users;
    expect(everyone.length).toBeGreaterThanOrEqual(8);
    expect(everyone.every((u) => u.email.endsWith("@example.test"))).toBe(true);
  });
});
