// npm run bench:growth — how the provisioning database's size shows in list latency, and what purging it costs.
// Phase 1 fills the jobs, job_events and servers tables with BENCH_GROWTH_SMALL rows each (default 10,000), measures
// the p99 of ListJobs (several filters and a deep page), ListJobEvents and ListServers through a running dispatcher,
// then grows the tables to BENCH_GROWTH_LARGE rows (default 1,000,000) and measures again. Phase 2 measures job
// creation at a fixed rate with retention off, then while the monitor purges the filled jobs (all past retention).
// Prints a summary and one JSON line. Rows are written by the database itself (INSERT … SELECT over MariaDB's
// sequence engine), so filling a million rows takes seconds, not the job path's hours.
import type { ChildProcess } from "node:child_process";
import { loadavg } from "node:os";
import { createDispatcherClients, type DispatcherClients } from "../src/client/index.js";
import { openConnection } from "../src/db/connect.js";
import { createProvisioningClient } from "../src/db/clients.js";
import { createApiKeyForEmail } from "../src/iam/api-keys/keys.js";
import { DiagnosticOutcome, JobState } from "../src/gen/proto/dispatcher/v1/jobs.js";
import { ServerState } from "../src/gen/proto/dispatcher/v1/servers.js";
import { benchEnvironment, CORES, machineTicks, percentile, round, runDispatcher, say, startDispatcher, stopProcess } from "./support.js";

const SMALL = Number(process.env.BENCH_GROWTH_SMALL ?? 10_000);
const LARGE = Number(process.env.BENCH_GROWTH_LARGE ?? 1_000_000);
/** Calls per query and size. */
const CALLS = Number(process.env.BENCH_GROWTH_CALLS ?? 200);
/** Creation rate (jobs/s) and duration of each creation window in phase 2. */
const CREATE_RATE = Number(process.env.BENCH_GROWTH_CREATE_RATE ?? 100);
const CREATE_SECONDS = Number(process.env.BENCH_GROWTH_CREATE_S ?? 15);
const PURGE_BATCH = Number(process.env.BENCH_GROWTH_PURGE_BATCH ?? 1_000);

const ACCOUNT_A = "01BENCHACCOUNTAAAAAAAAAAAA";
const ACCOUNT_B = "01BENCHACCOUNTBBBBBBBBBBBB";
const KINDS = ["server.launch", "server.stop", "server.terminate", "diagnostic"];

const bench = await benchEnvironment("growth");
say(`bench:growth on ${CORES} cores — ${SMALL} then ${LARGE} rows per table; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
say("migrating a throwaway database");
await runDispatcher(["migrate"], bench.env);
const prisma = createProvisioningClient(bench.provisioningUrl, 2);
const { secret } = await createApiKeyForEmail(prisma, { email: "bench@local", role: "admin", kind: "service", name: "bench" });
const db = await openConnection(bench.provisioningUrl);

await db.query(`INSERT INTO clouds (id, name, driver, endpoint) VALUES ('01BENCHCLOUDCCCCCCCCCCCCCC', 'bench', 'local', '')`);
await db.query(`INSERT INTO accounts (id, name, cloud_id, credential_id, status) VALUES (?, 'a', '01BENCHCLOUDCCCCCCCCCCCCCC', 'none', 'ACTIVE'), (?, 'b', '01BENCHCLOUDCCCCCCCCCCCCCC', 'none', 'ACTIVE')`, [ACCOUNT_A, ACCOUNT_B]);

/** A 26-character id that sorts by n, like the service's own (time-ordered) ids. */
const idSql = (prefix: string, n: string): string => `CONCAT('${prefix}', LPAD(${n}, ${26 - prefix.length}, '0'))`;

/**
 * Grows jobs, job_events and servers from `from` to `to` rows. Jobs are spread over the 20 days before now (so none is
 * past the default 30 days' retention yet), mostly SUCCEEDED, some FAILED, over four kinds, 50 requesters and both
 * accounts' servers; one event per job.
 */
async function fill(from: number, to: number): Promise<number> {
  const started = Date.now();
  const chunk = 200_000;
  for (let lo = from + 1; lo <= to; lo += chunk) {
    const hi = Math.min(to, lo + chunk - 1);
    const seq = `seq_${lo}_to_${hi}`;
    await db.query(`INSERT INTO servers (id, account_id, region_id, data_center, provider_id, name, product_id, image_id, budget_code, state,
        addresses, details, hourly_price_micros, accrues_when_stopped, created_by, created_at, updated_at)
      SELECT ${idSql("S", "seq")}, IF(seq % 2 = 0, '${ACCOUNT_A}', '${ACCOUNT_B}'), 'local', 'local-a', CONCAT('p-', seq), CONCAT('s', seq), 'small', 'agent',
        'BENCH', IF(seq % 10 = 0, 'TERMINATED', 'RUNNING'), '{"private":[],"public":[]}', '{}', 1000, 0, 'bench', NOW(3), NOW(3) FROM ${seq}`);
    // created_at grows with seq (as ids do), over the 20 days that ended 40 days ago: every filled job is already past
    // the default 30 days' retention, which stays off until the purge phase (no million-row UPDATE to age them).
    const at = `NOW(3) - INTERVAL 60 DAY + INTERVAL FLOOR(seq * 1728000000 / ${LARGE}) MICROSECOND`;
    await db.query(`INSERT INTO jobs (id, kind, state, attempt, max_attempts, payload, requested_by, resource_type, resource_id, trace_id, created_at, updated_at, started_at, ended_at, published_at, publish_count)
      SELECT ${idSql("J", "seq")}, ELT(1 + seq % 4, ${KINDS.map((k) => `'${k}'`).join(", ")}), IF(seq % 50 = 0, 'FAILED', 'SUCCEEDED'), 1, 5, '{}',
        CONCAT('u-', seq % 50), 'server', ${idSql("S", `1 + (seq * 7919) % ${hi}`)}, LPAD(HEX(seq), 32, '0'), ${at}, ${at}, ${at}, ${at} + INTERVAL 1 SECOND, ${at}, 1 FROM ${seq}`);
    await db.query(`INSERT INTO job_events (job_id, sequence, type, from_state, to_state, attempt, actor, message, created_at)
      SELECT ${idSql("J", "seq")}, 1, 'created', NULL, 'QUEUED', 0, 'bench', 'created', NOW(3) FROM ${seq}`);
    say(`  filled ${hi.toLocaleString("en")} rows per table`);
  }
  await db.query("ANALYZE TABLE jobs, job_events, servers");
  const seconds = (Date.now() - started) / 1000;
  await settle();
  return seconds;
}

/**
 * Waits (up to two minutes) until InnoDB has written back what the fill dirtied, so that what follows measures the
 * service, not the database flushing a million fresh rows in the background.
 */
async function settle(): Promise<void> {
  const status = async (name: string): Promise<number> => Number(((await db.query("SHOW GLOBAL STATUS LIKE ?", [name])) as { Value: string }[])[0]?.Value ?? 0);
  const until = Date.now() + 120_000;
  for (;;) {
    const dirty = await status("Innodb_buffer_pool_pages_dirty");
    const total = await status("Innodb_buffer_pool_pages_total");
    if (dirty <= total * 0.01 || Date.now() > until) {
      say(`  settled: ${dirty} dirty pages of ${total}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

interface Query {
  name: string;
  call(c: DispatcherClients): Promise<unknown>;
}

/** The page token of the page that starts halfway through the jobs listed newest first. */
async function deepToken(c: DispatcherClients): Promise<string> {
  let token = "";
  for (let i = 0; i < 20; i++) token = (await c.jobs.listJobs({ pageSize: 50, pageToken: token })).nextPageToken;
  return token;
}

function queries(deep: string, eventJob: string): Query[] {
  return [
    { name: "ListJobs", call: (c) => c.jobs.listJobs({ pageSize: 50 }) },
    { name: "ListJobs page 21", call: (c) => c.jobs.listJobs({ pageSize: 50, pageToken: deep }) },
    { name: "ListJobs state=FAILED", call: (c) => c.jobs.listJobs({ pageSize: 50, state: JobState.JOB_STATE_FAILED }) },
    { name: "ListJobs kind", call: (c) => c.jobs.listJobs({ pageSize: 50, kind: "server.stop" }) },
    { name: "ListJobs requested_by", call: (c) => c.jobs.listJobs({ pageSize: 50, requestedBy: "u-7" }) },
    { name: "ListJobs account", call: (c) => c.jobs.listJobs({ pageSize: 50, accountId: ACCOUNT_A }) },
    { name: "ListJobEvents", call: (c) => c.jobs.listJobEvents({ id: eventJob }) },
    { name: "ListServers account", call: (c) => c.servers.listServers({ pageSize: 50, accountId: ACCOUNT_A }) },
    { name: "ListServers state", call: (c) => c.servers.listServers({ pageSize: 50, state: ServerState.SERVER_STATE_RUNNING }) },
  ];
}

async function measure(c: DispatcherClients, rows: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const deep = await deepToken(c);
  const eventJob = `J${String(Math.ceil(rows / 2)).padStart(25, "0")}`;
  for (const q of queries(deep, eventJob)) {
    for (let i = 0; i < 10; i++) await q.call(c);
    const times: number[] = [];
    for (let i = 0; i < CALLS; i++) {
      const t = performance.now();
      await q.call(c);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    out[q.name] = round(percentile(times, 99), 2);
    say(`  ${q.name.padEnd(24)} p50 ${round(percentile(times, 50), 2)} ms, p99 ${out[q.name]} ms`);
  }
  return out;
}

/**
 * Creates diagnostic jobs at CREATE_RATE for CREATE_SECONDS, after two seconds of the same that are not counted (a
 * process just started warms up); the creation RPCs' latencies, sorted.
 */
async function createAtRate(c: DispatcherClients): Promise<number[]> {
  await Promise.all(Array.from({ length: CREATE_RATE * 2 }, (_, i) => new Promise((r) => setTimeout(r, (i * 1000) / CREATE_RATE)).then(() => c.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED }))));
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  const started = performance.now();
  const total = CREATE_RATE * CREATE_SECONDS;
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / CREATE_RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const t = performance.now();
    pending.push(c.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED }).then(() => void latencies.push(performance.now() - t)));
  }
  await Promise.all(pending);
  return latencies.sort((a, b) => a - b);
}

async function withServer<T>(env: NodeJS.ProcessEnv, run: (c: DispatcherClients) => Promise<T>): Promise<T> {
  const server: ChildProcess = await startDispatcher("dispatcher,worker,monitor", env, bench.port);
  const clients = createDispatcherClients({ address: `127.0.0.1:${bench.port}`, token: secret, retry: false });
  try {
    return await run(clients);
  } finally {
    clients.close();
    await stopProcess(server);
  }
}

const countJobs = async (): Promise<number> => Number(((await db.query("SELECT COUNT(*) AS n FROM jobs")) as { n: bigint }[])[0]?.n ?? 0);

try {
  // Retention off while the tables grow: the monitor must not purge what the list phase measures.
  const listEnv = { ...bench.env, DISPATCHER_JOBS_RETENTION_DAYS: "0" };
  say(`filling ${SMALL.toLocaleString("en")} rows per table`);
  await fill(0, SMALL);
  say(`listing at ${SMALL.toLocaleString("en")} rows (${CALLS} calls per query, one at a time)`);
  const small = await withServer(listEnv, (c) => measure(c, SMALL));
  say(`growing to ${LARGE.toLocaleString("en")} rows per table`);
  const fillSeconds = await fill(SMALL, LARGE);
  say(`  in ${round(fillSeconds)} s`);
  say(`listing at ${LARGE.toLocaleString("en")} rows`);
  const large = await withServer(listEnv, (c) => measure(c, LARGE));
  const ratios = Object.fromEntries(Object.keys(small).map((k) => [k, round((large[k] ?? 0) / Math.max(small[k] ?? 0, 0.01), 2)]));
  const worst = Math.max(...Object.values(ratios));
  say(`p99 ratio ${LARGE.toLocaleString("en")} / ${SMALL.toLocaleString("en")} rows: worst ${worst} (${Object.entries(ratios).map(([k, v]) => `${k} ${v}`).join(", ")})`);

  say(`creating ${CREATE_RATE} jobs/s for ${CREATE_SECONDS} s with retention off (quiet)`);
  const quiet = await withServer(listEnv, createAtRate);
  // Every filled job ended 40 to 60 days ago: let a monitor purge them while jobs are being created.
  const before = await countJobs();
  say(`creating ${CREATE_RATE} jobs/s for ${CREATE_SECONDS} s while the monitor purges ${before.toLocaleString("en")} aged jobs (batch ${PURGE_BATCH})`);
  const purgeEnv = { ...bench.env, DISPATCHER_JOBS_RETENTION_DAYS: "30", DISPATCHER_JOBS_PURGE_BATCH: String(PURGE_BATCH), DISPATCHER_JOBS_PURGE_INTERVAL_MS: "1000" };
  const ticks0 = machineTicks();
  const { during, purgedPerSecond } = await withServer(purgeEnv, async (c) => {
    const t0 = Date.now();
    const n0 = await countJobs();
    const during = await createAtRate(c);
    const purged = n0 - (await countJobs()) + during.length;
    return { during, purgedPerSecond: round(purged / ((Date.now() - t0) / 1000)) };
  });
  const ticks1 = machineTicks();
  const busy = round((100 * (ticks1.busy - ticks0.busy)) / Math.max(1, ticks1.total - ticks0.total));
  const quietP99 = round(percentile(quiet, 99), 2);
  const duringP99 = round(percentile(during, 99), 2);
  say(`create p99: quiet ${quietP99} ms, while purging ${duringP99} ms (ratio ${round(duringP99 / quietP99, 2)}); purged ${purgedPerSecond} jobs/s; machine ${busy} % busy`);
  const figures = {
    bench: "growth",
    cores: CORES,
    load_avg_1m: round(loadavg()[0] ?? 0, 2),
    rows_small: SMALL,
    rows_large: LARGE,
    fill_large_s: round(fillSeconds),
    list_p99_small_ms: small,
    list_p99_large_ms: large,
    list_p99_worst_ratio: worst,
    create_rate: CREATE_RATE,
    create_p99_quiet_ms: quietP99,
    create_p99_purging_ms: duringP99,
    create_p99_ratio: round(duringP99 / quietP99, 2),
    purged_jobs_per_s: purgedPerSecond,
    machine_busy_pct: busy,
  };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} finally {
  await db.end();
  await prisma.$disconnect();
  await bench.drop();
}
