// npm run bench:servers — launches BENCH_SERVERS (default 100) servers on the local cloud at once through a real
// `dispatcher start` (a separate process: every role, the quick start's local cloud and account), waits until each
// launch job has seen its process running, then terminates them all at once and waits until every process is gone.
// Prints launches/s, launch→running and terminate→terminated percentiles, and one JSON line {"bench":"servers",…}.
// Options (env): BENCH_SERVERS, BENCH_IN_FLIGHT (LaunchServer/TerminateServer calls at once, default 16: the
// servers launch concurrently whatever it is, since each call only records a job), BENCH_PRODUCT (small),
// BENCH_IMAGE (basic). DISPATCHER_* variables reach the server.
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { loadavg } from "node:os";
import { createDispatcherClients, type DispatcherClients } from "../src/client/index.js";
import { loadConfig } from "../src/config.js";
import { killLocalServers } from "../src/clouds/local/cleanup.js";
import { openConnection } from "../src/db/connect.js";
import { withDatabase } from "../src/db/url.js";
import { JobState, type Job } from "../src/gen/proto/dispatcher/v1/jobs.js";
import { AccountStatus } from "../src/gen/proto/dispatcher/v1/provisioning.js";
import { ServerState } from "../src/gen/proto/dispatcher/v1/servers.js";
import { benchEnvironment, CORES, cpuSeconds, freePort, percentile, round, say } from "./support.js";
import { checkHealth } from "../src/client/index.js";

const SERVERS = Number(process.env.BENCH_SERVERS ?? 100);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 16);
const PRODUCT = process.env.BENCH_PRODUCT ?? "small";
const IMAGE = process.env.BENCH_IMAGE ?? "basic";
const TERMINAL = new Set([JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED]);

const bench = await benchEnvironment("servers");
const credentialsDb = `bench_${bench.id}_cred`;
const kmPort = await freePort();
const env: NodeJS.ProcessEnv = {
  ...bench.env,
  DISPATCHER_KM_PORT: String(kmPort),
  DISPATCHER_KM_URL: `127.0.0.1:${kmPort}`,
  DISPATCHER_KM_DATABASE_URL: withDatabase(loadConfig(process.env, "").provisioning.url, credentialsDb),
  DISPATCHER_LOGGING_LEVEL: "info",
};
say(`bench:servers on ${CORES} cores — ${SERVERS} local servers (${PRODUCT}, ${IMAGE}), ${IN_FLIGHT} calls in flight; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);

const logFile = join(env.DISPATCHER_DATA_DIR ?? ".", "start.log");
const out = openSync(logFile, "a");
const child = spawn(process.execPath, ["bin/dispatcher.js", "start"], { env, stdio: ["ignore", out, "pipe"] });
closeSync(out);
let stderr = "";
child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
say(`dispatcher start: pid ${child.pid}, log ${logFile}`);

let c: DispatcherClients | undefined;
try {
  const token = await until(async () => /DISPATCHER_CLIENT_TOKEN=(\S+)/.exec(stderr)?.[1], 120_000, "the admin token of the first start");
  await until(async () => (await checkHealth(`127.0.0.1:${bench.port}`, "", 1000).catch(() => "DOWN")) === "SERVING", 60_000, "SERVING");
  c = createDispatcherClients({ address: `127.0.0.1:${bench.port}`, token, retry: false });
  const clients = c;
  const account = await until(async () => (await clients.accounts.listAccounts({ pageSize: 100 })).accounts.find((a) => a.name === "local" && a.status === AccountStatus.ACCOUNT_STATUS_ACTIVE), 120_000, "the local account to be discovered");
  const { users } = await clients.users.listUsers({ pageSize: 100 });
  await clients.budgetCodes.createBudgetCode({ code: "BENCH", name: "bench", financeCode: "B-1", hardQuotaCents: "1000000000000", softQuotaCents: "0" });
  for (const u of users) await clients.budgetCodes.grantBudgetCode({ code: "BENCH", userId: u.id });
  const cpu0 = cpuSeconds(child.pid);

  say(`launching ${SERVERS} servers`);
  const t0 = Date.now();
  const launches = await limited(SERVERS, async (i) => {
    const sent = Date.now();
    const r = await clients.servers.launchServer({ accountId: account.id, regionId: "local", dataCenter: "", productId: PRODUCT, imageId: IMAGE, name: `bench-${i}`, budgetCode: "BENCH", idempotencyKey: `bench-${i}` });
    return { sent, accepted: Date.now(), job: r.job!, serverId: r.server!.id };
  });
  const acceptedAt = Date.now();
  const launched = await Promise.all(launches.map((l) => untilEnded(clients, l.job)));
  const t1 = Date.now();
  const failed = launched.filter((j) => j.state !== JobState.JOB_STATE_SUCCEEDED);
  const toRunning = launched.map((j, i) => (j.endTime?.getTime() ?? t1) - launches[i]!.sent).sort((a, b) => a - b);
  const accept = launches.map((l) => l.accepted - l.sent).sort((a, b) => a - b);
  const pids = await Promise.all(launches.map(async (l) => Number((await clients.servers.getServer({ id: l.serverId })).server?.details.pid ?? 0)));
  const running = pids.filter((pid) => pid > 0 && alive(pid)).length;
  say(`  ${SERVERS - failed.length} running (${running} processes alive) in ${((t1 - t0) / 1000).toFixed(1)} s; ${failed.length} failed${failed[0] ? ` (${failed[0].error?.code}: ${failed[0].error?.message})` : ""}`);

  say(`terminating ${SERVERS} servers`);
  const t2 = Date.now();
  const terminations = await limited(SERVERS, async (i) => {
    const l = launches[i]!;
    const sent = Date.now();
    return { sent, job: (await clients.servers.terminateServer({ id: l.serverId, idempotencyKey: `bench-term-${l.serverId}` })).job! };
  });
  const terminated = await Promise.all(terminations.map((t) => untilEnded(clients, t.job)));
  const t3 = Date.now();
  const toTerminated = terminated.map((j, i) => (j.endTime?.getTime() ?? t3) - terminations[i]!.sent).sort((a, b) => a - b);
  const states = await Promise.all(launches.map(async (l) => (await clients.servers.getServer({ id: l.serverId })).server?.state));
  const left = pids.filter((pid) => pid > 0 && alive(pid)).length;
  const cpu = cpuSeconds(child.pid) - cpu0;
  say(`  ${states.filter((s) => s === ServerState.SERVER_STATE_TERMINATED).length} TERMINATED in ${((t3 - t2) / 1000).toFixed(1)} s; processes still alive: ${left}`);

  const result = {
    bench: "servers",
    cores: CORES,
    servers: SERVERS,
    inFlight: IN_FLIGHT,
    launchFailed: failed.length,
    launchesPerSecond: round(SERVERS / ((t1 - t0) / 1000), 2),
    acceptedPerSecond: round(SERVERS / ((acceptedAt - t0) / 1000), 1),
    acceptP50Ms: percentile(accept, 50),
    acceptP99Ms: percentile(accept, 99),
    launchToRunningP50Ms: percentile(toRunning, 50),
    launchToRunningP99Ms: percentile(toRunning, 99),
    terminatesPerSecond: round(SERVERS / ((t3 - t2) / 1000), 2),
    terminateP50Ms: percentile(toTerminated, 50),
    terminateP99Ms: percentile(toTerminated, 99),
    processesLeft: left,
    dispatcherCpuSeconds: round(cpu, 1),
    loadAverage: round(loadavg()[0] ?? 0, 2),
  };
  say("");
  say(`launches/s ${result.launchesPerSecond} (accepted ${result.acceptedPerSecond}/s, accept p50 ${result.acceptP50Ms} ms p99 ${result.acceptP99Ms} ms)`);
  say(`launch→running p50 ${result.launchToRunningP50Ms} ms, p99 ${result.launchToRunningP99Ms} ms`);
  say(`terminate→terminated p50 ${result.terminateP50Ms} ms, p99 ${result.terminateP99Ms} ms; dispatcher CPU ${result.dispatcherCpuSeconds} s`);
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  c?.close();
  if (child.exitCode === null) {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("close", r));
  }
  // Whatever the run left behind (a failed run's servers) does not outlive it.
  const killed = await killLocalServers(env.DISPATCHER_DATA_DIR as string);
  if (killed > 0) say(`killed ${killed} local server processes left behind`);
  await bench.drop();
  const conn = await openConnection(env.DISPATCHER_KM_DATABASE_URL as string, false);
  await conn.query(`DROP DATABASE IF EXISTS \`${credentialsDb}\``).finally(() => conn.end());
}

/** Follows a job to its end over WatchJob (no polling); its last state. */
async function untilEnded(clients: DispatcherClients, job: Job): Promise<Job> {
  let last = job;
  for (let tries = 0; tries < 5 && !TERMINAL.has(last.state); tries++) {
    try {
      for await (const m of clients.jobs.watchJob({ id: job.id })) if (m.job) last = m.job;
    } catch {
      // A stream cut short (deadline, reconnect): watch again from the job as it stands.
    }
  }
  return last;
}

/** fn(0..n-1) with at most IN_FLIGHT running at once; results in order. */
async function limited<T>(n: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(IN_FLIGHT, n) }, async () => {
      for (let i = next++; i < n; i = next++) out[i] = await fn(i);
    }),
  );
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end || child.exitCode !== null) throw new Error(`bench:servers: no ${what} within ${timeoutMs} ms (dispatcher exit ${child.exitCode})\n${stderr.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
