// Fleet commands against the real MariaDB and NATS, a real worker and simulated agents (test/agent/fleet-farm.ts):
// 50 servers; a concurrency limit of 5 is never exceeded (measured from the children's events and at the agents); an
// error budget of 3 stops the command after the third failure; cancelling the parent stops the rest; the parent's
// progress streams through WatchJob; object scope, validation, idempotency, held children and retention.
import { credentials, Metadata, status as Code, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { newId } from "../../src/db/ids.js";
import { RunFleetCommandRequest, ServerAgentServiceClient, type RunFleetCommandResponse } from "../../src/gen/proto/dispatcher/v1/agents.js";
import { JobServiceClient, JobState, type Job, type WatchJobResponse } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import type { Principal } from "../../src/iam/principal.js";
import { cancelOrphanedChildren } from "../../src/jobs/children.js";
import { jobHandlers } from "../../src/jobs/handlers.js";
import { startWorker, type RunningWorker } from "../../src/jobs/worker.js";
import { republishQueued } from "../../src/monitor/queries.js";
import { purgeFinishedJobs } from "../../src/monitor/retention.js";
import { startTestServer, type TestServer } from "../rpc/fixtures.js";
import { freePort } from "../support/net.js";
import { until } from "../support/poll.js";
import { insertFleet, startAgentFarm, type AgentFarm } from "./fleet-farm.js";
import { openAgentHarness, quiet, type AgentHarness } from "./support.js";
import { agentRpcServices } from "../../src/agent/rpc-services.js";
import { runAgentsFleet } from "../../src/commands/agents-fleet.js";

const SERVERS = 50;
const WORK_MS = "200";

let a: AgentHarness;
let farm: AgentFarm;
let jobsServer: TestServer;
let worker: RunningWorker | undefined;
/** Server ids in the order they were inserted (and named fleet-0 … fleet-49). */
let servers: string[];

beforeAll(async () => {
  a = await openAgentHarness("fleet");
  const key = Buffer.from(a.h.config.agent.credentialKey, "base64");
  farm = await startAgentFarm(key);
  const fleet = await insertFleet(a.h.sql, { accountId: a.accountId, count: SERVERS, port: farm.port, credentialKey: key });
  farm.add(fleet);
  servers = [...fleet.values()];
  const principals: Record<string, Principal> = {
    "operator-token": { id: "u-oper", kind: "user", roles: ["operator"], displayName: "Otto", accountIds: [a.accountId] },
  };
  // JobService and the agent services on one address, as the dispatcher serves them (what the CLI calls).
  const services = [jobHandlers(a.jobs), ...agentRpcServices({ config: a.h.config, sql: a.h.sql, jobs: a.jobs, log: quiet() })];
  jobsServer = await startTestServer({ services, authenticate: async (t) => principals[t] ?? null });
}, 60_000);

afterAll(async () => {
  await worker?.stop(2_000);
  await jobsServer?.stop(500);
  await farm?.stop();
  await a?.close();
});

const metadata = (token: string): Metadata => {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
};

function runFleet(req: Partial<RunFleetCommandRequest>, token = a.tokens.operator): Promise<RunFleetCommandResponse> {
  const client = new ServerAgentServiceClient(a.server.address, credentials.createInsecure());
  const full = RunFleetCommandRequest.fromPartial({ command: "work", args: [WORK_MS], ...req });
  return new Promise((resolve, reject) => {
    client.runFleetCommand(full, metadata(token), { deadline: Date.now() + 10_000 }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res);
    });
  });
}

const codeOf = (p: Promise<unknown>): Promise<Code | "ok"> => p.then(() => "ok" as const, (e: ServiceError) => e.code);

/** Every update WatchJob streams for the job, until it ends. */
function watch(id: string): Promise<WatchJobResponse[]> {
  const client = new JobServiceClient(jobsServer.address, credentials.createInsecure());
  const updates: WatchJobResponse[] = [];
  return new Promise((resolve, reject) => {
    const stream = client.watchJob({ id }, metadata("operator-token"), { deadline: Date.now() + 60_000 });
    stream.on("data", (u: WatchJobResponse) => updates.push(u));
    stream.on("error", (e) => (client.close(), reject(e)));
    stream.on("end", () => (client.close(), resolve(updates)));
  });
}

function cancel(id: string): Promise<void> {
  const client = new JobServiceClient(jobsServer.address, credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.cancelJob({ id, reason: "stop the rollout" }, metadata("operator-token"), { deadline: Date.now() + 5_000 }, (err) => (client.close(), err ? reject(err) : resolve())),
  );
}

interface ChildEvent {
  jobId: string;
  type: string;
  fromState: string | null;
  toState: string;
  at: Date;
}

async function childEvents(parentId: string): Promise<ChildEvent[]> {
  return a.h.sql.query<ChildEvent>`
    SELECT e.job_id AS jobId, e.type, e.from_state AS fromState, e.to_state AS toState, e.created_at AS at
      FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE j.parent_id = ${parentId} ORDER BY e.created_at, e.job_id, e.sequence`;
}

/**
 * The most children RUNNING at once, replayed from their events. At the same millisecond an end counts before a start:
 * a child is released only after the end that made room for it committed.
 */
function maxRunning(events: ChildEvent[]): number {
  const delta = (e: ChildEvent) => (e.toState === "RUNNING" && e.fromState !== "RUNNING" ? 1 : e.fromState === "RUNNING" && e.toState !== "RUNNING" ? -1 : 0);
  const sorted = [...events].sort((x, y) => x.at.getTime() - y.at.getTime() || delta(x) - delta(y));
  let running = 0;
  let max = 0;
  for (const e of sorted) {
    running += delta(e);
    max = Math.max(max, running);
  }
  return max;
}

async function childStates(parentId: string): Promise<Record<string, number>> {
  const rows = await a.h.sql.query<{ state: string; n: bigint }>`SELECT state, COUNT(*) AS n FROM jobs WHERE parent_id = ${parentId} GROUP BY state`;
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

/** Children of `parentId` still marked held. */
async function heldChildren(parentId: string): Promise<number> {
  const [row] = await a.h.sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM jobs WHERE parent_id = ${parentId} AND held = 1`;
  return Number(row?.n ?? 0);
}

async function startTheWorker(): Promise<void> {
  worker ??= await startWorker({ resources: { ...a.h.resources("w1"), relay: a.relay }, catalog: a.h.catalog, concurrency: 16 });
}

describe("before any worker runs", () => {
  it("writes the parent and one held child per server in one call; held children are never republished; cancelling the queued parent cancels them", async () => {
    const { job, serverCount } = await runFleet({ serverIds: servers, maxConcurrency: 5 });
    expect(serverCount).toBe(SERVERS);
    expect(job?.kind).toBe("agent.fleet_run");
    const rows = await a.h.sql.query<{ held: number; state: string; outbox: bigint }>`
      SELECT j.held, j.state, (SELECT COUNT(*) FROM outbox_entries o WHERE o.job_id = j.id) AS outbox FROM jobs j WHERE j.parent_id = ${job?.id ?? ""}`;
    expect(rows).toHaveLength(SERVERS);
    expect(rows.every((r) => Number(r.held) === 1 && r.state === "QUEUED" && Number(r.outbox) === 0)).toBe(true);
    // However old, a held child is not a lost message.
    const swept = await republishQueued(a.h.ex, { olderThanMs: 0, limit: 1_000, actor: "monitor", republish: async (_tx, j) => j.jobId });
    expect(swept.published.filter((jobId) => jobId !== job?.id)).toEqual([]);
    // One child cancelled on its own, then the parent: an ended child no longer counts as held (jobs_held_idx
    // holds only the children still waiting).
    const [first] = await a.h.sql.query<{ id: string }>`SELECT id FROM jobs WHERE parent_id = ${job?.id ?? ""} ORDER BY id LIMIT 1`;
    await cancel(first?.id ?? "");
    expect(await heldChildren(job?.id ?? "")).toBe(SERVERS - 1);
    await cancel(job?.id ?? "");
    expect(await childStates(job?.id ?? "")).toEqual({ CANCELLED: SERVERS });
    expect(await heldChildren(job?.id ?? "")).toBe(0);
  });
});

describe("a parent that ended without releasing its children", () => {
  it("leaves them to the reconciler's sweep, which cancels them", async () => {
    const { job } = await runFleet({ serverIds: servers.slice(0, 4) });
    const id = job?.id ?? "";
    // As the deadline sweep ends a parent: FAILED, its children still held.
    await a.h.sql.execute`UPDATE jobs SET state = 'FAILED', error_code = 'DEADLINE_EXCEEDED', ended_at = NOW(3) WHERE id = ${id}`;
    expect(await childStates(id)).toEqual({ QUEUED: 4 });
    expect(await cancelOrphanedChildren(a.h.sql, { limit: 100, actor: "monitor" })).toBe(4);
    expect(await childStates(id)).toEqual({ CANCELLED: 4 });
    expect(await heldChildren(id)).toBe(0);
    expect(await cancelOrphanedChildren(a.h.sql, { limit: 100, actor: "monitor" })).toBe(0);
  });
});

describe("with a worker", () => {
  beforeAll(startTheWorker, 30_000);

  it(`runs on ${SERVERS} servers never more than 5 at once, streaming its progress through WatchJob`, async () => {
    farm.resetMax();
    const { job } = await runFleet({ serverIds: servers, maxConcurrency: 5, errorBudget: 3 });
    const id = job?.id ?? "";
    const updates = await watch(id);
    const last = updates.at(-1)?.job as Job;
    expect(last.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    expect(last.children).toEqual({ total: SERVERS, pending: 0, running: 0, succeeded: SERVERS, failed: 0, cancelled: 0 });
    expect(last.result).toMatchObject({ servers: SERVERS, succeeded: SERVERS, failed: 0 });
    // Progress arrived while it ran: several distinct counts, the pending ones only ever going down.
    const progress = updates.filter((u) => u.event?.type === "progress").map((u) => u.job?.children);
    expect(progress.length).toBeGreaterThan(2);
    const pending = progress.map((c) => c?.pending ?? 0);
    expect(pending).toEqual([...pending].sort((x, y) => y - x));
    expect(progress.every((c) => (c?.running ?? 99) <= 5)).toBe(true);
    const events = await childEvents(id);
    const most = maxRunning(events);
    expect(most).toBeLessThanOrEqual(5);
    expect(most).toBeGreaterThanOrEqual(3); // the limit is used, not serialised to one
    expect(farm.maxInFlight).toBeLessThanOrEqual(5);
    expect(servers.every((s) => (farm.calls.get(s) ?? 0) >= 1)).toBe(true);
    // Released in the order the servers were given.
    const releasedOrder = events.filter((e) => e.type === "released").map((e) => e.jobId);
    const children = await a.h.sql.query<{ id: string; serverId: string }>`SELECT id, resource_id AS serverId FROM jobs WHERE parent_id = ${id} ORDER BY id`;
    expect(children.map((c) => c.serverId)).toEqual(servers);
    expect(releasedOrder).toEqual(children.map((c) => c.id));
  }, 60_000);

  it("takes a child started in the parent's worker up again there after its backoff, as a redelivery would", async () => {
    // An agent nothing answers for: the call fails UNAVAILABLE, a retryable failure (backoff 2 s).
    const key = Buffer.from(a.h.config.agent.credentialKey, "base64");
    const fleet = await insertFleet(a.h.sql, { accountId: a.accountId, count: 1, port: await freePort(), credentialKey: key, namePrefix: "unreachable-" });
    const { job } = await runFleet({ serverIds: [...fleet.values()], maxConcurrency: 1 });
    const id = job?.id ?? "";
    onTestFinished(async () => {
      await cancel(id).catch(() => undefined);
      await watch(id);
    });
    // Not left for the reconciler's republication (30 s), nor to the claimer (its event would say so).
    const second = await until(async () => {
      const [row] = await a.h.sql.query<{ message: string }>`
        SELECT e.message FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE j.parent_id = ${id} AND e.type = 'started' AND e.attempt = 2`;
      return row ?? null;
    }, 10_000, "the child's second attempt");
    expect(second.message).toBe("attempt 2 of 3");
  }, 30_000);

  it("stops after 3 failures with an error budget of 3: nothing is released after the third, the rest is cancelled, the parent FAILED", async () => {
    // Every third server fails, from the second one on.
    farm.failing.clear();
    servers.forEach((s, i) => i % 3 === 1 && farm.failing.add(s));
    onTestFinished(() => farm.failing.clear());
    const { job } = await runFleet({ serverIds: servers, maxConcurrency: 5, errorBudget: 3 });
    const id = job?.id ?? "";
    const end = await a.h.waitForState(id, ["SUCCEEDED", "FAILED", "CANCELLED"], 30_000);
    expect(end.state).toBe("FAILED");
    expect(end.errorCode).toBe("ABORTED");
    expect(end.errorMessage).toMatch(/error budget 3/);
    const events = await childEvents(id);
    const failures = events.filter((e) => e.type === "failed").sort((x, y) => x.at.getTime() - y.at.getTime());
    expect(failures.length).toBeGreaterThanOrEqual(3);
    const third = (failures[2] as ChildEvent).at.getTime();
    expect(events.filter((e) => e.type === "released" && e.at.getTime() > third)).toEqual([]);
    const states = await childStates(id);
    expect(states.CANCELLED).toBeGreaterThan(0);
    expect((states.SUCCEEDED ?? 0) + (states.FAILED ?? 0) + (states.CANCELLED ?? 0)).toBe(SERVERS);
    // The failures are permanent (an exit code is not retried) and carry the command's output.
    const [failed] = await a.h.sql.query<{ details: unknown }>`SELECT error_details AS details FROM jobs WHERE parent_id = ${id} AND state = 'FAILED' LIMIT 1`;
    const details = (typeof failed?.details === "string" ? JSON.parse(failed.details) : failed?.details) as { exitCode: number; stderr: string };
    expect(details.exitCode).toBe(1);
    expect(details.stderr).toMatch(/^failed on /);
    expect(maxRunning(events)).toBeLessThanOrEqual(5);
    farm.failing.clear();
  }, 60_000);

  it("cancel of the parent cancels the servers not started and stops releasing; the parent ends CANCELLED", async () => {
    const { job } = await runFleet({ serverIds: servers, maxConcurrency: 5, args: ["300"] });
    const id = job?.id ?? "";
    await until(async () => ((await childStates(id)).SUCCEEDED ?? 0) >= 5, 20_000, "five servers done");
    await cancel(id);
    const end = await a.h.waitForState(id, ["SUCCEEDED", "FAILED", "CANCELLED"], 20_000);
    expect(end.state).toBe("CANCELLED");
    const [requested] = await a.h.sql.query<{ at: Date }>`SELECT created_at AS at FROM job_events WHERE job_id = ${id} AND type = 'cancel_requested'`;
    // Every child ends: the running ones finish or stop, the rest is cancelled without running.
    await until(async () => {
      const s = await childStates(id);
      return (s.SUCCEEDED ?? 0) + (s.FAILED ?? 0) + (s.CANCELLED ?? 0) === SERVERS;
    }, 20_000, "every child ended");
    const events = await childEvents(id);
    expect(events.filter((e) => e.type === "released" && e.at.getTime() > (requested?.at.getTime() ?? 0))).toEqual([]);
    const started = new Set(events.filter((e) => e.type === "started").map((e) => e.jobId));
    expect(started.size).toBeLessThan(SERVERS);
    expect((await childStates(id)).CANCELLED).toBeGreaterThanOrEqual(SERVERS - started.size);
  }, 60_000);

  it("chooses servers by account and name prefix; the same idempotency key returns the same job without new children", async () => {
    const key = `fleet-${newId()}`;
    const first = await runFleet({ selector: { accountId: a.accountId, regionId: "r1", namePrefix: "fleet-1", tags: {} }, idempotencyKey: key, maxConcurrency: 20, args: ["0"] });
    // fleet-1 and fleet-10 … fleet-19
    expect(first.serverCount).toBe(11);
    const again = await runFleet({ selector: { accountId: a.accountId, regionId: "", namePrefix: "fleet-1", tags: {} }, idempotencyKey: key });
    expect(again.job?.id).toBe(first.job?.id);
    const end = await a.h.waitForState(first.job?.id ?? "", ["SUCCEEDED", "FAILED"], 20_000);
    expect(end.state).toBe("SUCCEEDED");
    expect(await childStates(first.job?.id ?? "")).toEqual({ SUCCEEDED: 11 });
  }, 30_000);

  it("chooses servers by tags: only those holding every given pair, from the API and from `run-fleet --tag`", async () => {
    const web = servers.slice(20, 25);
    for (const id of web) await a.h.sql.execute`UPDATE servers SET tags = JSON_OBJECT('tier', 'web', 'env', 'prod') WHERE id = ${id}`;
    // Near misses: the other value, and one of the two pairs only.
    await a.h.sql.execute`UPDATE servers SET tags = JSON_OBJECT('tier', 'web', 'env', 'staging') WHERE id = ${servers[25] as string}`;
    await a.h.sql.execute`UPDATE servers SET tags = JSON_OBJECT('tier', 'web') WHERE id = ${servers[26] as string}`;
    const chosen = async (jobId: string): Promise<string[]> =>
      (await a.h.sql.query<{ id: string }>`SELECT resource_id AS id FROM jobs WHERE parent_id = ${jobId} ORDER BY resource_id`).map((r) => r.id);

    const { job, serverCount } = await runFleet({ selector: { accountId: a.accountId, regionId: "", namePrefix: "", tags: { tier: "web", env: "prod" } }, args: ["0"] });
    expect(serverCount).toBe(5);
    expect(await chosen(job?.id ?? "")).toEqual([...web].sort());
    expect((await a.h.waitForState(job?.id ?? "", ["SUCCEEDED", "FAILED"], 20_000)).state).toBe("SUCCEEDED");
    const wider = await runFleet({ selector: { accountId: a.accountId, regionId: "", namePrefix: "", tags: { tier: "web" } }, args: ["0"] });
    expect(wider.serverCount).toBe(7);
    expect((await a.h.waitForState(wider.job?.id ?? "", ["SUCCEEDED", "FAILED"], 20_000)).state).toBe("SUCCEEDED");
    expect(await codeOf(runFleet({ selector: { accountId: a.accountId, regionId: "", namePrefix: "", tags: { tier: "db" } } }))).toBe(Code.FAILED_PRECONDITION);

    process.env.DISPATCHER_CLIENT_TOKEN = "operator-token";
    try {
      let out = "";
      const code = await runAgentsFleet(["work", "0"], { address: jobsServer.address, server: [], account: a.accountId, tag: { env: "staging", tier: "web" }, env: [], wait: false, io: { out: (t: string) => void (out += t), err: () => undefined } });
      expect(code, out).toBe(0);
      expect(out).toMatch(/^job ([0-9A-Z]{26}) started on 1 servers/);
      const id = /^job (\S+)/.exec(out)?.[1] ?? "";
      expect(await chosen(id)).toEqual([servers[25]]);
      expect((await a.h.waitForState(id, ["SUCCEEDED", "FAILED"], 20_000)).state).toBe("SUCCEEDED");
    } finally {
      delete process.env.DISPATCHER_CLIENT_TOKEN;
    }
  }, 30_000);

  it("purges a parent's children with it, and never a child alone", async () => {
    const { job } = await runFleet({ serverIds: servers.slice(0, 3), args: ["0"] });
    const id = job?.id ?? "";
    await a.h.waitForState(id, ["SUCCEEDED"], 20_000);
    await a.h.sql.execute`UPDATE jobs SET ended_at = NOW(3) - INTERVAL 40 DAY WHERE parent_id = ${id}`;
    expect((await purgeFinishedJobs(a.h.sql, { olderThanMs: 30 * 86_400_000, limit: 100 })).jobs).toBe(0);
    await a.h.sql.execute`UPDATE jobs SET ended_at = NOW(3) - INTERVAL 40 DAY WHERE id = ${id}`;
    expect((await purgeFinishedJobs(a.h.sql, { olderThanMs: 30 * 86_400_000, limit: 100 })).jobs).toBe(4);
    expect(await a.h.sql.query`SELECT id FROM jobs WHERE id = ${id} OR parent_id = ${id}`).toEqual([]);
  }, 30_000);
});

describe("dispatcher agents run-fleet", () => {
  const io = () => {
    let out = "";
    let err = "";
    return { out: (t: string) => void (out += t), err: (t: string) => void (err += t), stdout: () => out, stderr: () => err };
  };

  it("--wait follows the parent with a progress line per change and exits 0 when every server succeeded", async () => {
    process.env.DISPATCHER_CLIENT_TOKEN = "operator-token";
    try {
      const t = io();
      const code = await runAgentsFleet(["work", "100"], { address: jobsServer.address, server: servers.slice(0, 10), env: [], maxConcurrency: 3, wait: true, tty: false, io: t });
      expect(code, t.stderr()).toBe(0);
      const lines = t.stderr().trim().split("\n");
      expect(lines[0]).toMatch(/^job [0-9A-Z]{26}: 10 servers$/);
      expect(lines.length).toBeGreaterThan(2);
      expect(lines.at(-1)).toBe(`[${"#".repeat(30)}] 10/10 · 10 ok · 0 failed · 0 cancelled · 0 running · 0 pending`);
      expect(t.stdout()).toBe("SUCCEEDED: 10 of 10 servers succeeded, 0 failed, 0 cancelled\n");
    } finally {
      delete process.env.DISPATCHER_CLIENT_TOKEN;
    }
  }, 30_000);

  it("exits 1 when the error budget stopped it, naming the servers that failed", async () => {
    process.env.DISPATCHER_CLIENT_TOKEN = "operator-token";
    farm.failing.add(servers[0] as string).add(servers[1] as string);
    try {
      const t = io();
      const code = await runAgentsFleet(["work", "0"], { address: jobsServer.address, server: servers.slice(0, 6), env: [], maxConcurrency: 1, errorBudget: 2, wait: true, tty: false, io: t });
      expect(code).toBe(1);
      expect(t.stdout()).toMatch(/^FAILED: 0 of 6 servers succeeded, 2 failed, 4 cancelled\nABORTED: stopped after 2 of 6 servers failed/);
      expect(t.stdout()).toContain(`server ${servers[0]}: FAILED_PRECONDITION: the command exited with code 1`);
      expect(t.stdout()).toContain(`server ${servers[1]}: FAILED_PRECONDITION`);
    } finally {
      farm.failing.clear();
      delete process.env.DISPATCHER_CLIENT_TOKEN;
    }
  }, 30_000);
});

describe("scope and validation", () => {
  it("another account's server is NOT_FOUND, like one that does not exist; so is another account's selector", async () => {
    expect(await codeOf(runFleet({ serverIds: [servers[0] as string] }, a.tokens.stranger))).toBe(Code.NOT_FOUND);
    expect(await codeOf(runFleet({ serverIds: [servers[0] as string, newId()] }))).toBe(Code.NOT_FOUND);
    expect(await codeOf(runFleet({ selector: { accountId: a.accountId, regionId: "", namePrefix: "", tags: {} } }, a.tokens.stranger))).toBe(Code.NOT_FOUND);
  });

  it("rejects bad requests with field violations", async () => {
    const violations = async (req: Partial<RunFleetCommandRequest>): Promise<string> => {
      const err = await runFleet(req).then(() => null, (e: ServiceError) => e);
      expect(err?.code).toBe(Code.INVALID_ARGUMENT);
      return err?.details ?? "";
    };
    expect(await violations({})).toMatch(/server_ids/);
    expect(await violations({ serverIds: servers.slice(0, 1), selector: { accountId: a.accountId, regionId: "", namePrefix: "", tags: {} } })).toMatch(/not both/);
    expect(await violations({ serverIds: [servers[0] as string, servers[0] as string] })).toMatch(/repeats/);
    expect(await violations({ serverIds: ["nope"] })).toMatch(/server_ids\[0\]/);
    expect(await violations({ serverIds: servers.slice(0, 1), maxConcurrency: 1001 })).toMatch(/max_concurrency/);
    expect(await violations({ serverIds: servers.slice(0, 1), errorBudget: -1 })).toMatch(/error_budget/);
    expect(await violations({ serverIds: servers.slice(0, 1), command: "" })).toMatch(/command/);
    expect(await violations({ selector: { accountId: a.accountId, regionId: "", namePrefix: "", tags: { "": "x", ok: "a\u0007" } } })).toMatch(/selector\.tags: a tag key has 1 to 128 characters[\s\S]*selector\.tags\["ok"\]: a tag value has no control characters/);
  });

  it("a server without an agent is FAILED_PRECONDITION naming it", async () => {
    const bare = await a.newServer();
    const err = await runFleet({ serverIds: [servers[0] as string, bare] }).then(() => null, (e: ServiceError) => e);
    expect(err?.code).toBe(Code.FAILED_PRECONDITION);
    expect(err?.details).toContain(bare);
  });
});

describe("a worker with two slots", () => {
  it("runs two fleet commands started together: parents never take every slot, so their children always have room", async () => {
    await worker?.stop(2_000);
    worker = await startWorker({ resources: { ...a.h.resources("w2"), relay: a.relay }, catalog: a.h.catalog, concurrency: 2 });
    const [one, two] = await Promise.all([runFleet({ serverIds: servers.slice(0, 3), maxConcurrency: 1, args: ["0"] }), runFleet({ serverIds: servers.slice(3, 6), maxConcurrency: 1, args: ["0"] })]);
    for (const r of [one, two]) expect((await a.h.waitForState(r.job?.id ?? "", ["SUCCEEDED", "FAILED", "CANCELLED"], 30_000)).state).toBe("SUCCEEDED");
  }, 60_000);
});
