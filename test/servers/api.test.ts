// ServerService's rules over a real gRPC server and database (no job runs here: the lifecycle is lifecycle.test.ts):
// validation names each bad field, object scope answers NOT_FOUND for what a caller may not see, a launch needs an
// ACTIVE account, a discovered region/product/image, compute in the region and a held budget code within quota, and
// one launch writes one server, one event and one job — a repeated idempotency key returns them again.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatcherError } from "../../src/client/index.js";
import { AgentState, ServerState } from "../../src/gen/proto/dispatcher/v1/servers.js";
import { JobState } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { seedAccount, seedBudgetCode, startServersFixture, type ServersFixture } from "./support.js";

let f: ServersFixture;
let account: string;

async function failure(p: Promise<unknown>): Promise<DispatcherError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof DispatcherError) return err;
    throw err;
  }
  throw new Error("the call succeeded");
}

const launch = (over: Record<string, string> = {}) => ({ accountId: account, regionId: "r1", dataCenter: "", productId: "small", imageId: "img-1", name: "", budgetCode: "", idempotencyKey: "", ...over });

beforeAll(async () => {
  f = await startServersFixture("srv_api", { run: false });
  await seedBudgetCode(f, "OPS", { hard: 1_000_000n }, [f.users.admin, f.users.operator, f.users.scoped]);
  account = await seedAccount(f, { defaultBudgetCode: "OPS" });
});
afterAll(async () => {
  await f?.close();
});

describe("LaunchServer", () => {
  it("records the server PENDING with the catalog's price, a LAUNCH_REQUESTED event and a queued server.launch job", async () => {
    const c = f.client(f.users.operator);
    const { job, server } = await c.servers.launchServer(launch({ name: "web-1", dataCenter: "r1-b" }));
    expect(job).toMatchObject({ kind: "server.launch", state: JobState.JOB_STATE_QUEUED, resource: { type: "server", id: server!.id } });
    expect(server).toMatchObject({ accountId: account, regionId: "r1", dataCenter: "r1-b", name: "web-1", productId: "small", imageId: "img-1", budgetCode: "OPS", state: ServerState.SERVER_STATE_PENDING, providerId: "", hourlyPriceMicros: "10000" });
    const { events } = await c.servers.listServerEvents({ id: server!.id });
    expect(events.map((e) => [e.type, e.toState, e.jobId])).toEqual([["LAUNCH_REQUESTED", ServerState.SERVER_STATE_PENDING, job!.id]]);
    // The job carries the server id only.
    expect((await f.h.job(job!.id)).payload).toEqual({ serverId: server!.id });
  });

  it("takes the region's first data center and the account's default budget code when none is given", async () => {
    const { server } = await f.client(f.users.admin).servers.launchServer(launch());
    expect(server).toMatchObject({ dataCenter: "r1-a", budgetCode: "OPS" });
    expect(server!.name).toMatch(/^server-[0-9a-z]{8}$/);
  });

  it("returns the same job and server for a repeated idempotency key, and writes one server", async () => {
    const c = f.client(f.users.operator);
    const key = `k-${Date.now()}`;
    const results = await Promise.all([1, 2, 3, 4].map(() => c.servers.launchServer(launch({ idempotencyKey: key }))));
    const again = await c.servers.launchServer(launch({ idempotencyKey: key, productId: "big" }));
    for (const r of [...results, again]) {
      expect(r.job!.id).toBe(results[0]!.job!.id);
      expect(r.server!.id).toBe(results[0]!.server!.id);
    }
    const [row] = await f.h.sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM servers WHERE id IN (SELECT resource_id FROM jobs WHERE idempotency_key = ${key})`;
    expect(Number(row!.n)).toBe(1);
    const [all] = await f.h.sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM jobs WHERE idempotency_key = ${key}`;
    expect(Number(all!.n)).toBe(1);
  });

  it("names every bad field, and rejects unknown region, product and image by name", async () => {
    const c = f.client(f.users.operator);
    let err = await failure(c.servers.launchServer({ accountId: "", regionId: "", dataCenter: "\u0000", productId: "has space", imageId: "", name: "-bad", budgetCode: "no spaces", idempotencyKey: "x".repeat(200) }));
    expect(err.codeName).toBe("INVALID_ARGUMENT");
    expect(err.fieldViolations.map((v) => v.field).sort()).toEqual(["account_id", "budget_code", "data_center", "idempotency_key", "image_id", "name", "product_id", "region_id"]);
    err = await failure(c.servers.launchServer(launch({ regionId: "nowhere" })));
    expect([err.codeName, err.fieldViolations.map((v) => v.field)]).toEqual(["INVALID_ARGUMENT", ["region_id"]]);
    err = await failure(c.servers.launchServer(launch({ productId: "huge", imageId: "img-9" })));
    expect([err.codeName, err.fieldViolations.map((v) => v.field)]).toEqual(["INVALID_ARGUMENT", ["product_id", "image_id"]]);
    err = await failure(c.servers.launchServer(launch({ dataCenter: "r2-a" })));
    expect(err.fieldViolations.map((v) => v.field)).toEqual(["data_center"]);
  });

  it("refuses a region without compute, and an account that is not ACTIVE, with FAILED_PRECONDITION", async () => {
    const c = f.client(f.users.admin);
    let err = await failure(c.servers.launchServer(launch({ regionId: "r2" })));
    expect([err.codeName, err.errorInfo?.reason]).toEqual(["FAILED_PRECONDITION", "NO_COMPUTE_SUBSCRIPTION"]);
    for (const status of ["PENDING", "FAILED", "DISABLED"] as const) {
      const other = await seedAccount(f, { status, defaultBudgetCode: "OPS" });
      err = await failure(c.servers.launchServer(launch({ accountId: other })));
      expect([err.codeName, err.errorInfo?.reason], status).toEqual(["FAILED_PRECONDITION", "ACCOUNT_NOT_ACTIVE"]);
    }
  });

  it("needs a budget code the caller holds, within its hard quota; the soft quota only warns", async () => {
    const c = f.client(f.users.operator);
    const noDefault = await seedAccount(f, { defaultBudgetCode: null });
    let err = await failure(c.servers.launchServer(launch({ accountId: noDefault })));
    expect([err.codeName, err.fieldViolations.map((v) => v.field)]).toEqual(["INVALID_ARGUMENT", ["budget_code"]]);
    await seedBudgetCode(f, "NOT-MINE", { hard: 1_000_000n }, [f.users.admin]);
    err = await failure(c.servers.launchServer(launch({ budgetCode: "NOT-MINE" })));
    expect([err.codeName, err.errorInfo?.reason]).toEqual(["PERMISSION_DENIED", "BUDGET_CODE_NOT_HELD"]);
    err = await failure(c.servers.launchServer(launch({ budgetCode: "NO-SUCH-CODE" })));
    expect(err.codeName).toBe("PERMISSION_DENIED");
    // "big": 2,000,000 micros an hour = 200 cents an hour, 146,000 cents a month.
    await seedBudgetCode(f, "TIGHT", { hard: 146_000n + 999n, usage: 1_000n }, [f.users.operator]);
    err = await failure(c.servers.launchServer(launch({ budgetCode: "TIGHT", productId: "big" })));
    expect([err.codeName, err.errorInfo?.reason]).toEqual(["FAILED_PRECONDITION", "QUOTA_EXCEEDED"]);
    expect(err.quotaViolations).toEqual([{ subject: "budget_codes/TIGHT", description: expect.stringContaining("146000 cents") }]);
    await seedBudgetCode(f, "OFF", { hard: 1_000_000n, state: "DISABLED" }, [f.users.operator]);
    err = await failure(c.servers.launchServer(launch({ budgetCode: "OFF" })));
    expect([err.codeName, err.errorInfo?.reason]).toEqual(["FAILED_PRECONDITION", "BUDGET_CODE_DISABLED"]);
    const before = await f.h.sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM servers`;

    await seedBudgetCode(f, "SOFT", { hard: 1_000_000n, soft: 100n }, [f.users.operator]);
    const { job, server } = await c.servers.launchServer(launch({ budgetCode: "SOFT" }));
    const events = await f.h.sql.query<{ type: string; jobId: string; message: string }>`SELECT type, job_id AS jobId, message FROM budget_events WHERE code = 'SOFT'`;
    expect(events).toEqual([{ type: "SOFT_QUOTA_EXCEEDED", jobId: job!.id, message: expect.stringContaining("soft quota") }]);
    const jobEvents = await f.h.events(job!.id);
    expect(jobEvents.map((e) => e.type)).toEqual(["created", "progress"]);
    expect(jobEvents[1]!.message).toMatch(/^warning: budget code SOFT is over its soft quota/);
    expect(server!.budgetCode).toBe("SOFT");
    const after = await f.h.sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM servers`;
    expect(Number(after[0]!.n)).toBe(Number(before[0]!.n) + 1);
  });

  it("needs servers.launch: a reader may not launch", async () => {
    const err = await failure(f.client(f.users.reader).servers.launchServer(launch()));
    expect(err.codeName).toBe("PERMISSION_DENIED");
  });
});

describe("object scope", () => {
  it("answers NOT_FOUND for an account or server outside the caller's groups, exactly as for one that does not exist", async () => {
    const admin = f.client(f.users.admin);
    const scoped = f.client(f.users.scoped);
    const mine = await seedAccount(f, { defaultBudgetCode: "OPS" });
    await f.scope(mine);
    const { server: theirs } = await admin.servers.launchServer(launch());
    const { server: own } = await scoped.servers.launchServer(launch({ accountId: mine }));
    expect(own!.accountId).toBe(mine);

    const missing = "01JZZZZZZZZZZZZZZZZZZZZZZZ";
    for (const [what, call] of [
      ["launch", (id: string) => scoped.servers.launchServer(launch({ accountId: id }))],
      ["products", (id: string) => scoped.servers.listProducts({ accountId: id, regionId: "r1" })],
      ["images", (id: string) => scoped.servers.listImages({ accountId: id, regionId: "r1" })],
    ] as const) {
      const a = await failure(call(account));
      const b = await failure(call(missing));
      expect([a.codeName, b.codeName], what).toEqual(["NOT_FOUND", "NOT_FOUND"]);
      expect(a.message.replace(account, "ID"), what).toBe(b.message.replace(missing, "ID"));
    }
    for (const call of [
      (id: string) => scoped.servers.getServer({ id }),
      (id: string) => scoped.servers.listServerEvents({ id }),
      (id: string) => scoped.servers.stopServer({ id, idempotencyKey: "" }),
      (id: string) => scoped.servers.startServer({ id, idempotencyKey: "" }),
      (id: string) => scoped.servers.rebootServer({ id, idempotencyKey: "" }),
      (id: string) => scoped.servers.terminateServer({ id, idempotencyKey: "" }),
    ]) {
      const a = await failure(call(theirs!.id));
      const b = await failure(call(missing));
      expect([a.codeName, b.codeName]).toEqual(["NOT_FOUND", "NOT_FOUND"]);
      expect(a.message.replace(theirs!.id, "ID")).toBe(b.message.replace(missing, "ID"));
    }
    const listed = await scoped.servers.listServers({ pageSize: 1000, pageToken: "", accountId: "", regionId: "", state: 0, budgetCode: "" });
    expect(listed.servers.map((s) => s.accountId)).toEqual([mine]);
    const filtered = await scoped.servers.listServers({ pageSize: 10, pageToken: "", accountId: account, regionId: "", state: 0, budgetCode: "" });
    expect(filtered.servers).toEqual([]);
    expect((await scoped.servers.getServer({ id: own!.id })).server!.id).toBe(own!.id);
  });
});

describe("reads", () => {
  it("lists servers by account, region, state and budget code, a page at a time with tokens bound to the filters", async () => {
    const c = f.client(f.users.admin);
    const acct = await seedAccount(f, { defaultBudgetCode: "OPS" });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await c.servers.launchServer(launch({ accountId: acct }))).server!.id);
    await f.h.sql.execute`UPDATE servers SET state = 'RUNNING' WHERE id = ${ids[4]!}`;
    const seen: string[] = [];
    let token = "";
    do {
      const page = await c.servers.listServers({ pageSize: 2, pageToken: token, accountId: acct, regionId: "r1", state: 0, budgetCode: "OPS" });
      expect(page.servers.length).toBeLessThanOrEqual(2);
      seen.push(...page.servers.map((s) => s.id));
      token = page.nextPageToken;
    } while (token);
    expect(seen).toEqual(ids);
    const running = await c.servers.listServers({ pageSize: 0, pageToken: "", accountId: acct, regionId: "", state: ServerState.SERVER_STATE_RUNNING, budgetCode: "" });
    expect(running.servers.map((s) => s.id)).toEqual([ids[4]]);
    // By agent state: the fleet's unreachable agents, with or without an account.
    await f.h.sql.execute`UPDATE servers SET agent_state = 'UNREACHABLE' WHERE id IN (${[ids[1]!, ids[3]!]})`;
    const unreachable = await c.servers.listServers({ pageSize: 0, accountId: acct, agentState: AgentState.AGENT_STATE_UNREACHABLE });
    expect(unreachable.servers.map((s) => [s.id, s.agentState])).toEqual([[ids[1], AgentState.AGENT_STATE_UNREACHABLE], [ids[3], AgentState.AGENT_STATE_UNREACHABLE]]);
    const everywhere = await c.servers.listServers({ pageSize: 1, agentState: AgentState.AGENT_STATE_UNREACHABLE });
    expect(everywhere.servers.map((s) => s.id)).toEqual([ids[1]]);
    const second = await c.servers.listServers({ pageSize: 1, pageToken: everywhere.nextPageToken, agentState: AgentState.AGENT_STATE_UNREACHABLE });
    expect(second.servers.map((s) => s.id)).toEqual([ids[3]]);
    // A token is bound to its filters, the agent state among them.
    expect((await failure(c.servers.listServers({ pageSize: 1, pageToken: everywhere.nextPageToken }))).fieldViolations.map((v) => v.field)).toEqual(["page_token"]);
    const first = await c.servers.listServers({ pageSize: 2, pageToken: "", accountId: acct, regionId: "", state: 0, budgetCode: "" });
    const err = await failure(c.servers.listServers({ pageSize: 2, pageToken: first.nextPageToken, accountId: acct, regionId: "r2", state: 0, budgetCode: "" }));
    expect(err.fieldViolations.map((v) => v.field)).toEqual(["page_token"]);
    const bad = await failure(c.servers.listServers({ pageSize: -1, pageToken: "", accountId: "", regionId: "", state: 99 as ServerState, budgetCode: "", agentState: 99 as AgentState }));
    expect(bad.fieldViolations.map((v) => v.field).sort()).toEqual(["agent_state", "page_size", "state"]);
  });

  it("lists the discovered products and images of a region, and INVALID_ARGUMENT for a region the account lacks", async () => {
    const c = f.client(f.users.reader);
    const { products } = await c.servers.listProducts({ accountId: account, regionId: "r1" });
    expect(products.map((p) => [p.id, p.hourlyPriceMicros, p.accruesWhenStopped])).toEqual([["big", "2000000", true], ["small", "10000", false]]);
    const { images } = await c.servers.listImages({ accountId: account, regionId: "r1" });
    expect(images).toEqual([{ id: "img-1", name: "Image one", platform: "linux" }]);
    const err = await failure(c.servers.listImages({ accountId: account, regionId: "r9" }));
    expect([err.codeName, err.fieldViolations.map((v) => v.field)]).toEqual(["INVALID_ARGUMENT", ["region_id"]]);
  });

  it("refuses start/stop/reboot from a state that does not allow it, and a second action while one is under way", async () => {
    const c = f.client(f.users.operator);
    const { server } = await c.servers.launchServer(launch());
    for (const call of [c.servers.startServer, c.servers.stopServer, c.servers.rebootServer]) {
      const err = await failure(call.call(c.servers, { id: server!.id, idempotencyKey: "" }));
      expect([err.codeName, err.errorInfo?.reason]).toEqual(["FAILED_PRECONDITION", "SERVER_STATE"]);
    }
    await f.h.sql.execute`UPDATE servers SET state = 'RUNNING' WHERE id = ${server!.id}`;
    // Its launch job is still queued (nothing runs in this file): the server is busy.
    const busy = await failure(c.servers.stopServer({ id: server!.id, idempotencyKey: "" }));
    expect([busy.codeName, busy.errorInfo?.reason]).toEqual(["FAILED_PRECONDITION", "SERVER_BUSY"]);
    await f.h.sql.execute`UPDATE jobs SET state = 'SUCCEEDED' WHERE resource_id = ${server!.id}`;
    const { job } = await c.servers.stopServer({ id: server!.id, idempotencyKey: "stop-1" });
    const again = await c.servers.stopServer({ id: server!.id, idempotencyKey: "stop-1" });
    expect(again.job!.id).toBe(job!.id);
    expect(job).toMatchObject({ kind: "server.stop", resource: { type: "server", id: server!.id } });
    // Terminate is never refused for a job under way, only for a server already gone.
    const { job: t } = await c.servers.terminateServer({ id: server!.id, idempotencyKey: "" });
    expect(t!.kind).toBe("server.terminate");
    const types = (await c.servers.listServerEvents({ id: server!.id })).events.map((e) => e.type);
    expect(types).toEqual(["LAUNCH_REQUESTED", "STOP_REQUESTED", "TERMINATE_REQUESTED"]);
  });
});
