// Acceptance on the real local cloud: one `dispatcher start` (its quick start connects the `local` account and
// discovers it), servers that are real processes. A launch succeeds only once the process answers; stop, start,
// reboot and terminate succeed with the process in the matching state; the same idempotency key gives one server;
// unknown region/product/image name the field; a region without compute is refused; a process killed behind the
// dispatcher's back is seen stopped by the monitor's scheduled servers.sync.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, DispatcherError, type DispatcherClients } from "../../src/client/index.js";
import { JobState, type Job } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { AccountStatus } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import { ServerState, type Server } from "../../src/gen/proto/dispatcher/v1/servers.js";

import { bootstrapToken, jobEnd, pidAlive, createTestEnv, killStrayDispatchers, runDispatcher, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";
import { until } from "../support/poll.js";

/** The built-in local region, plus one without compute. */
const CATALOG = {
  regions: [
    { id: "local", name: "This machine", dataCenters: ["local-a"], capabilities: ["compute", "block_storage", "networking"] },
    { id: "storage-only", name: "No compute here", dataCenters: ["so-a"], capabilities: ["block_storage"] },
  ],
};
const SYNC_MS = 1_500;
const POLL_MS = 500;
/** One sync cycle: the interval, the scheduler's poll, and the job's own time (publish, list, commit). */
const ONE_CYCLE_MS = SYNC_MS + POLL_MS + 3_000;

let t: TestEnv;
let p: DispatcherProcess;
let c: DispatcherClients;
let account: string;
let token: string;
const pids = new Set<number>();

const alive = pidAlive;

const finished = (job: Job | undefined, timeoutMs?: number): Promise<Job> => jobEnd(c, job, timeoutMs);

async function server(id: string): Promise<Server> {
  const s = (await c.servers.getServer({ id })).server!;
  if (s.details.pid) pids.add(Number(s.details.pid));
  return s;
}

/** Whether the server answers "ok" on its own address (the one the cloud observed) and port. */
async function answers(s: Server): Promise<boolean> {
  return fetch(`http://${s.addresses?.private[0] ?? "127.0.0.1"}:${s.details.port}/`).then((r) => r.text()).then((b) => b === "ok", () => false);
}

const launch = (over: Record<string, string> = {}) => ({ accountId: account, regionId: "local", dataCenter: "", productId: "small", imageId: "basic", name: "", budgetCode: "E2E", idempotencyKey: "", ...over });

async function failure(p: Promise<unknown>): Promise<DispatcherError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof DispatcherError) return err;
    throw err;
  }
  throw new Error("the call succeeded");
}

beforeAll(async () => {
  t = await createTestEnv({ label: "srv_local" });
  const catalogFile = join(t.dir, "catalog.json");
  writeFileSync(catalogFile, JSON.stringify(CATALOG));
  p = await startDispatcher(t, ["start"], { env: t.with({ DISPATCHER_LOCAL_CLOUD_CATALOG_FILE: catalogFile, DISPATCHER_DISCOVERY_SERVER_SYNC_INTERVAL_MS: String(SYNC_MS), DISPATCHER_DISCOVERY_POLL_MS: String(POLL_MS), DISPATCHER_LOCAL_CLOUD_STOP_GRACE_MS: "2000" }), timeoutMs: 60_000 });
  token = bootstrapToken(p) ?? "";
  if (!token) throw new Error(`no admin token printed\n${p.output()}`);
  c = createDispatcherClients({ address: t.address, token, retry: false });
  const acct = await until(async () => (await c.accounts.listAccounts({ pageSize: 100 })).accounts.find((a) => a.name === "local" && a.status === AccountStatus.ACCOUNT_STATUS_ACTIVE), 60_000, "the local account to be discovered");
  account = acct.id;
  const { users } = await c.users.listUsers({ pageSize: 100 });
  await c.budgetCodes.createBudgetCode({ code: "E2E", name: "e2e", financeCode: "F-1", hardQuotaCents: "100000000", softQuotaCents: "0" });
  for (const u of users) await c.budgetCodes.grantBudgetCode({ code: "E2E", userId: u.id });
}, 120_000);

afterAll(async () => {
  c?.close();
  await p?.stop("SIGTERM").catch(() => undefined);
  await killStrayDispatchers();
  for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
  await t?.cleanup();
});

describe("servers on the local cloud", () => {
  it("launches a real process, and stop, start, reboot and terminate leave it in the matching state", async () => {
    const { job, server: s } = await c.servers.launchServer(launch({ name: "e2e-1" }));
    const launched = await finished(job);
    expect(launched.state, JSON.stringify(launched.error)).toBe(JobState.JOB_STATE_SUCCEEDED);
    let now = await server(s!.id);
    expect(now.state).toBe(ServerState.SERVER_STATE_RUNNING);
    const pid1 = Number(now.details.pid);
    expect(alive(pid1)).toBe(true);
    expect(await answers(now)).toBe(true);

    expect((await finished((await c.servers.stopServer({ id: s!.id, idempotencyKey: "" })).job)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    now = await server(s!.id);
    expect(now.state).toBe(ServerState.SERVER_STATE_STOPPED);
    expect(alive(pid1)).toBe(false);

    expect((await finished((await c.servers.startServer({ id: s!.id, idempotencyKey: "" })).job)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    now = await server(s!.id);
    const pid2 = Number(now.details.pid);
    expect([now.state, pid2 !== pid1, alive(pid2), await answers(now)]).toEqual([ServerState.SERVER_STATE_RUNNING, true, true, true]);

    const reboot = await finished((await c.servers.rebootServer({ id: s!.id, idempotencyKey: "" })).job);
    expect(reboot.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    now = await server(s!.id);
    const pid3 = Number(now.details.pid);
    expect([now.state, pid3 !== pid2, alive(pid2), alive(pid3)]).toEqual([ServerState.SERVER_STATE_RUNNING, true, false, true]);

    expect((await finished((await c.servers.terminateServer({ id: s!.id, idempotencyKey: "" })).job)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    now = await server(s!.id);
    expect(now.state).toBe(ServerState.SERVER_STATE_TERMINATED);
    expect(alive(pid3)).toBe(false);
    const { events } = await c.servers.listServerEvents({ id: s!.id, pageSize: 1000 });
    expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(["LAUNCH_REQUESTED", "STOP_REQUESTED", "START_REQUESTED", "REBOOT_REQUESTED", "REBOOT_SENT", "TERMINATE_REQUESTED"]));
  }, 120_000);

  it("gives one server for one idempotency key, however often it is sent", async () => {
    const key = `e2e-${Date.now()}`;
    const answers = await Promise.all([1, 2, 3].map(() => c.servers.launchServer(launch({ idempotencyKey: key }))));
    expect(new Set(answers.map((a) => a.server!.id)).size).toBe(1);
    expect(new Set(answers.map((a) => a.job!.id)).size).toBe(1);
    expect((await finished(answers[0]!.job)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    const again = await c.servers.launchServer(launch({ idempotencyKey: key }));
    expect(again.server!.id).toBe(answers[0]!.server!.id);
    const { servers } = await c.servers.listServers({ accountId: account, pageSize: 1000 });
    expect(servers.filter((s) => s.name === answers[0]!.server!.name)).toHaveLength(1);
    await finished((await c.servers.terminateServer({ id: again.server!.id, idempotencyKey: "" })).job);
  }, 60_000);

  it("names the unknown region, product or image, and refuses a region without compute", async () => {
    for (const [field, over] of [["region_id", { regionId: "mars" }], ["product_id", { productId: "huge" }], ["image_id", { imageId: "windows" }]] as const) {
      const err = await failure(c.servers.launchServer(launch(over)));
      expect([err.codeName, err.fieldViolations.map((v) => v.field)], field).toEqual(["INVALID_ARGUMENT", [field]]);
    }
    const err = await failure(c.servers.launchServer(launch({ regionId: "storage-only" })));
    expect([err.codeName, err.errorInfo?.reason]).toEqual(["FAILED_PRECONDITION", "NO_COMPUTE_SUBSCRIPTION"]);
  });

  it("drives a server from the command line: launch --wait exits 0 once it runs, terminate --wait once it is gone", async () => {
    const env = t.with({ DISPATCHER_CLIENT_TOKEN: token });
    const launched = await runDispatcher(["servers", "launch", "--account", account, "--region", "local", "--product", "small", "--image", "basic", "--budget-code", "E2E", "--name", "cli-1", "--wait", "--json"], env, 60_000);
    expect(launched.code, launched.stderr).toBe(0);
    const lines = launched.stdout.trim().split("\n").map((l) => JSON.parse(l) as { job: { state: string }; server: { id: string } });
    expect(lines.at(-1)!.job.state).toBe("JOB_STATE_SUCCEEDED");
    const id = lines[0]!.server.id;
    expect((await server(id)).state).toBe(ServerState.SERVER_STATE_RUNNING);
    const pid = Number((await server(id)).details.pid);
    expect(alive(pid)).toBe(true);
    // The listing by the account's name, with its agent's state (the basic image runs none).
    const listed = await runDispatcher(["servers", "ls", "--account", "local"], env, 30_000);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/^ID\s+NAME\s+STATE\s+AGENT\s+ACCOUNT\s/);
    expect(listed.stdout).toMatch(new RegExp(`^${id}\\s+cli-1\\s+RUNNING\\s+none\\s+${account}\\s`, "m"));
    const ended = await runDispatcher(["servers", "terminate", id, "--wait"], env, 60_000);
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.stdout).toMatch(/server\.terminate job \S+: SUCCEEDED/);
    expect(alive(pid)).toBe(false);
    expect((await server(id)).state).toBe(ServerState.SERVER_STATE_TERMINATED);
  }, 120_000);

  it("sees a process killed behind its back as STOPPED within one discovery cycle", async () => {
    const { job, server: s } = await c.servers.launchServer(launch({ name: "victim" }));
    expect((await finished(job)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    const pid = Number((await server(s!.id)).details.pid);
    process.kill(pid, "SIGKILL");
    const killedAt = Date.now();
    const stopped = await until(async () => {
      const now = await server(s!.id);
      return now.state === ServerState.SERVER_STATE_STOPPED ? now : null;
    }, ONE_CYCLE_MS * 3, "discovery to see the server stopped");
    expect(Date.now() - killedAt).toBeLessThan(ONE_CYCLE_MS);
    const { events } = await c.servers.listServerEvents({ id: s!.id, pageSize: 1000 });
    const seen = events.filter((e) => e.type === "STATE_CHANGED").at(-1)!;
    expect([seen.fromState, seen.toState]).toEqual([ServerState.SERVER_STATE_RUNNING, ServerState.SERVER_STATE_STOPPED]);
    expect(seen.message).toContain("discovery");
    expect(stopped.details.pid).toBeUndefined();
    await finished((await c.servers.terminateServer({ id: s!.id, idempotencyKey: "" })).job);
  }, 60_000);
});
