// npm run bench:growth — how the provisioning database's size shows in list latency, and what purging it costs.
// Phase 1 fills the jobs, job_events and servers tables with BENCH_GROWTH_SMALL rows each (default 10,000), measures
// the p99 of ListJobs (several filters and a deep page), ListJobEvents and ListServers through a running dispatcher
// (a warm-up of each query, then BENCH_GROWTH_CALLS calls of each, one at a time with the queries taking turns, and
// the InnoDB pages and rows each call reads), then grows the tables to BENCH_GROWTH_LARGE rows (default 1,000,000) and measures again. Phase 2, in the same
// warm dispatcher process: job creation at a fixed rate for a window with nothing else running (quiet), then for a
// window of the same length and rate while a monitor process purges the filled jobs (all past retention).
// Prints a summary and one JSON line. Rows are written by the database itself (INSERT … SELECT over MariaDB's
// sequence engine), so filling a million rows takes seconds, not the job path's hours.
import type { ChildProcess } from "node:child_process";
import { loadavg } from "node:os";
import { writeFileSync } from "node:fs";
import { createDispatcherClients, type DispatcherClients } from "../src/client/index.js";
import { openConnection } from "../src/db/connect.js";
import { createProvisioningClient } from "../src/db/clients.js";
import { createSqlPool, type SqlFragment } from "../src/db/sql.js";
import { listEventsStatement } from "../src/jobs/events.js";
import { listJobsStatement, type JobCursor, type JobFilter } from "../src/jobs/repository.js";
import { listServersStatement } from "../src/servers/repository.js";
import { createApiKeyForEmail } from "../src/iam/api-keys/keys.js";
import { DiagnosticOutcome, JobState } from "../src/gen/proto/dispatcher/v1/jobs.js";
import { ServerState } from "../src/gen/proto/dispatcher/v1/servers.js";
import { benchEnvironment, CORES, machineTicks, percentile, round, runDispatcher, say, startDispatcher, stopProcess } from "./support.js";

const SMALL = Number(process.env.BENCH_GROWTH_SMALL ?? 10_000);
const LARGE = Number(process.env.BENCH_GROWTH_LARGE ?? 1_000_000);
/** Calls per query and size (a p99 of 1,000 calls is its 10th slowest), and the uncounted warm-up calls before them. */
const CALLS = Number(process.env.BENCH_GROWTH_CALLS ?? 1_000);
const WARM_CALLS = Number(process.env.BENCH_GROWTH_WARM_CALLS ?? 100);
/** Creation rate (jobs/s) and duration of each creation window in phase 2. */
const CREATE_RATE = Number(process.env.BENCH_GROWTH_CREATE_RATE ?? 100);
const CREATE_SECONDS = Number(process.env.BENCH_GROWTH_CREATE_S ?? 60);
/** Uncounted creation before the quiet window, at the same rate. */
const CREATE_WARM_SECONDS = Number(process.env.BENCH_GROWTH_CREATE_WARM_S ?? 10);
/** BENCH_GROWTH_TRACE=<file>: every creation call of both windows as "<epoch ms when sent> <latency ms>" lines. */
const TRACE_FILE = process.env.BENCH_GROWTH_TRACE;
const trace: string[] = [];
const PURGE_BATCH = Number(process.env.BENCH_GROWTH_PURGE_BATCH ?? 200);
/** Seconds between the purge's first batch and the window (the purging monitor's start-up passes end in them). */
const PURGE_SETTLE_S = Number(process.env.BENCH_GROWTH_PURGE_SETTLE_S ?? 15);
/** BENCH_GROWTH_LISTS=0 fills the tables and runs phase 2 alone. */
const LISTS = process.env.BENCH_GROWTH_LISTS !== "0";

const ACCOUNT_A = "01BENCHACCOUNTAAAAAAAAAAAA";
const ACCOUNT_B = "01BENCHACCOUNTBBBBBBBBBBBB";
/**
 * A small account: one server in a hundred among the first 10,000 and one in a thousand after them (a hundred among
 * 10,000, 1,090 among a million), so that its first page is a full one at both sizes and the two p99s compare the same
 * work.
 */
const ACCOUNT_C = "01BENCHACCOUNTCCCCCCCCCCCC";
const KINDS = ["server.launch", "server.stop", "server.terminate", "diagnostic"];

const bench = await benchEnvironment("growth");
say(`bench:growth on ${CORES} cores — ${SMALL} then ${LARGE} rows per table; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
say("migrating a throwaway database");
await runDispatcher(["migrate"], bench.env);
const prisma = createProvisioningClient(bench.provisioningUrl, 2);
const { secret } = await createApiKeyForEmail(prisma, { email: "bench@local", role: "admin", kind: "service", name: "bench" });
const db = await openConnection(bench.provisioningUrl);
const sql = createSqlPool(bench.provisioningUrl, 1);

await db.query(`INSERT INTO clouds (id, name, driver, endpoint) VALUES ('01BENCHCLOUDCCCCCCCCCCCCCC', 'bench', 'local', '')`);
await db.query(`INSERT INTO accounts (id, name, cloud_id, credential_id, status) VALUES (?, 'a', '01BENCHCLOUDCCCCCCCCCCCCCC', 'none', 'ACTIVE'), (?, 'b', '01BENCHCLOUDCCCCCCCCCCCCCC', 'none', 'ACTIVE'), (?, 'c', '01BENCHCLOUDCCCCCCCCCCCCCC', 'none', 'ACTIVE')`, [ACCOUNT_A, ACCOUNT_B, ACCOUNT_C]);

/** The account of server n. */
const accountSql = (n: string): string =>
  `IF(${n} % 1000 = 0 OR (${n} <= 10000 AND ${n} % 100 = 0), '${ACCOUNT_C}', IF(${n} % 2 = 0, '${ACCOUNT_A}', '${ACCOUNT_B}'))`;

/**
 * A 26-character id that sorts by n, like the service's own (time-ordered) ids. Jobs take the prefix "00J", which
 * sorts before every id the service makes now ("01…"), as an old job's id does: a purge then works at the low end of
 * the indexes on ids while new jobs go in at the high end, as in service.
 */
const JOB_PREFIX = "00J";
const idSql = (prefix: string, n: string): string => `CONCAT('${prefix}', LPAD(${n}, ${26 - prefix.length}, '0'))`;

/**
 * Grows jobs, job_events and servers from `from` to `to` rows. Jobs are spread over the 20 days that ended 40 days ago
 * (all past the default 30 days' retention, which stays off until the purge phase), mostly SUCCEEDED, some FAILED, over four kinds, 50 requesters and the
 * servers of three accounts (two halves and a small one: see ACCOUNT_C); one event per job.
 */
async function fill(from: number, to: number): Promise<number> {
  const started = Date.now();
  const chunk = 200_000;
  for (let lo = from + 1; lo <= to; lo += chunk) {
    const hi = Math.min(to, lo + chunk - 1);
    const seq = `seq_${lo}_to_${hi}`;
    // Created a year ahead: the monitor's cost accrual prices every server created before now each minute, a million
    // of them in every monitor process, which would load the windows of phase 2 with work that is not the purge's.
    await db.query(`INSERT INTO servers (id, account_id, region_id, data_center, provider_id, name, product_id, image_id, budget_code, state,
        addresses, details, hourly_price_micros, accrues_when_stopped, created_by, created_at, updated_at)
      SELECT ${idSql("S", "seq")}, ${accountSql("seq")}, 'local', 'local-a', CONCAT('p-', seq), CONCAT('s', seq), 'small', 'agent',
        'BENCH', IF(seq % 10 = 0, 'TERMINATED', 'RUNNING'), '{"private":[],"public":[]}', '{}', 1000, 0, 'bench', NOW(3) + INTERVAL 1 YEAR, NOW(3) FROM ${seq}`);
    // created_at grows with seq (as ids do), over the 20 days that ended 40 days ago: every filled job is already past
    // the default 30 days' retention, which stays off until the purge phase (no million-row UPDATE to age them).
    const at = `NOW(3) - INTERVAL 60 DAY + INTERVAL FLOOR(seq * 1728000000 / ${LARGE}) MICROSECOND`;
    // Each job is on one server and carries that server's account, as the service writes it (ListJobs by account).
    const server = `(1 + (seq * 7919) % ${hi})`;
    await db.query(`INSERT INTO jobs (id, kind, state, attempt, max_attempts, payload, requested_by, resource_type, resource_id, account_id, trace_id, created_at, updated_at, started_at, ended_at, published_at, publish_count)
      SELECT ${idSql(JOB_PREFIX, "seq")}, ELT(1 + seq % 4, ${KINDS.map((k) => `'${k}'`).join(", ")}), IF(seq % 50 = 0, 'FAILED', 'SUCCEEDED'), 1, 5, '{}',
        CONCAT('u-', seq % 50), 'server', ${idSql("S", server)}, ${accountSql(server)}, LPAD(HEX(seq), 32, '0'), ${at}, ${at}, ${at}, ${at} + INTERVAL 1 SECOND, ${at}, 1 FROM ${seq}`);
    await db.query(`INSERT INTO job_events (job_id, sequence, type, from_state, to_state, attempt, actor, message, created_at)
      SELECT ${idSql(JOB_PREFIX, "seq")}, 1, 'created', NULL, 'QUEUED', 0, 'bench', 'created', NOW(3) FROM ${seq}`);
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
  /** The statement the call's page comes from, to read its cost with ANALYZE. */
  statement: SqlFragment;
}

/** The page token of the page that starts halfway through the jobs listed newest first. */
async function deepToken(c: DispatcherClients): Promise<string> {
  let token = "";
  for (let i = 0; i < 20; i++) token = (await c.jobs.listJobs({ pageSize: 50, pageToken: token })).nextPageToken;
  return token;
}

/** The position the 21st page of 50 starts after (what deepToken's token holds). */
async function deepCursor(): Promise<JobCursor> {
  const [row] = await sql.query<{ createdAt: Date; id: string }>`SELECT created_at AS createdAt, id FROM jobs ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET 999`;
  if (!row) throw new Error("fewer than 1,000 jobs");
  return row;
}

function queries(deep: string, cursor: JobCursor, eventJob: string): Query[] {
  const jobs = (name: string, filter: JobFilter, after: JobCursor | null = null): Query => ({
    name,
    call: (c) => c.jobs.listJobs({ pageSize: 50, ...filter, state: filter.state === "FAILED" ? JobState.JOB_STATE_FAILED : undefined }),
    statement: listJobsStatement(filter, after, 50),
  });
  return [
    jobs("ListJobs", {}),
    { ...jobs("ListJobs page 21", {}, cursor), call: (c) => c.jobs.listJobs({ pageSize: 50, pageToken: deep }) },
    jobs("ListJobs state=FAILED", { state: "FAILED" }),
    jobs("ListJobs kind", { kind: "server.stop" }),
    jobs("ListJobs requested_by", { requestedBy: "u-7" }),
    jobs("ListJobs account", { accountId: ACCOUNT_A }),
    { name: "ListJobEvents", call: (c) => c.jobs.listJobEvents({ id: eventJob }), statement: listEventsStatement(eventJob) },
    { name: "ListServers account", call: (c) => c.servers.listServers({ pageSize: 50, accountId: ACCOUNT_A }), statement: listServersStatement({ accountId: ACCOUNT_A, limit: 51 }) },
    { name: "ListServers small account", call: (c) => c.servers.listServers({ pageSize: 50, accountId: ACCOUNT_C }), statement: listServersStatement({ accountId: ACCOUNT_C, limit: 51 }) },
    { name: "ListServers state", call: (c) => c.servers.listServers({ pageSize: 50, state: ServerState.SERVER_STATE_RUNNING }), statement: listServersStatement({ state: "RUNNING", limit: 51 }) },
  ];
}

/**
 * What a query's statement costs InnoDB, from ANALYZE FORMAT=JSON on this connection alone (other work on the server
 * does not count): rows read and pages touched over every table, and the pages that had to come from disk.
 */
interface PageCost {
  rows: number;
  pages: number;
  disk_pages: number;
}

async function statementCost(statement: SqlFragment): Promise<PageCost> {
  const [row] = await sql.query<{ ANALYZE: string }>`ANALYZE FORMAT=JSON ${statement}`;
  const cost: PageCost = { rows: 0, pages: 0, disk_pages: 0 };
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (!node || typeof node !== "object") return;
    const o = node as Record<string, unknown>;
    if (typeof o.table_name === "string") {
      const engine = (o.r_engine_stats ?? {}) as { pages_accessed?: number; pages_read_count?: number };
      cost.rows += Number(o.r_rows ?? 0) * Number(o.r_loops ?? 1);
      cost.pages += engine.pages_accessed ?? 0;
      cost.disk_pages += engine.pages_read_count ?? 0;
    }
    Object.values(o).forEach(walk);
  };
  walk(JSON.parse(row?.ANALYZE ?? "{}"));
  return { rows: round(cost.rows, 0), pages: cost.pages, disk_pages: cost.disk_pages };
}

interface Measured {
  /** The 1-minute load average when the queries started. */
  load?: number;
  p50: Record<string, number>;
  p99: Record<string, number>;
  cost: Record<string, PageCost>;
}

async function measure(c: DispatcherClients, rows: number): Promise<Measured> {
  const out: Measured = { p50: {}, p99: {}, cost: {} };
  if (!LISTS) return out;
  out.load = round(loadavg()[0] ?? 0, 2);
  const deep = await deepToken(c);
  const eventJob = `${JOB_PREFIX}${String(Math.ceil(rows / 2)).padStart(26 - JOB_PREFIX.length, "0")}`;
  const all = queries(deep, await deepCursor(), eventJob);
  say(`  load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  // One pass over every query first, so that no query pays for loading code paths another one shares.
  for (const q of all) await q.call(c);
  for (let i = 0; i < WARM_CALLS; i++) for (const q of all) await q.call(c);
  // The queries take turns, one call each, so that a burst of other work on the machine lands on all of them alike
  // instead of on whichever query was being measured at the time.
  const times = new Map(all.map((q) => [q.name, [] as number[]]));
  for (let i = 0; i < CALLS; i++) {
    for (const q of all) {
      const t = performance.now();
      await q.call(c);
      times.get(q.name)?.push(performance.now() - t);
    }
  }
  for (const q of all) {
    const sorted = (times.get(q.name) ?? []).sort((a, b) => a - b);
    out.p50[q.name] = round(percentile(sorted, 50), 2);
    out.p99[q.name] = round(percentile(sorted, 99), 2);
    const cost = await statementCost(q.statement);
    out.cost[q.name] = cost;
    say(`  ${q.name.padEnd(24)} p50 ${out.p50[q.name]} ms, p99 ${out.p99[q.name]} ms; its statement reads ${cost.rows} rows, touches ${cost.pages} pages (${cost.disk_pages} from disk)`);
  }
  return out;
}

/** Creates diagnostic jobs at CREATE_RATE for `seconds`, one call at its due time each; the calls' latencies, sorted. */
async function createAtRate(c: DispatcherClients, seconds: number): Promise<number[]> {
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  const started = performance.now();
  const total = CREATE_RATE * seconds;
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / CREATE_RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const t = performance.now();
    const sent = Date.now();
    pending.push(
      c.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED }).then(() => {
        const ms = performance.now() - t;
        latencies.push(ms);
        if (TRACE_FILE) trace.push(`${sent} ${ms.toFixed(2)}`);
      }),
    );
  }
  await Promise.all(pending);
  return latencies.sort((a, b) => a - b);
}

/**
 * Filled jobs purged so far. Retention takes them oldest first and their ids follow their age, so the first one left
 * tells how many went — one short index read, where a COUNT(*) would scan the table while it is being measured.
 */
async function purgedSoFar(): Promise<number> {
  const [row] = (await db.query("SELECT id FROM jobs WHERE id >= ? AND id < ? ORDER BY id LIMIT 1", [JOB_PREFIX, "00K"])) as { id: string }[];
  return row ? Number(row.id.slice(JOB_PREFIX.length)) - 1 : LARGE;
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

try {
  // Retention off while the tables grow: the monitor must not purge what the list phase measures.
  const listEnv = { ...bench.env, DISPATCHER_JOBS_RETENTION_DAYS: "0" };
  say(`filling ${SMALL.toLocaleString("en")} rows per table`);
  await fill(0, SMALL);
  say(`listing at ${SMALL.toLocaleString("en")} rows (${WARM_CALLS} warm-up and ${CALLS} measured calls per query, one at a time)`);
  const small = LISTS ? await withServer(listEnv, (c) => measure(c, SMALL)) : { p50: {}, p99: {}, cost: {} };
  say(`growing to ${LARGE.toLocaleString("en")} rows per table`);
  const fillSeconds = await fill(SMALL, LARGE);
  say(`  in ${round(fillSeconds)} s`);
  // Every filled job ended 40 to 60 days ago: a second process, a monitor with 30 days' retention, purges them.
  // The purging monitor is a second monitor only because retention must stay off while the lists are measured: its
  // other periodic work (cost accrual and budget usage, which read every server — a million here — and roll-ups) runs
  // at start and then once an hour, so that the window compares the purge with the quiet run, not a second monitor's
  // accruals against none (the dispatcher process's own monitor accrues in both windows).
  const purgeEnv = {
    ...bench.env,
    DISPATCHER_JOBS_RETENTION_DAYS: "30",
    DISPATCHER_JOBS_PURGE_BATCH: String(PURGE_BATCH),
    DISPATCHER_JOBS_PURGE_INTERVAL_MS: "1000",
    DISPATCHER_ANALYTICS_ACCRUAL_INTERVAL_MS: "3600000",
    DISPATCHER_ANALYTICS_ROLLUP_INTERVAL_MS: "3600000",
  };
  /** The machine's busy share over `run`, in percent. */
  const busyOver = async <T>(run: () => Promise<T>): Promise<[T, number]> => {
    const t0 = machineTicks();
    const out = await run();
    const t1 = machineTicks();
    return [out, round((100 * (t1.busy - t0.busy)) / Math.max(1, t1.total - t0.total))];
  };
  const { large, quiet, quietBusy, during, busy, purged } = await withServer(listEnv, async (c) => {
    say(`listing at ${LARGE.toLocaleString("en")} rows`);
    const large = await measure(c, LARGE);
    // The same process, warm from the listing, creates in both windows; nothing but the purge differs between them.
    say(`creating ${CREATE_RATE} jobs/s: ${CREATE_WARM_SECONDS} s of warm-up, then ${CREATE_SECONDS} s with nothing else running (quiet)`);
    await createAtRate(c, CREATE_WARM_SECONDS);
    const [quiet, quietBusy] = await busyOver(() => createAtRate(c, CREATE_SECONDS));
    say(`starting a monitor with 30 days' retention (batch ${PURGE_BATCH}) over ${LARGE.toLocaleString("en")} aged jobs`);
    const monitor = await startDispatcher("monitor", purgeEnv, bench.port);
    try {
      for (const until = Date.now() + 120_000; (await purgedSoFar()) === 0 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 200));
      // Its start-up passes of those loops (a few seconds over a million servers) end before the window opens.
      say(`  purging; waiting ${PURGE_SETTLE_S} s for the monitor's start-up passes`);
      await new Promise((r) => setTimeout(r, PURGE_SETTLE_S * 1000));
      say(`creating ${CREATE_RATE} jobs/s for ${CREATE_SECONDS} s while it purges`);
      const n0 = await purgedSoFar();
      const t0 = performance.now();
      const [during, busy] = await busyOver(() => createAtRate(c, CREATE_SECONDS));
      const n1 = await purgedSoFar();
      return { large, quiet, quietBusy, during, busy, purged: { jobs: n1 - n0, seconds: (performance.now() - t0) / 1000, before: n0, after: n1 } };
    } finally {
      await stopProcess(monitor);
    }
  });
  const p99Large = large.p99;
  const p99Small = small.p99;
  const ratios = Object.fromEntries(Object.keys(p99Small).map((k) => [k, round((p99Large[k] ?? 0) / Math.max(p99Small[k] ?? 0, 0.01), 2)]));
  const worst = LISTS ? Math.max(...Object.values(ratios)) : null;
  say(`p99 ratio ${LARGE.toLocaleString("en")} / ${SMALL.toLocaleString("en")} rows: worst ${worst} (${Object.entries(ratios).map(([k, v]) => `${k} ${v}`).join(", ")})`);
  const purgedPerSecond = round(purged.jobs / purged.seconds);
  const stillPurging = purged.after < LARGE;
  const quietP99 = round(percentile(quiet, 99), 2);
  const duringP99 = round(percentile(during, 99), 2);
  say(`create p99: quiet ${quietP99} ms, while purging ${duringP99} ms (ratio ${round(duringP99 / quietP99, 2)}); p50 ${round(percentile(quiet, 50), 2)} / ${round(percentile(during, 50), 2)} ms`);
  say(`purged ${purged.jobs.toLocaleString("en")} jobs in the window (${purgedPerSecond} jobs/s; ${purged.after.toLocaleString("en")} of ${LARGE.toLocaleString("en")} by its end${stillPurging ? ", still purging" : ""}); machine ${quietBusy} % busy in the quiet window, ${busy} % while purging`);
  const figures = {
    bench: "growth",
    cores: CORES,
    load_avg_1m: round(loadavg()[0] ?? 0, 2),
    rows_small: SMALL,
    rows_large: LARGE,
    fill_large_s: round(fillSeconds),
    calls_per_query: CALLS,
    list_load_avg_small: small.load ?? null,
    list_load_avg_large: large.load ?? null,
    list_p99_small_ms: p99Small,
    list_p99_large_ms: p99Large,
    list_p99_ratio: ratios,
    list_p99_worst_ratio: worst,
    list_p50_small_ms: small.p50,
    list_p50_large_ms: large.p50,
    list_cost_small: small.cost,
    list_cost_large: large.cost,
    create_rate: CREATE_RATE,
    create_window_s: CREATE_SECONDS,
    create_p99_quiet_ms: quietP99,
    create_p99_purging_ms: duringP99,
    create_p99_ratio: round(duringP99 / quietP99, 2),
    purged_jobs_per_s: purgedPerSecond,
    purged_in_window: purged.jobs,
    purging_throughout: stillPurging,
    machine_busy_pct_quiet: quietBusy,
    machine_busy_pct: busy,
  };
  process.stdout.write(`${JSON.stringify(figures)}\n`);
  if (TRACE_FILE) writeFileSync(TRACE_FILE, `${trace.join("\n")}\n`);
} finally {
  await db.end();
  await sql.end();
  await prisma.$disconnect();
  await bench.drop();
}
