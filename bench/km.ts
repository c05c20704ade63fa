// npm run bench:km — GetCredential over mutual TLS from this process against a separate `dispatcher serve --role km`
// process (real MariaDB: a row read, an unwrap and decrypt, the channel seal, and the fail-closed audit record in the
// table and the file for every call). 1, 16 and 64 concurrent callers, through the KM client a worker uses, which
// sends the calls its callers make together as one BatchGetCredentials call. Prints a summary (with the client
// process's GC pauses, which stop all of its callers at once, and KM's, read from its /metrics) and one JSON line. KM
// runs with its metrics on, as in production.
// Options (env): BENCH_SECONDS (per level, default 5), BENCH_WARMUP_SECONDS (16 callers before the levels, default 10),
// BENCH_LEVELS (concurrencies, default "1,16,64"), BENCH_CREDENTIALS (distinct credentials read, default 100),
// BENCH_KM_GATHER=0 (each GetCredential a call of its own, as before the client gathered them),
// BENCH_KM_NODE_ARGS (node flags for the KM process, e.g. "--cpu-prof --cpu-prof-dir=/tmp/km-prof"), BENCH_KM_PLAINTEXT=1
// (development-mode plaintext transport instead of mTLS, to see what TLS costs), BENCH_KM_TIMELINE=<path> (writes each
// level's calls as [start ms, latency ms, caller] to <path>.<concurrency>.json, to see when the slow calls come).
// DISPATCHER_* variables pass through (e.g. DISPATCHER_KM_POOL_SIZE).
import { spawn } from "node:child_process";
import { constants, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { loadavg } from "node:os";
import { PerformanceObserver } from "node:perf_hooks";
import { loadConfig } from "../src/config.js";
import { openConnection } from "../src/db/connect.js";
import { withDatabase } from "../src/db/url.js";
import { createKmClientFromConfig, type KmClient } from "../src/km/client.js";
import { ensureDevCerts } from "../src/km/dev-files.js";
import { generateKeyText } from "../src/km/keys.js";
import { scrape, sumOf } from "../test/telemetry/metrics-scrape.js";
import { benchEnvironment, CORES, cpuSeconds, freePort, machineTicks, percentile, round, say, servicePids, stopProcess } from "./support.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
/**
 * Load before the measured levels: V8 keeps compiling KM's and the client's code for the first ~20 s under load (KM's
 * CPU per call fell by a third over four 5 s levels in one run), and what is judged is a KM that has been serving.
 */
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 10);
const CREDENTIALS = Number(process.env.BENCH_CREDENTIALS ?? 100);
const LEVELS = (process.env.BENCH_LEVELS ?? "1,16,64").split(",").map(Number);
const TIMELINE = process.env.BENCH_KM_TIMELINE;
const GATHER = process.env.BENCH_KM_GATHER !== "0";
const TARGET_P99_MS_AT_16 = 10;
/** The target holds only on a machine that has room: above this busy share, latency is queueing for a core. */
const TARGET_BELOW_BUSY = 0.7;
/** Durable appends and commits timed for the disk's floor. */
const FLOOR_SAMPLES = 300;

/** p50/p99 of `n` sequential runs of `op`, in ms. */
async function timed(n: number, op: () => Promise<unknown>): Promise<{ p50Ms: number; p99Ms: number }> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await op();
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return { p50Ms: round(percentile(ms, 50), 2), p99Ms: round(percentile(ms, 99), 2) };
}

/** What one audit batch cannot go below on this disk: an O_DSYNC append of a line and a committed one-row INSERT. */
async function diskFloor(dir: string, databaseUrl: string): Promise<{ fileAppend: { p50Ms: number; p99Ms: number }; commit: { p50Ms: number; p99Ms: number } }> {
  const path = join(dir, "floor.jsonl");
  const fh = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC, 0o600);
  const line = Buffer.from(`${JSON.stringify({ time: new Date().toISOString(), action: "get", detail: "x".repeat(160) })}\n`);
  const fileAppend = await timed(FLOOR_SAMPLES, () => fh.write(line)).finally(() => fh.close());
  rmSync(path, { force: true });
  const conn = await openConnection(databaseUrl);
  try {
    await conn.query("CREATE TABLE bench_floor (id BIGINT AUTO_INCREMENT PRIMARY KEY, detail VARCHAR(255)) ENGINE=InnoDB");
    const commit = await timed(FLOOR_SAMPLES, () => conn.query("INSERT INTO bench_floor (detail) VALUES (?)", ["x".repeat(160)]));
    await conn.query("DROP TABLE bench_floor");
    return { fileAppend, commit };
  } finally {
    await conn.end();
  }
}

/** KM's collection pauses so far (all types), from v8js.gc.duration on its /metrics. */
async function kmGcTotals(): Promise<{ pauses: number; seconds: number }> {
  const samples = await scrape(kmMetricsPort);
  return { pauses: sumOf(samples, "v8js_gc_duration_count") ?? 0, seconds: sumOf(samples, "v8js_gc_duration_sum") ?? 0 };
}

const bench = await benchEnvironment("km");
const kmPort = await freePort();
const kmMetricsPort = await freePort();
const credentialsDb = `bench_${bench.id}_cred`;
const env: NodeJS.ProcessEnv = {
  ...bench.env,
  DISPATCHER_KM_PORT: String(kmPort),
  DISPATCHER_KM_URL: `127.0.0.1:${kmPort}`,
  DISPATCHER_KM_BIND: "127.0.0.1",
  DISPATCHER_KM_DATABASE_URL: withDatabase(bench.provisioningUrl, credentialsDb),
  DISPATCHER_ENCRYPTION_MASTER_KEYS: generateKeyText(1),
  DISPATCHER_METRICS_ENABLED: "true",
  DISPATCHER_METRICS_BIND: "127.0.0.1",
  DISPATCHER_METRICS_PORT: String(kmMetricsPort),
  ...(process.env.BENCH_KM_PLAINTEXT === "1" ? { DISPATCHER_KM_PLAINTEXT: "true" } : {}),
};
const dataDir = env.DISPATCHER_DATA_DIR as string;
ensureDevCerts(dataDir);
say(`load average ${loadavg().map((l) => l.toFixed(2)).join(" ")} before the run`);
say(`bench:km on ${CORES} cores (shared by KM, MariaDB and this client) — ${SECONDS} s per level, ${CREDENTIALS} credentials, ${GATHER ? "calls made together sent as one BatchGetCredentials" : "a call each (BENCH_KM_GATHER=0)"}`);

const nodeArgs = (process.env.BENCH_KM_NODE_ARGS ?? "").split(" ").filter(Boolean);
const km = spawn(process.execPath, [...nodeArgs, "bin/dispatcher.js", "serve", "--role", "km", "--migrate"], { env, stdio: ["ignore", "ignore", "inherit"] });
const config = loadConfig(env, "");
const mariadbPid = servicePids(Number(new URL(config.mq.url).port || 4222)).mariadb;
const dispatcher = createKmClientFromConfig(config, "dispatcher");
const workers: KmClient[] = [];

try {
  const ids: string[] = [];
  for (let attempt = 0; ids.length === 0; attempt++) {
    try {
      ids.push((await dispatcher.storeCredential({ accountId: "bench", type: "aws-access-key", fields: { access_key_id: "AKIABENCH", secret_access_key: "x".repeat(40) } })).id);
    } catch (err) {
      if (attempt > 600 || km.exitCode !== null) throw err; // up to 2 min for KM to start on a busy machine
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  while (ids.length < CREDENTIALS) ids.push((await dispatcher.storeCredential({ accountId: "bench", type: "aws-access-key", fields: { access_key_id: `AKIA${ids.length}`, secret_access_key: "y".repeat(40) } })).id);

  // One channel per 16 callers, as a worker process would hold (one client, shared by its job slots).
  const clientFor = (i: number): KmClient => {
    while (workers.length <= Math.floor(i / 16)) workers.push(createKmClientFromConfig(config, "worker", undefined, { gatherGets: GATHER }));
    return workers[Math.floor(i / 16)] as KmClient;
  };
  // CPU milliseconds per call of each process (from /proc), and how busy the whole machine was: on two shared cores
  // the sum per call bounds the throughput, and a busy machine (other work) shows in `machineBusy`.
  const cpu = (): { km: number; mariadb: number; client: number; ticks: ReturnType<typeof machineTicks> } => ({ km: cpuSeconds(km.pid), mariadb: cpuSeconds(mariadbPid), client: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6, ticks: machineTicks() });
  const run = async (concurrency: number, seconds: number) => {
    const latencies: number[] = [];
    const end = Date.now() + seconds * 1000;
    const cpu0 = cpu();
    const kmGc0 = await kmGcTotals();
    // The client's GC pauses: each stops all of its callers at once (they share the process), so they show in the tail.
    const gc = { pauses: 0, totalMs: 0, maxMs: 0 };
    const gcWatch = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        gc.pauses++;
        gc.totalMs += e.duration;
        gc.maxMs = Math.max(gc.maxMs, e.duration);
      }
    });
    gcWatch.observe({ entryTypes: ["gc"] });
    const timeline: [number, number, number][] | undefined = TIMELINE ? [] : undefined;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async (_, i) => {
        const client = clientFor(i);
        let n = i;
        while (Date.now() < end) {
          const id = ids[n++ % ids.length] as string;
          const t = performance.now();
          const got = await client.getCredential({ id, accountId: "bench", jobId: "bench", purpose: "bench" });
          const ms = performance.now() - t;
          latencies.push(ms);
          timeline?.push([round(t - started, 3), round(ms, 3), i]);
          if (!got.fields.access_key_id) throw new Error("no fields");
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    if (timeline && seconds === SECONDS) writeFileSync(`${TIMELINE}.${concurrency}.json`, JSON.stringify(timeline));
    gcWatch.disconnect();
    const cpu1 = cpu();
    const kmGc1 = await kmGcTotals();
    const kmPauses = kmGc1.pauses - kmGc0.pauses;
    const kmPausedMs = (kmGc1.seconds - kmGc0.seconds) * 1000;
    latencies.sort((a, b) => a - b);
    const perCall = (a: number, b: number): number => round(((b - a) * 1000) / Math.max(1, latencies.length), 3);
    return {
      concurrency,
      calls: latencies.length,
      callsPerSec: round(latencies.length / elapsed, 0),
      p50Ms: round(percentile(latencies, 50), 2),
      p99Ms: round(percentile(latencies, 99), 2),
      maxMs: round(latencies[latencies.length - 1] ?? 0, 1),
      cpuMsPerCall: { km: perCall(cpu0.km, cpu1.km), mariadb: perCall(cpu0.mariadb, cpu1.mariadb), client: perCall(cpu0.client, cpu1.client) },
      machineBusy: round((cpu1.ticks.busy - cpu0.ticks.busy) / Math.max(1, cpu1.ticks.total - cpu0.ticks.total), 2),
      clientGc: { pauses: gc.pauses, totalMs: round(gc.totalMs, 0), meanMs: round(gc.totalMs / Math.max(1, gc.pauses), 2), maxMs: round(gc.maxMs, 1) },
      kmGc: { pauses: kmPauses, totalMs: round(kmPausedMs, 0), meanMs: round(kmPausedMs / Math.max(1, kmPauses), 2) },
    };
  };

  say(`warming up (${WARMUP_SECONDS} s at 16 callers)`);
  await run(16, WARMUP_SECONDS);
  const results = [];
  for (const level of LEVELS) {
    const r = await run(level, SECONDS);
    results.push(r);
    say(`  ${String(level).padStart(2)} concurrent: ${r.callsPerSec} calls/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms (max ${r.maxMs} ms, ${r.calls} calls); CPU ms/call KM ${r.cpuMsPerCall.km}, MariaDB ${r.cpuMsPerCall.mariadb}, client ${r.cpuMsPerCall.client}; machine ${Math.round(r.machineBusy * 100)} % busy; client GC ${r.clientGc.pauses} pauses, mean ${r.clientGc.meanMs} ms, max ${r.clientGc.maxMs} ms; KM GC ${r.kmGc.pauses} pauses, mean ${r.kmGc.meanMs} ms`);
  }
  const floor = await diskFloor(dataDir, env.DISPATCHER_KM_DATABASE_URL as string);
  say(`  disk floor (alone, one at a time): durable append p50 ${floor.fileAppend.p50Ms} ms, p99 ${floor.fileAppend.p99Ms} ms; one-row commit p50 ${floor.commit.p50Ms} ms, p99 ${floor.commit.p99Ms} ms`);
  const at16 = results.find((r) => r.concurrency === 16);
  const measurable = (at16?.machineBusy ?? 1) < TARGET_BELOW_BUSY;
  const met = measurable && (at16?.p99Ms ?? Infinity) <= TARGET_P99_MS_AT_16;
  say(`load average ${loadavg().map((l) => l.toFixed(2)).join(" ")} after the run`);
  say(
    measurable
      ? `target p99 ≤ ${TARGET_P99_MS_AT_16} ms at 16 concurrent with the machine below ${TARGET_BELOW_BUSY * 100} % busy: ${met ? "met" : "NOT met"} (${at16?.p99Ms} ms, ${Math.round((at16?.machineBusy ?? 0) * 100)} % busy)`
      : `target p99 ≤ ${TARGET_P99_MS_AT_16} ms at 16 concurrent: not judged — the machine was ${Math.round((at16?.machineBusy ?? 1) * 100)} % busy (the target holds below ${TARGET_BELOW_BUSY * 100} %)`,
  );
  process.stdout.write(`${JSON.stringify({ bench: "km", cores: CORES, loadAverage: loadavg().map((l) => round(l, 2)), seconds: SECONDS, credentials: CREDENTIALS, transport: env.DISPATCHER_KM_PLAINTEXT ? "plaintext" : "mtls", gathered: GATHER, poolSize: config.km.poolSize, results, diskFloor: floor, targetP99MsAt16: TARGET_P99_MS_AT_16, busyShareAt16: at16?.machineBusy, measurable, met })}\n`);
} finally {
  dispatcher.close();
  for (const w of workers) w.close();
  await stopProcess(km);
  await bench.drop();
  const conn = await openConnection(bench.provisioningUrl, false);
  await conn.query(`DROP DATABASE IF EXISTS \`${credentialsDb}\``).finally(() => conn.end());
  rmSync(dataDir, { recursive: true, force: true });
}
