// npm run bench:jobs — diagnostic jobs through the whole path (RPC → MySQL → JetStream → worker → MySQL), driven from
// this process against separate dispatcher and worker processes. Prints a summary and one JSON line.
// Options (env): BENCH_JOBS (jobs in the throughput phase, default 5000), BENCH_IN_FLIGHT (64), BENCH_LATENCY_S (6),
// BENCH_LATENCY_RATE (phase 2's jobs/s; default half of phase 1's), BENCH_LAYOUT ("split": a dispatcher+monitor
// process and a worker process, the default; "single": one process with every role), BENCH_PROFILE_DIR (V8 CPU
// profiles of the server processes), BENCH_NODE_FLAGS (node flags for them), BENCH_METRICS_ROUNDS (2: phase 1 runs
// this many times with metrics off and as many with them on, alternating, each on fresh server processes; the rest runs
// with metrics on, the default). While metrics are on, every server process's /metrics is scraped every 2 s.
// BENCH_FLOOR ("0" skips it): before the dispatcher runs, the peer harness's floor (bench/floor.ts) runs the same number
// of jobs and its paced phase at phase 2's rate (500/s unless BENCH_LATENCY_RATE says otherwise), and the summary
// and JSON line carry the ratios to it. DISPATCHER_* variables reach the servers.
import type { ChildProcess } from "node:child_process";
import { loadavg } from "node:os";
import { connect as connectNats } from "@nats-io/transport-node";
import { createDispatcherClients } from "../src/client/index.js";
import { loadConfig } from "../src/config.js";
import { createProvisioningClient } from "../src/db/clients.js";
import { createApiKeyForEmail } from "../src/iam/api-keys/keys.js";
import { DiagnosticOutcome } from "../src/gen/proto/dispatcher/v1/jobs.js";
import { measureEcho } from "./echo.js";
import { runFloor } from "./floor.js";
import { benchEnvironment, CORES, cpuSeconds, freePort, machineTicks, percentile, round, runDispatcher, say, servicePids, startDispatcher, stopProcess, syscalls } from "./support.js";

const JOBS = Number(process.env.BENCH_JOBS ?? 5000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 64);
const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_S ?? 6);
const LAYOUT = process.env.BENCH_LAYOUT === "single" ? "single" : "split";
/** Phase 2's rate; 0: half of phase 1's. */
const LATENCY_RATE = Number(process.env.BENCH_LATENCY_RATE ?? 0);
const METRICS_ROUNDS = Math.max(1, Number(process.env.BENCH_METRICS_ROUNDS ?? 2));
/** How often a metrics-on run scrapes each server process (Prometheus's default is 15 s). */
const SCRAPE_EVERY_MS = 2_000;

interface Times {
  id: string;
  created: number;
  started: number | null;
  ended: number | null;
}

const bench = await benchEnvironment("jobs");
say(`bench:jobs on ${CORES} cores — ${JOBS} jobs, ${IN_FLIGHT} in flight, ${LAYOUT} layout; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
say("migrating a throwaway database");
await runDispatcher(["migrate"], bench.env);
const db = createProvisioningClient(bench.provisioningUrl, 2);
const { secret } = await createApiKeyForEmail(db, { email: "bench@local", role: "admin", kind: "service", name: "bench" });

interface Servers {
  server: ChildProcess;
  worker: ChildProcess | undefined;
  stop(): Promise<void>;
}

/** The server processes of one run, with metrics on (each on a port of its own, scraped) or off. */
async function startServers(metrics: boolean): Promise<Servers> {
  say(`${LAYOUT === "split" ? "starting a dispatcher process (dispatcher, monitor) and a worker process" : "starting one process (dispatcher, monitor, worker)"}, metrics ${metrics ? "on" : "off"}`);
  const ports: number[] = [];
  // No-op jobs need no cloud: without the local cloud the dispatcher does not try (and warn) to connect it through a
  // KM this bench does not run.
  const base = { ...bench.env, DISPATCHER_LOCAL_CLOUD_ENABLED: "false" };
  const env = async (): Promise<NodeJS.ProcessEnv> => {
    if (!metrics) return { ...base, DISPATCHER_METRICS_ENABLED: "false" };
    ports.push(await freePort());
    return { ...base, DISPATCHER_METRICS_ENABLED: "true", DISPATCHER_METRICS_BIND: "127.0.0.1", DISPATCHER_METRICS_PORT: String(ports.at(-1)) };
  };
  const server = await startDispatcher(LAYOUT === "split" ? "dispatcher,monitor" : "worker,monitor,dispatcher", await env(), bench.port);
  const worker = LAYOUT === "split" ? await startDispatcher("worker", await env(), bench.port) : undefined;
  const scraper = metrics ? setInterval(() => ports.forEach((port) => void fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()).catch(() => undefined)), SCRAPE_EVERY_MS) : undefined;
  return {
    server,
    worker,
    async stop() {
      clearInterval(scraper);
      await Promise.all([stopProcess(server), worker ? stopProcess(worker) : undefined]);
    },
  };
}

const services = servicePids(Number(new URL(loadConfig(process.env, "").mq.url).port || 4222));
const clients = createDispatcherClients({ address: `127.0.0.1:${bench.port}`, token: secret, retry: false });

/**
 * Where phase 2's jobs are on the way (this process's clock, which is the database's: same machine): the create's reply
 * and the moment the job's message crossed NATS (a plain subscription beside the stream sees every publication).
 */
const replied = new Map<string, number>();
const published = new Map<string, number>();
const natsUrl = loadConfig(process.env, "").mq.url;
const tap = await connectNats({ servers: natsUrl });
/** Subscribed for phase 2 only, so that phase 1's client CPU is the calls' alone. */
const startTap = (): void =>
  void tap.subscribe(`${bench.env.DISPATCHER_MQ_SUBJECT_PREFIX}.>`, {
    callback: (_err, m) => {
      const t = Date.now();
      try {
        const id = (JSON.parse(Buffer.from(m.data).toString("utf8")) as { jobId?: string }).jobId;
        if (id && !published.has(id)) published.set(id, t);
      } catch {
        // not a job message
      }
    },
  });

const launch = async (): Promise<string> => {
  const res = await clients.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED, sleep: { seconds: "0", nanos: 0 } });
  return res.job?.id ?? "";
};

/** CPU seconds so far of each process on the job path (this one is the client). */
function cpuNow({ server, worker }: Servers): Record<string, number> {
  const out: Record<string, number> = { client: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6 };
  out[LAYOUT === "split" ? "dispatcher" : "all-roles"] = cpuSeconds(server.pid);
  if (worker) out.worker = cpuSeconds(worker.pid);
  out.mariadb = cpuSeconds(services.mariadb);
  out.nats = cpuSeconds(services.nats);
  return out;
}

/** Read and write system calls so far of each server process on the job path, MariaDB's and NATS's. */
function syscallsNow({ server, worker }: Servers): Record<string, { reads: number; writes: number }> {
  const out: Record<string, { reads: number; writes: number }> = { [LAYOUT === "split" ? "dispatcher" : "all-roles"]: syscalls(server.pid) };
  if (worker) out.worker = syscalls(worker.pid);
  out.mariadb = syscalls(services.mariadb);
  out.nats = syscalls(services.nats);
  return out;
}

/** COMMIT statements the server has run (every client's: quiet the machine for a clean figure). */
async function commitCount(): Promise<number> {
  const rows = await db.$queryRaw<{ Value: string }[]>`SHOW GLOBAL STATUS LIKE 'Com_commit'`;
  return Number(rows[0]?.Value ?? 0);
}

/** Jobs in a terminal state so far (an index range: cheap enough to poll while the bench runs). */
async function terminalCount(): Promise<number> {
  const rows = await db.$queryRaw<{ n: bigint }[]>`SELECT COUNT(*) AS n FROM jobs WHERE state IN ('SUCCEEDED','FAILED','CANCELLED')`;
  return Number(rows[0]?.n ?? 0);
}

/**
 * Waits until `ids` (created after `before` jobs had ended) have ended too. Jobs are never deleted between phases:
 * deleting thousands of rows leaves InnoDB purging them during the next phase, which would measure the purge.
 */
async function waitTerminal(ids: string[], before: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  let n = 0;
  while (Date.now() < end) {
    n = (await terminalCount()) - before;
    if (n >= ids.length) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`only ${n} of ${ids.length} jobs finished in time`);
}

/** Phase 2's hops: create → reply (committed), reply → message on NATS (relay), NATS → started (worker). */
function hopTimes(ids: string[], rows: Times[]): Record<string, { p50: number; p99: number }> {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const hops: Record<string, number[]> = { create_to_reply: [], reply_to_published: [], published_to_started: [], create_to_published: [] };
  for (const id of ids) {
    const r = byId.get(id);
    const rep = replied.get(id);
    const pub = published.get(id);
    if (!r || rep === undefined || pub === undefined || r.started === null) continue;
    hops.create_to_reply?.push(rep - r.created);
    hops.reply_to_published?.push(pub - rep);
    hops.published_to_started?.push(r.started - pub);
    hops.create_to_published?.push(pub - r.created);
  }
  return Object.fromEntries(
    Object.entries(hops).map(([k, xs]) => {
      xs.sort((a, b) => a - b);
      return [k, { p50: percentile(xs, 50), p99: percentile(xs, 99) }];
    }),
  );
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 2_000));

async function times(ids: string[]): Promise<Times[]> {
  const out: Times[] = [];
  for (let i = 0; i < ids.length; i += 1000) {
    const chunk = ids.slice(i, i + 1000);
    const rows = await db.job.findMany({ where: { id: { in: chunk } }, select: { id: true, createdAt: true, startedAt: true, endedAt: true } });
    for (const r of rows) {
      out.push({ id: r.id, created: r.createdAt.getTime(), started: r.startedAt?.getTime() ?? null, ended: r.endedAt?.getTime() ?? null });
    }
  }
  return out;
}

/** Warm-up, then phase 1 (throughput) on `servers`. */
async function throughput(servers: Servers, metrics: boolean) {
  say("warming up");
  const before = await terminalCount();
  const warm = await Promise.all(Array.from({ length: 200 }, launch));
  await waitTerminal(warm, before, 60_000);
  await settle();

  say(`phase 1: ${JOBS} jobs as fast as ${IN_FLIGHT} callers go (metrics ${metrics ? "on" : "off"})`);
  const ids: string[] = [];
  const ended1 = await terminalCount();
  const rpcLatency: number[] = [];
  const cpu0 = cpuNow(servers);
  const sys0 = syscallsNow(servers);
  const machine0 = machineTicks();
  const commits0 = await commitCount();
  const t0 = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < JOBS) {
        next++;
        const t = performance.now();
        ids.push(await launch());
        rpcLatency.push(round(performance.now() - t, 1));
      }
    }),
  );
  const submitted = Date.now();
  rpcLatency.sort((a, b) => a - b);
  await waitTerminal(ids, ended1, 300_000);
  const done = Date.now();
  const cpu1 = cpuNow(servers);
  const sys1 = syscallsNow(servers);
  const machine1 = machineTicks();
  const machineBusy = (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total);
  const commits = (await commitCount()) - commits0;
  const t1 = await times(ids);
  const firstCreated = Math.min(...t1.map((t) => t.created));
  const lastEnded = Math.max(...t1.map((t) => t.ended ?? 0));
  const jobsPerS = JOBS / ((lastEnded - firstCreated) / 1000);
  say(`  submitted in ${((submitted - t0) / 1000).toFixed(2)} s (${round(JOBS / ((submitted - t0) / 1000), 0)} RPC/s); all terminal after ${((done - t0) / 1000).toFixed(2)} s`);
  say(`  completed: ${round(jobsPerS, 0)} jobs/s`);
  const wall = (done - t0) / 1000;
  const cpu = Object.fromEntries(Object.keys(cpu1).map((k) => [k, cpu1[k]! - cpu0[k]!]));
  for (const [name, secs] of Object.entries(cpu)) {
    say(`  cpu ${name.padEnd(10)} ${round(secs, 2)} s = ${round((secs / wall) * 100, 0)}% of one core, ${round((secs * 1e6) / JOBS, 0)} µs per job`);
  }
  const sys = Object.fromEntries(
    Object.keys(sys1).map((k) => [k, { reads: round(((sys1[k]?.reads ?? 0) - (sys0[k]?.reads ?? 0)) / JOBS, 2), writes: round(((sys1[k]?.writes ?? 0) - (sys0[k]?.writes ?? 0)) / JOBS, 2) }]),
  );
  say(`  system calls per job (reads / writes): ${Object.entries(sys).map(([k, v]) => `${k} ${v.reads} / ${v.writes}`).join(", ")}`);
  say(`  machine: ${round(machineBusy * 100, 0)}% of ${CORES} cores busy (every process, kernel included)`);
  say(`  create RPC latency: p50 ${percentile(rpcLatency, 50)} ms, p99 ${percentile(rpcLatency, 99)} ms`);
  say(`  commits (server-wide Com_commit, other clients included): ${commits} = ${round(commits / JOBS, 2)} per job`);
  say(`  load average now ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  return { jobsPerS, cpu, sys, machineBusy, commits, rpcLatency };
}

/** Phase 2's rate when the floor runs too: the rate its paced phase ran at, so that the two p99s compare. */
const FLOOR_RATE = LATENCY_RATE > 0 ? LATENCY_RATE : 500;

let servers: Servers | undefined;
try {
  const floor = process.env.BENCH_FLOOR === "0" ? null : await runFloor({ jobs: JOBS, rate: FLOOR_RATE, seconds: LATENCY_SECONDS });
  if (floor) say(`floor: ${floor.jobs_per_s_single} jobs/s single, ${floor.jobs_per_s} batched; start p99 ${floor.start_p99_ms} ms at ${floor.paced_rate}/s`);
  // Phase 1 alternates metrics off and on (off, on, off, on …); the last run's processes (metrics on) serve the rest.
  const runs: Array<{ metrics: boolean } & Awaited<ReturnType<typeof throughput>>> = [];
  for (let n = 0; n < METRICS_ROUNDS; n++) {
    for (const metrics of [false, true]) {
      await servers?.stop();
      servers = await startServers(metrics);
      runs.push({ metrics, ...(await throughput(servers, metrics)) });
    }
  }
  const median = (xs: number[]): number => {
    const sorted = [...xs].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  };
  const onRate = median(runs.filter((r) => r.metrics).map((r) => r.jobsPerS));
  const offRate = median(runs.filter((r) => !r.metrics).map((r) => r.jobsPerS));
  const metricsCostPct = round((1 - onRate / offRate) * 100, 1);
  say(`metrics: ${round(offRate, 0)} jobs/s off, ${round(onRate, 0)} jobs/s on (medians of ${METRICS_ROUNDS}): cost ${metricsCostPct}% of throughput`);
  const last = runs.at(-1) as (typeof runs)[number];
  const { cpu, sys, machineBusy, commits, rpcLatency } = last;
  const jobsPerS = onRate;

  const rate = LATENCY_RATE > 0 ? LATENCY_RATE : floor ? floor.paced_rate : Math.max(1, Math.floor(jobsPerS / 2));
  say(`phase 2: ${rate} jobs/s (${LATENCY_RATE > 0 ? "as asked" : floor ? "the floor's paced rate" : "half the maximum"}) for ${LATENCY_SECONDS} s`);
  startTap();
  await settle();
  const ended2 = await terminalCount();
  const commits2 = await commitCount();
  const ids2: string[] = [];
  const failed2: string[] = [];
  const pending: Promise<void>[] = [];
  const start2 = Date.now();
  let sent = 0;
  while (Date.now() - start2 < LATENCY_SECONDS * 1000) {
    const due = Math.floor(((Date.now() - start2) / 1000) * rate);
    for (; sent < due; sent++)
      pending.push(
        launch().then(
          (id) => {
            replied.set(id, Date.now());
            ids2.push(id);
          },
          // A machine that cannot keep the rate up answers some calls UNAVAILABLE: counted and printed, not fatal.
          (err: unknown) => void failed2.push(err instanceof Error ? err.message : String(err)),
        ),
      );
    await new Promise((r) => setTimeout(r, 2));
  }
  await Promise.all(pending);
  await waitTerminal(ids2, ended2, 120_000);
  const commitsHalf = ((await commitCount()) - commits2) / Math.max(1, ids2.length);
  say(`  commits (server-wide): ${round(commitsHalf, 2)} per job`);
  if (failed2.length > 0) say(`  ${failed2.length} of ${sent} calls failed (the machine did not keep the rate up), e.g. ${failed2[0]}`);
  const t2 = await times(ids2);
  const hops = hopTimes(ids2, t2);
  say(`  hops (p50 / p99 ms): ${Object.entries(hops).map(([k, v]) => `${k} ${v.p50} / ${v.p99}`).join("; ")}`);
  const startLat = t2.filter((t) => t.started !== null).map((t) => (t.started as number) - t.created).sort((a, b) => a - b);
  const completeLat = t2.filter((t) => t.ended !== null).map((t) => (t.ended as number) - t.created).sort((a, b) => a - b);

  say("phase 3: raw grpc-js unary echo, 64 in flight (the ceiling)");
  const echo = await measureEcho(3, 64);

  const figures = {
    bench: "jobs",
    cores: CORES,
    jobs: JOBS,
    jobs_per_s: round(jobsPerS, 0),
    jobs_per_s_metrics_off: round(offRate, 0),
    metrics_cost_pct: metricsCostPct,
    jobs_per_s_runs: runs.map((r) => `${r.metrics ? "on" : "off"}:${round(r.jobsPerS, 0)}`).join(" "),
    latency_rate_per_s: rate,
    start_p50_ms: percentile(startLat, 50),
    start_p99_ms: percentile(startLat, 99),
    complete_p50_ms: percentile(completeLat, 50),
    complete_p99_ms: percentile(completeLat, 99),
    echo_rps: round(echo.rps, 0),
    layout: LAYOUT,
    commits_per_job: round(commits / JOBS, 2),
    commits_per_job_latency_phase: round(commitsHalf, 2),
    syscalls_per_job: sys,
    cpu_ms_per_job: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round((v * 1000) / JOBS, 3)])),
    machine_busy_pct: round(machineBusy * 100, 0),
    rpc_p50_ms: percentile(rpcLatency, 50),
    rpc_p99_ms: percentile(rpcLatency, 99),
    start_hops_ms: hops,
    latency_phase_failed_calls: failed2.length,
    load_avg_1m: round(loadavg()[0] ?? 0, 2),
    ...(floor
      ? {
          floor_jobs_per_s: floor.jobs_per_s_single,
          floor_jobs_per_s_batch: floor.jobs_per_s,
          floor_ratio: round(jobsPerS / floor.jobs_per_s_single, 2),
          floor_start_p99_ms: floor.start_p99_ms,
          floor_paced_rate: floor.paced_rate,
          start_p99_ratio_to_floor: round(percentile(startLat, 99) / Math.max(floor.start_p99_ms, 0.01), 2),
        }
      : {}),
  };
  say("");
  say(`jobs completed per second:      ${figures.jobs_per_s}  (target ≥ 1000)`);
  say(`create → start at ${rate}/s:   p50 ${figures.start_p50_ms} ms, p99 ${figures.start_p99_ms} ms  (target p99 ≤ 25 ms)`);
  say(`create → complete at ${rate}/s: p50 ${figures.complete_p50_ms} ms, p99 ${figures.complete_p99_ms} ms`);
  say(`raw grpc-js echo:               ${figures.echo_rps} calls/s`);
  if (floor) {
    say(`against the floor (same run):   ${figures.floor_ratio} × its ${floor.jobs_per_s_single} jobs/s single (target ≥ 0.75); start p99 ${figures.start_p99_ratio_to_floor} × its ${floor.start_p99_ms} ms (target ≤ 2)`);
  }
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} finally {
  clients.close();
  await tap.close();
  await servers?.stop();
  await db.$disconnect();
  await bench.drop();
}
