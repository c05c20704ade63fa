// ListJobs filtered by account (jobs on the account and on its servers) and by creation time, over a real server:
// the filters combine with each other and with kind, a page token holds to its filters, and a reversed time
// range is INVALID_ARGUMENT.
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DispatcherClients } from "../../src/client/index.js";
import type { Principal } from "../../src/iam/principal.js";
import { ACCOUNT_DISCOVER_KIND } from "../../src/provisioning/discovery/kind.js";
import { sleep } from "../support/poll.js";
import { insertServer } from "../support/rows.js";
import { startProvisioningFixture, type ProvisioningFixture } from "../provisioning/support.js";

let f: ProvisioningFixture;
let admin: DispatcherClients;
const ids = { a: "", b: "", serverA: "" };
const jobs = { validateA: "", validateB: "", serverA: "", late: "" };
let between = new Date();

beforeAll(async () => {
  f = await startProvisioningFixture("jobs_list_filters");
  admin = f.client(f.users.admin.secret);
  const cloudId = (await admin.clouds.createCloud({ name: "filter cloud", driver: "aws", endpoint: "https://api.cloud.test" })).cloud?.id ?? "";
  const connect = async (name: string) => admin.accounts.createAccount({ name, cloudId, credentials: { type: "k", fields: { key: "x" } } });
  const a = await connect("a");
  const b = await connect("b");
  ids.a = a.account?.id ?? "";
  ids.b = b.account?.id ?? "";
  jobs.validateA = a.validationJob?.id ?? "";
  jobs.validateB = b.validationJob?.id ?? "";
  ids.serverA = await insertServer(f.sql, { accountId: ids.a });
  const requester: Principal = { id: f.users.admin.id, kind: "user", roles: ["admin"], displayName: "admin" };
  jobs.serverA = (await f.jobs.createJob({ kind: ACCOUNT_DISCOVER_KIND, payload: { accountId: ids.a }, requester, resource: { type: "server", id: ids.serverA } })).job.id;
  await sleep(50);
  between = new Date();
  await sleep(50);
  jobs.late = (await f.jobs.createJob({ kind: "diagnostic", payload: {}, requester, resource: { type: "account", id: ids.a } })).job.id;
});

afterAll(async () => {
  await f?.close();
});

const listed = async (req: Parameters<DispatcherClients["jobs"]["listJobs"]>[0]): Promise<string[]> => (await admin.jobs.listJobs({ pageSize: 1000, ...req })).jobs.map((j) => j.id).sort();

describe("ListJobs filters", () => {
  it("by account: the account's own jobs and those of its servers", async () => {
    expect(await listed({ accountId: ids.a })).toEqual([jobs.validateA, jobs.serverA, jobs.late].sort());
    expect(await listed({ accountId: ids.b })).toEqual([jobs.validateB]);
    expect(await listed({ accountId: "01HZZZZZZZZZZZZZZZZZZZZZZZ" })).toEqual([]);
    expect(await listed({ accountId: ids.a, kind: "diagnostic" })).toEqual([jobs.late]);
  });

  it("by creation time, alone and with the account", async () => {
    expect(await listed({ createdAfter: between })).toEqual([jobs.late]);
    expect(await listed({ accountId: ids.a, createdBefore: between })).toEqual([jobs.validateA, jobs.serverA].sort());
    expect(await listed({ createdAfter: new Date(between.getTime() - 3_600_000), createdBefore: between })).toEqual([jobs.validateA, jobs.validateB, jobs.serverA].sort());
  });

  it("holds a page token to its filters", async () => {
    const first = await admin.jobs.listJobs({ pageSize: 1, accountId: ids.a });
    expect(first.nextPageToken).not.toBe("");
    const second = await admin.jobs.listJobs({ pageSize: 1, accountId: ids.a, pageToken: first.nextPageToken });
    expect(second.jobs[0]?.id).not.toBe(first.jobs[0]?.id);
    await expect(admin.jobs.listJobs({ pageSize: 1, accountId: ids.b, pageToken: first.nextPageToken })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, fieldViolations: [{ field: "page_token" }] });
  });

  it("refuses a time range that ends before it starts", async () => {
    await expect(admin.jobs.listJobs({ createdAfter: between, createdBefore: new Date(between.getTime() - 1000) })).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      fieldViolations: [{ field: "created_before" }],
    });
  });
});
