// Object scope of jobs over a real server: a user sees the jobs it requested and those of the accounts its groups may
// use (jobs on such an account or on one of its servers); any other job is NOT_FOUND, the same answer as a job that
// does not exist, in GetJob, ListJobs, ListJobEvents, WatchJob, CancelJob and RetryJob. Admins see every job.
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DispatcherClients } from "../../src/client/index.js";
import { newId } from "../../src/db/ids.js";
import { JobState } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { createApiKey } from "../../src/iam/api-keys/keys.js";
import type { Principal } from "../../src/iam/principal.js";
import { ACCOUNT_DISCOVER_KIND } from "../../src/provisioning/discovery/kind.js";
import { insertUser, startProvisioningFixture, type ProvisioningFixture } from "./support.js";

let f: ProvisioningFixture;
let admin: DispatcherClients;
let member: DispatcherClients;
let memberId = "";
const ids = { a: "", b: "", serverA: "", serverB: "" };
const jobs = { validateA: "", validateB: "", serverA: "", serverB: "", diagnosticA: "", own: "" };
const MISSING = "01HZZZZZZZZZZZZZZZZZZZZZZZ";

async function insertServer(accountId: string): Promise<string> {
  const id = newId();
  await f.dbs.provisioning.server.create({
    data: { id, accountId, regionId: "r1", dataCenter: "r1a", name: `s-${id.slice(-4)}`, productId: "small", imageId: "base", budgetCode: "B", addresses: { private: [], public: [] }, details: {}, hourlyPriceMicros: 1n, accruesWhenStopped: false, createdBy: "test" },
  });
  return id;
}

beforeAll(async () => {
  f = await startProvisioningFixture("prov_job_scope");
  admin = f.client(f.users.admin.secret);
  const cloudId = (await admin.clouds.createCloud({ name: "scope cloud", driver: "aws", endpoint: "https://api.cloud.test" })).cloud?.id ?? "";
  const connect = async (name: string) => admin.accounts.createAccount({ name, cloudId, credentials: { type: "k", fields: { key: "x" } } });
  const a = await connect("a");
  const b = await connect("b");
  ids.a = a.account?.id ?? "";
  ids.b = b.account?.id ?? "";
  jobs.validateA = a.validationJob?.id ?? "";
  jobs.validateB = b.validationJob?.id ?? "";
  ids.serverA = await insertServer(ids.a);
  ids.serverB = await insertServer(ids.b);
  const adminPrincipal: Principal = { id: f.users.admin.id, kind: "user", roles: ["admin"], displayName: "admin" };
  const onServer = async (accountId: string, serverId: string) => (await f.jobs.createJob({ kind: ACCOUNT_DISCOVER_KIND, payload: { accountId }, requester: adminPrincipal, resource: { type: "server", id: serverId } })).job.id;
  jobs.serverA = await onServer(ids.a, ids.serverA);
  jobs.serverB = await onServer(ids.b, ids.serverB);
  jobs.diagnosticA = (await f.jobs.createJob({ kind: "diagnostic", payload: {}, requester: adminPrincipal, resource: { type: "account", id: ids.a } })).job.id;

  memberId = await insertUser(f.dbs, ["reader"]);
  const { group } = await admin.groups.createGroup({ name: "team a", roles: ["operator"] });
  await admin.groups.addGroupMember({ groupId: group?.id, userId: memberId });
  await admin.groups.setGroupAccounts({ groupId: group?.id, accountIds: [ids.a] });
  member = f.client((await createApiKey(f.dbs.provisioning, memberId, "member")).secret);
  const memberPrincipal: Principal = { id: memberId, kind: "user", roles: ["operator", "reader"], displayName: "member", accountIds: [ids.a] };
  // Its own request, on no resource at all.
  jobs.own = (await f.jobs.createJob({ kind: ACCOUNT_DISCOVER_KIND, payload: { accountId: ids.b }, requester: memberPrincipal })).job.id;
});
afterAll(async () => {
  await f?.close();
});

const code = async (p: Promise<unknown>): Promise<{ code: number; message: string }> => {
  try {
    await p;
    return { code: status.OK, message: "" };
  } catch (err) {
    return err as { code: number; message: string };
  }
};

describe("job object scope", () => {
  it("a member sees its accounts' jobs (account and server resources) and its own; others are NOT_FOUND like missing ones", async () => {
    for (const id of [jobs.validateA, jobs.serverA, jobs.diagnosticA, jobs.own]) expect((await member.jobs.getJob({ id })).job?.id).toBe(id);
    const missing = await code(member.jobs.getJob({ id: MISSING }));
    for (const id of [jobs.validateB, jobs.serverB]) {
      const hidden = await code(member.jobs.getJob({ id }));
      expect(hidden.code).toBe(status.NOT_FOUND);
      expect(hidden.message.replace(id, "ID")).toBe(missing.message.replace(MISSING, "ID"));
      for (const call of [() => member.jobs.listJobEvents({ id }), () => member.jobs.cancelJob({ id }), () => member.jobs.retryJob({ id })]) expect((await code(call())).code).toBe(status.NOT_FOUND);
      const watch = member.jobs.watchJob({ id });
      await expect((async () => {
        for await (const _ of watch) return;
      })()).rejects.toMatchObject({ code: status.NOT_FOUND });
    }
    const listed = (await member.jobs.listJobs({ pageSize: 1000 })).jobs.map((j) => j.id).sort();
    expect(listed).toEqual([jobs.validateA, jobs.serverA, jobs.diagnosticA, jobs.own].sort());
    expect((await member.jobs.listJobs({ pageSize: 1000, resource: { type: "server", id: ids.serverB } })).jobs).toEqual([]);
  });

  it("in scope, the method and the kind's permissions still apply; out of groups, an operator sees none; admins see all", async () => {
    // A diagnostic job on the member's account: visible, but retrying it needs admin.diagnostics.
    expect((await code(member.jobs.retryJob({ id: jobs.diagnosticA }))).code).toBe(status.PERMISSION_DENIED);
    expect((await member.jobs.cancelJob({ id: jobs.serverA })).job?.state).toBe(JobState.JOB_STATE_CANCELLED);
    const operator = f.client(f.users.operator.secret);
    expect((await code(operator.jobs.getJob({ id: jobs.validateA }))).code).toBe(status.NOT_FOUND);
    expect((await operator.jobs.listJobs({ pageSize: 1000 })).jobs).toEqual([]);
    const all = (await admin.jobs.listJobs({ pageSize: 1000 })).jobs.map((j) => j.id);
    expect(all).toEqual(expect.arrayContaining(Object.values(jobs)));
    // Moving the account out of the group takes its jobs out of sight (after the authenticator's cache).
    await f.dbs.provisioning.groupAccount.deleteMany({ where: { accountId: ids.a } });
    const fresh = f.client((await createApiKey(f.dbs.provisioning, memberId, "fresh")).secret);
    expect((await code(fresh.jobs.getJob({ id: jobs.validateA }))).code).toBe(status.NOT_FOUND);
    expect((await fresh.jobs.listJobs({ pageSize: 1000 })).jobs.map((j) => j.id)).toEqual([jobs.own]);
  });
});
