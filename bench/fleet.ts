// npm run bench:fleet — one fleet command (RunFleetCommand) over BENCH_FLEET_SERVERS simulated agents (default 2,000;
// one gRPC server in this process answers agent.v1 for all of them, test/agent/fleet-farm.ts, each agent at its own
// loopback address so that each has a connection of its own), against a dispatcher process (dispatcher, monitor) and
// a worker process. Measures how fast the call writes its children (one transaction) against the floor's batch rate
// from the peer harness, run in the same window (bench/floor.ts; BENCH_FLOOR=0 skips it), and when the parent ends
// against the bound its concurrency limit sets: ceil(servers / limit) rounds of the command's BENCH_FLEET_WORK_MS
// (default 200 ms) at best, never more than the limit running at once (from the children's events and at the agents).
// Options: BENCH_FLEET_CONCURRENCY (the limit, default 50). Prints a summary and one JSON line. DISPATCHER_* variables
// reach the servers.
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { createDispatcherClients } from "../src/client/index.js";
import { createProvisioningClient } from "../src/db/clients.js";
import { newId } from "../src/db/ids.js";
import { createSqlPool } from "../src/db/sql.js";
import { JobState } from "../src/gen/proto/dispatcher/v1/jobs.js";
import { createApiKeyForEmail } from "../src/iam/api-keys/keys.js";
import { insertFleet, startAgentFarm } from "../test/agent/fleet-farm.js";
import { insertAccount } from "../test/support/rows.js";
import { runFloor } from "./floor.js";
import { benchEnvironment, CORES, cpuSeconds, machineTicks, percentile, round, runDispatcher, say, startDispatcher, stopProcess } from "./support.js";

const SERVERS = Number(process.env.BENCH_FLEET_SERVERS ?? 2000);
const LIMIT = Number(process.env.BENCH_FLEET_CONCURRENCY ?? 50);
const WORK_MS = Number(process.env.BENCH_FLEET_WORK_MS ?? 200);
/** Jobs per floor phase: the peer harness's batch phase is what children creation compares to. */
const FLOOR_JOBS = Number(process.env.BENCH_FLOOR_JOBS ?? 10_000);
/** Slack over the ideal makespan within which the parent counts as ending within its limit's bound. */
const BOUND_SLACK = 1.5;

const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");
say(`bench:fleet on ${CORES} cores — ${SERVERS} servers, at most ${LIMIT} at once, ${WORK_MS} ms each; load average ${load()}`);

const floor = process.env.BENCH_FLOOR === "0" ? null : await runFloor({ jobs: FLOOR_JOBS, rate: 500, seconds: 5 });
const floorEnqueue = floor ? Number((floor as unknown as { enqueue_per_s_batch?: number }).enqueue_per_s_batch ?? 0) : 0;
if (floor) say(`floor: ${floor.jobs_per_s} jobs/s batched (enqueue ${floorEnqueue}/s), ${floor.jobs_per_s_single} single`);

const bench = await benchEnvironment("fleet");
const key = randomBytes(32);
// Plaintext agent channel (development): the dispatcher presents each agent's derived credential, which the farm checks.
const env: NodeJS.ProcessEnv = {
  ...bench.env,
  DISPATCHER_AGENT_PLAINTEXT: "true",
  DISPATCHER_AGENT_CREDENTIAL_KEY: key.toString("base64"),
  DISPATCHER_LOCAL_CLOUD_ENABLED: "false",
  // The parent holds a slot while its children use up to LIMIT more.
  DISPATCHER_JOBS_WORKER_CONCURRENCY: String(LIMIT + 16),
  DISPATCHER_PROVISIONING_SQL_POOL_SIZE: String(LIMIT + 24),
  // No agent pings during the run: the farm's servers would be pinged 2,000 times a minute.
  DISPATCHER_AGENT_PING_INTERVAL_MS: "3600000",
};
say("migrating a throwaway database");
await runDispatcher(["migrate"], env);
const db = createProvisioningClient(bench.provisioningUrl, 2);
const sql = createSqlPool(bench.provisioningUrl, 4);
const { secret } = await createApiKeyForEmail(db, { email: "bench@local", role: "admin", kind: "service", name: "bench" });
// Each agent at its own loopback address, so that each has a connection of its own as in a real fleet: a command's
// first call to an agent pays for connecting to it.
const farm = await startAgentFarm(key, { bind: "0.0.0.0" });
const accountId = await insertAccount(sql, { name: "fleet", cloud: { id: newId(), endpoint: "local:" } });
const fleet = await insertFleet(sql, { accountId, count: SERVERS + 20, port: farm.port, credentialKey: key, spreadAddresses: true });
farm.add(fleet);
const serverIds = [...fleet.values()];
const warmIds = serverIds.slice(SERVERS);
const fleetIds = serverIds.slice(0, SERVERS);

say("starting a dispatcher process (dispatcher, monitor) and a worker process");
const server = await startDispatcher("dispatcher,monitor", env, bench.port);
const worker = await startDispatcher("worker", env, bench.port);
const client = createDispatcherClients({ address: `127.0.0.1:${bench.port}`, token: secret });

/** Runs a fleet command and follows it to its end; the call's duration and the parent as it ended. */
async function runFleet(ids: string[], workMs: number) {
  const t0 = performance.now();
  const r = await client.agents.runFleetCommand({ serverIds: ids, command: "work", args: [String(workMs)], env: {}, maxConcurrency: LIMIT, errorBudget: 1, idempotencyKey: "" });
  const callMs = performance.now() - t0;
  const id = r.job?.id ?? "";
  let state = r.job?.state;
  for await (const m of client.jobs.watchJob({ id })) state = m.job?.state ?? state;
  return { id, callMs, state };
}

try {
  say(`warm-up: ${warmIds.length} servers`);
  await runFleet(warmIds, 0);
  farm.resetMax();

  say(`the run: ${SERVERS} servers; load average ${load()}`);
  const cpu0 = { dispatcher: cpuSeconds(server.pid), worker: cpuSeconds(worker.pid) };
  const machine0 = machineTicks();
  const run = await runFleet(fleetIds, WORK_MS);
  const machine1 = machineTicks();
  const cpu = { dispatcher: cpuSeconds(server.pid) - cpu0.dispatcher, worker: cpuSeconds(worker.pid) - cpu0.worker };
  const [parent] = await sql.query<{ created: Date; started: Date; ended: Date; state: string }>`
    SELECT created_at AS created, started_at AS started, ended_at AS ended, state FROM jobs WHERE id = ${run.id}`;
  if (!parent || run.state !== JobState.JOB_STATE_SUCCEEDED) throw new Error(`the fleet command ended ${parent?.state ?? "nowhere"}`);
  const events = await sql.query<{ jobId: string; serverId: string; type: string; fromState: string | null; toState: string; at: Date }>`
    SELECT e.job_id AS jobId, j.resource_id AS serverId, e.type, e.from_state AS fromState, e.to_state AS toState, e.created_at AS at
      FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE j.parent_id = ${run.id}`;
  const maxRunningEvents = maxRunning(events);
  const phases = phaseLatencies(events, farm.timings);
  const rounds = releaseRounds(events);
  const [children] = await sql.query<{ n: bigint; ok: bigint }>`
    SELECT COUNT(*) AS n, SUM(state = 'SUCCEEDED') AS ok FROM jobs WHERE parent_id = ${run.id}`;

  const createdPerS = SERVERS / (run.callMs / 1000);
  const parentS = (parent.ended.getTime() - parent.created.getTime()) / 1000;
  const idealS = (Math.ceil(SERVERS / LIMIT) * WORK_MS) / 1000;
  const busy = (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total);
  const figures = {
    bench: "fleet",
    cores: CORES,
    load_average: loadavg().map((l) => round(l, 2)),
    servers: SERVERS,
    max_concurrency: LIMIT,
    work_ms: WORK_MS,
    create_call_ms: round(run.callMs, 1),
    children_created_per_s: round(createdPerS, 0),
    ...(floor
      ? {
          floor_batch_jobs_per_s: floor.jobs_per_s,
          floor_batch_enqueue_per_s: floorEnqueue,
          creation_ratio_to_floor_batch: round(createdPerS / floor.jobs_per_s, 2),
          creation_ratio_to_floor_batch_enqueue: floorEnqueue > 0 ? round(createdPerS / floorEnqueue, 2) : null,
        }
      : {}),
    parent_s: round(parentS, 2),
    ideal_s: round(idealS, 2),
    parent_ratio_to_ideal: round(parentS / idealS, 2),
    children_succeeded: Number(children?.ok ?? 0),
    max_running_from_events: maxRunningEvents,
    max_running_at_agents: farm.maxInFlight,
    within_limit: maxRunningEvents <= LIMIT && farm.maxInFlight <= LIMIT,
    released_to_started_ms: phases.queue,
    started_to_ended_beyond_work_ms: phases.run,
    started_to_agent_call_ms: phases.toAgent,
    agent_answer_to_ended_ms: phases.fromAgent,
    ended_to_next_release_ms: phases.reaction,
    release_rounds: rounds.rounds,
    released_per_round: rounds.perRound,
    release_round_gap_ms: rounds.gap,
    within_bound: parentS <= idealS * BOUND_SLACK,
    machine_busy_percent: round(busy * 100, 0),
    cpu_s: { dispatcher: round(cpu.dispatcher, 2), worker: round(cpu.worker, 2) },
  };
  say(`  RunFleetCommand: ${SERVERS} children written in ${figures.create_call_ms} ms = ${figures.children_created_per_s} children/s`);
  if (floor) say(`  against the floor (same run): ${figures.creation_ratio_to_floor_batch} × its batch ${floor.jobs_per_s} jobs/s (target ≥ 1); ${figures.creation_ratio_to_floor_batch_enqueue} × its batch enqueue ${floorEnqueue}/s`);
  say(`  parent: ${figures.parent_s} s from creation to end; the limit's bound ceil(${SERVERS}/${LIMIT}) × ${WORK_MS} ms = ${figures.ideal_s} s → ${figures.parent_ratio_to_ideal} × (within ${BOUND_SLACK}×: ${figures.within_bound})`);
  say(`  per child (p50 / p99 ms): released → started ${phases.queue.p50} / ${phases.queue.p99}; started → ended beyond the ${WORK_MS} ms of work ${phases.run.p50} / ${phases.run.p99}; an end → the release it made room for ${phases.reaction.p50} / ${phases.reaction.p99}`);
  say(`    of started → ended: started → the agent's call arrives ${phases.toAgent.p50} / ${phases.toAgent.p99}; the agent's answer → ended ${phases.fromAgent.p50} / ${phases.fromAgent.p99}`);
  say(`  release rounds after the first: ${rounds.rounds}, ${rounds.perRound.mean} children each on average (most ${rounds.perRound.max}); between rounds p50 / p99 ${rounds.gap.p50} / ${rounds.gap.p99} ms`);
  const slot = WORK_MS + phases.queue.p50 + phases.run.p50 + phases.reaction.p50;
  say(`  one slot's cycle at the medians: ${slot} ms = ${WORK_MS} work + ${phases.queue.p50} to start + ${phases.run.p50} around the agent call + ${phases.reaction.p50} to the next release → ${round((Math.ceil(SERVERS / LIMIT) * slot) / 1000, 2)} s for ${Math.ceil(SERVERS / LIMIT)} cycles`);
  say(`  most running at once: ${maxRunningEvents} from the children's events, ${farm.maxInFlight} at the agents (limit ${LIMIT})`);
  say(`  cpu: dispatcher ${figures.cpu_s.dispatcher} s, worker ${figures.cpu_s.worker} s; machine ${figures.machine_busy_percent}% of ${CORES} cores busy; load average ${load()}`);
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} finally {
  client.close();
  await stopProcess(worker);
  await stopProcess(server);
  await farm.stop();
  await sql.end();
  await db.$disconnect();
  await bench.drop();
}

/**
 * Where a child's time goes, p50 and p99: released → started (relay, JetStream, the worker's start), started → ended
 * beyond the command's own work (split at the agent: the handler's reads and the call's connection before it arrives,
 * the answer's way back and the completion after), and a child's end → the release it made room for (doorbell, the
 * parent's round). The k-th release after the first LIMIT pairs with the k-th end.
 */
function phaseLatencies(events: { type: string; jobId: string; serverId: string; fromState: string | null; toState: string; at: Date }[], agents: Map<string, { arrived: number; answered: number }>) {
  const byJob = new Map<string, { serverId: string; released?: number; started?: number; ended?: number }>();
  for (const e of events) {
    const t = byJob.get(e.jobId) ?? { serverId: e.serverId };
    if (e.type === "released") t.released = e.at.getTime();
    else if (e.type === "started") t.started ??= e.at.getTime();
    else if (e.fromState === "RUNNING" && e.toState !== "RUNNING") t.ended = e.at.getTime();
    byJob.set(e.jobId, t);
  }
  const all = [...byJob.values()];
  const releases = all.map((t) => t.released ?? NaN).filter(Number.isFinite).sort((x, y) => x - y);
  const ends = all.map((t) => t.ended ?? NaN).filter(Number.isFinite).sort((x, y) => x - y);
  const agent = (t: { serverId: string }) => agents.get(t.serverId) ?? { arrived: NaN, answered: NaN };
  return {
    queue: stat(all.map((t) => (t.started ?? NaN) - (t.released ?? NaN))),
    run: stat(all.map((t) => (t.ended ?? NaN) - (t.started ?? NaN) - WORK_MS)),
    toAgent: stat(all.map((t) => agent(t).arrived - (t.started ?? NaN))),
    fromAgent: stat(all.map((t) => (t.ended ?? NaN) - agent(t).answered)),
    reaction: stat(releases.slice(LIMIT).map((r, k) => r - (ends[k] ?? NaN))),
  };
}

function stat(xs: number[]): { p50: number; p99: number } {
  const sorted = xs.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

/**
 * The parent's release rounds after its first (which releases LIMIT at once): one round's "released" events share its
 * statement's time. How many, how many children each, and the time between one round and the next.
 */
function releaseRounds(events: { type: string; at: Date }[]) {
  const sizes = new Map<number, number>();
  for (const e of events) if (e.type === "released") sizes.set(e.at.getTime(), (sizes.get(e.at.getTime()) ?? 0) + 1);
  const times = [...sizes.keys()].sort((x, y) => x - y).slice(1);
  const counts = times.map((t) => sizes.get(t) ?? 0);
  return {
    rounds: times.length,
    perRound: { mean: round(counts.reduce((a, b) => a + b, 0) / Math.max(1, counts.length), 2), max: Math.max(0, ...counts) },
    gap: stat(times.slice(1).map((t, k) => t - (times[k] ?? NaN))),
  };
}

/** The most children RUNNING at once, from their events (at one millisecond, an end before a start). */
function maxRunning(events: { fromState: string | null; toState: string; at: Date }[]): number {
  const delta = (e: { fromState: string | null; toState: string }) => (e.toState === "RUNNING" && e.fromState !== "RUNNING" ? 1 : e.fromState === "RUNNING" && e.toState !== "RUNNING" ? -1 : 0);
  const sorted = [...events].sort((x, y) => x.at.getTime() - y.at.getTime() || delta(x) - delta(y));
  let running = 0;
  let max = 0;
  for (const e of sorted) {
    running += delta(e);
    max = Math.max(max, running);
  }
  return max;
}
