// ListJobs filtered by account (jobs on the account, its servers and its other resources) and by creation time, over a
// real server: the filters combine with each other and with kind, a page token holds to its filters, a reversed time
// range is INVALID_ARGUMENT, and each filter's page is an index range read (no sort of the table), so its cost does
// not grow with the number of jobs.
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DispatcherClients } from "../../src/client/index.js";
import type { Principal } from "../../src/iam/principal.js";
import { ACCOUNT_DISCOVER_KIND } from "../../src/provisioning/discovery/kind.js";
import { newId } from "../../src/db/ids.js";
import { listEventsStatement } from "../../src/jobs/events.js";
import { listJobsStatement, type JobFilter } from "../../src/jobs/repository.js";
import { listServersStatement, type ServerFilter } from "../../src/servers/repository.js";
import { sleep } from "../support/poll.js";
import { insertServer } from "../support/rows.js";
import { startProvisioningFixture, type ProvisioningFixture } from "../provisioning/support.js";

let f: ProvisioningFixture;
let admin: DispatcherClients;
const ids = { a: "", b: "", serverA: "" };
const jobs = { validateA: "", validateB: "", serverA: "", late: "", firewallA: "" };
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
  // A resource of account a other than a server (its row written before the job, as an action on it would be).
  const firewallId = newId();
  await f.sql.execute`INSERT INTO resources (id, account_id, region_id, type, name, state, origin, budget_code, tags, details, hourly_price_micros, created_by)
    VALUES (${firewallId}, ${ids.a}, 'r1', 'firewall', 'web', 'AVAILABLE', 'CREATED', '', '{}', '{}', 0, 'test')`;
  jobs.firewallA = (await f.jobs.createJob({ kind: "diagnostic", payload: {}, requester, resource: { type: "firewall", id: firewallId } })).job.id;
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
  it("by account: the account's own jobs and those of its servers and other resources", async () => {
    expect(await listed({ accountId: ids.a })).toEqual([jobs.validateA, jobs.serverA, jobs.firewallA, jobs.late].sort());
    expect(await listed({ accountId: ids.b })).toEqual([jobs.validateB]);
    expect(await listed({ accountId: "01HZZZZZZZZZZZZZZZZZZZZZZZ" })).toEqual([]);
    expect(await listed({ accountId: ids.a, kind: "diagnostic" })).toEqual([jobs.firewallA, jobs.late].sort());
  });

  it("by creation time, alone and with the account", async () => {
    expect(await listed({ createdAfter: between })).toEqual([jobs.late]);
    expect(await listed({ accountId: ids.a, createdBefore: between })).toEqual([jobs.validateA, jobs.serverA, jobs.firewallA].sort());
    expect(await listed({ createdAfter: new Date(between.getTime() - 3_600_000), createdBefore: between })).toEqual([jobs.validateA, jobs.validateB, jobs.serverA, jobs.firewallA].sort());
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

  it("reads each filter's page through an index in (created_at, id) order, without sorting the table", async () => {
    // Enough finished jobs that the optimizer's choice is the one it makes on a large table.
    await f.sql.execute`INSERT INTO jobs (id, kind, state, max_attempts, payload, requested_by, resource_type, resource_id, account_id, trace_id, created_at, ended_at)
      SELECT CONCAT('0FILL', LPAD(seq, 21, '0')), ELT(1 + seq % 4, 'a', 'b', 'c', 'd'), IF(seq % 50 = 0, 'FAILED', 'SUCCEEDED'), 1, '{}',
             CONCAT('u-', seq % 40), 'account', ${ids.b}, ${ids.b}, LPAD(HEX(seq), 32, '0'), NOW(3) - INTERVAL seq SECOND, NOW(3) - INTERVAL seq SECOND
        FROM seq_1_to_5000`;
    await f.sql.execute`ANALYZE TABLE jobs`;
    const cursor = { createdAt: new Date(Date.now() - 600_000), id: "0FILL99999999999999999999" };
    const cases: [JobFilter, string][] = [
      [{}, "jobs_created_at_idx"],
      [{ state: "FAILED" }, "jobs_state_created_at_idx"],
      [{ kind: "c" }, "jobs_kind_created_at_idx"],
      [{ accountId: ids.a }, "jobs_account_id_created_at_idx"],
      [{ requestedBy: "u-7" }, "jobs_requested_by_created_at_idx"],
    ];
    for (const [filter, index] of cases) {
      for (const after of [null, cursor]) {
        const plan = await f.sql.query<{ key: string | null; Extra: string | null }>`EXPLAIN ${listJobsStatement(filter, after, 50)}`;
        expect(plan, JSON.stringify({ filter, after })).toHaveLength(1);
        expect(plan[0]?.key, JSON.stringify({ filter, after })).toBe(index);
        expect(plan[0]?.Extra ?? "", JSON.stringify({ filter, after })).not.toMatch(/filesort/);
      }
    }
  });

  it("reads a job's events and a page of servers through an index in the page's order, without sorting", async () => {
    // Enough servers of two accounts that the optimizer's choice is the one it makes on a large table; account b's few
    // servers among many are where a walk of the primary key would read the whole table for one page.
    await f.sql.execute`INSERT INTO servers (id, account_id, region_id, data_center, provider_id, name, product_id, image_id, budget_code, state,
        addresses, details, hourly_price_micros, accrues_when_stopped, created_by, created_at, updated_at)
      SELECT CONCAT('0SRV', LPAD(seq, 22, '0')), IF(seq % 100 = 0, ${ids.b}, ${ids.a}), 'r1', 'r1-a', CONCAT('p-', seq), CONCAT('s', seq), 'small', 'img',
             'B', IF(seq % 10 = 0, 'TERMINATED', 'RUNNING'), '{"private":[],"public":[]}', '{}', 0, 0, 'test', NOW(3), NOW(3)
        FROM seq_1_to_5000`;
    await f.sql.execute`ANALYZE TABLE servers, job_events`;
    const servers: [Omit<ServerFilter, "limit">, string][] = [
      [{ accountId: ids.a }, "servers_account_id_id_idx"],
      [{ accountId: ids.a, afterId: "0SRV0000000000000000002500" }, "servers_account_id_id_idx"],
      [{ accountId: ids.b }, "servers_account_id_id_idx"],
      [{ state: "TERMINATED" }, "servers_state_idx"],
      [{ state: "RUNNING" }, "servers_state_idx"],
      [{ state: "RUNNING", afterId: "0SRV0000000000000000002500" }, "servers_state_idx"],
      [{ agentState: "UNREACHABLE" }, "servers_agent_state_idx"],
      [{ agentState: "NONE", afterId: "0SRV0000000000000000002500" }, "servers_agent_state_idx"],
    ];
    for (const [filter, index] of servers) {
      const plan = await f.sql.query<{ key: string | null; Extra: string | null }>`EXPLAIN ${listServersStatement({ ...filter, limit: 51 })}`;
      expect(plan, JSON.stringify(filter)).toHaveLength(1);
      expect(plan[0]?.key, JSON.stringify(filter)).toBe(index);
      expect(plan[0]?.Extra ?? "", JSON.stringify(filter)).not.toMatch(/filesort/);
    }
    const events = await f.sql.query<{ key: string | null; Extra: string | null }>`EXPLAIN ${listEventsStatement(jobs.late)}`;
    expect(events).toHaveLength(1);
    expect(events[0]?.key).toBe("PRIMARY");
    expect(events[0]?.Extra ?? "").not.toMatch(/filesort/);
  });
});
