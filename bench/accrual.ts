// `npm run bench:accrual`: what one cost-accrual run costs a fleet with a long history. Fills a throwaway database with
// BENCH_SERVERS running servers, each with BENCH_DAYS days of history (started every morning, stopped every evening:
// two state changes a day, written in time order as the service writes them), then times BENCH_RUNS accrual runs of the
// monitor's steady range (the hour before the current one, to the last whole minute) from one connection: wall time,
// MariaDB's CPU, and the rows and index entries the run read (that connection's handler counters).
// Options: BENCH_SERVERS (default 2,000), BENCH_DAYS (default 365), BENCH_RUNS (default 5).
import { loadavg } from "node:os";
import { accrueRange } from "../src/analytics/accrual.js";
import { createAnalyticsSql } from "../src/analytics/db.js";
import { loadConfig } from "../src/config.js";
import { openConnection } from "../src/db/connect.js";
import { createSqlPool, type Sql } from "../src/db/sql.js";
import { benchEnvironment, CORES, cpuSeconds, percentile, round, runDispatcher, say, servicePids } from "./support.js";

const SERVERS = Number(process.env.BENCH_SERVERS ?? 2_000);
const DAYS = Number(process.env.BENCH_DAYS ?? 365);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const HOUR = 3_600_000;
const ACCOUNT = "01BENCHACCOUNTAAAAAAAAAAAA";

const mariadb = servicePids(Number(new URL(loadConfig(process.env, "").mq.url).port || 4222)).mariadb;
if (!mariadb) throw new Error("no mariadbd process found: the bench reads its CPU time from /proc");
const bench = await benchEnvironment("accrual");
await runDispatcher(["migrate"], bench.env).catch(async (err: unknown) => {
  await bench.drop();
  throw err;
});
const db = await openConnection(bench.provisioningUrl);
const one = createSqlPool(bench.provisioningUrl, 1);
const analytics = createAnalyticsSql(bench.env.DISPATCHER_ANALYTICS_URL ?? "", 2);

try {
  say(`bench:accrual on ${CORES} cores: ${SERVERS} running servers with ${DAYS} days of history (${2 * DAYS} state changes each)`);
  const fillStarted = Date.now();
  await db.query(`INSERT INTO clouds (id, name, driver, endpoint) VALUES ('01BENCHCLOUDCCCCCCCCCCCCCC', 'bench', 'local', '')`);
  await db.query(`INSERT INTO accounts (id, name, cloud_id, credential_id, status) VALUES ('${ACCOUNT}', 'a', '01BENCHCLOUDCCCCCCCCCCCCCC', 'none', 'ACTIVE')`);
  // Day d of the history starts DAYS - d days before today's midnight; every server started at 08:00 and stopped at
  // 20:00 of each day, and was started again this morning (more than three hours before the run's range).
  const midnight = Math.floor(Date.now() / (24 * HOUR)) * 24 * HOUR;
  const morning = Math.min(midnight + 8 * HOUR, Date.now() - 4 * HOUR);
  const created = new Date(midnight - (DAYS + 1) * 24 * HOUR);
  await db.query(
    `INSERT INTO servers (id, account_id, region_id, data_center, provider_id, name, product_id, image_id, budget_code, state,
        addresses, details, hourly_price_micros, accrues_when_stopped, state_changed_at, created_by, created_at, updated_at)
      SELECT CONCAT('S', LPAD(seq, 25, '0')), '${ACCOUNT}', 'local', 'local-a', CONCAT('p-', seq), CONCAT('s', seq), 'small', 'img',
        'BENCH', 'RUNNING', '{"private":[],"public":[]}', '{}', 120000, 0, ?, 'bench', ?, ? FROM seq_1_to_${SERVERS}`,
    [new Date(morning), created, created],
  );
  // One day of every server at a time, in time order, so event ids grow with time as in service.
  for (let d = 0; d < DAYS; d++) {
    const day = midnight - (DAYS - d) * 24 * HOUR;
    await db.query(
      `INSERT INTO server_events (server_id, type, from_state, to_state, message, created_at)
        SELECT CONCAT('S', LPAD(s.seq, 25, '0')), 'STATE_CHANGED', IF(c.seq = 1, 'STOPPED', 'RUNNING'), IF(c.seq = 1, 'RUNNING', 'STOPPED'), 'change',
               IF(c.seq = 1, ?, ?) FROM seq_1_to_${SERVERS} s JOIN seq_1_to_2 c ORDER BY c.seq, s.seq`,
      [new Date(day + 8 * HOUR), new Date(day + 20 * HOUR)],
    );
    if ((d + 1) % 50 === 0) say(`  filled ${d + 1} of ${DAYS} days`);
  }
  await db.query(
    `INSERT INTO server_events (server_id, type, from_state, to_state, message, created_at)
      SELECT CONCAT('S', LPAD(seq, 25, '0')), 'STATE_CHANGED', 'STOPPED', 'RUNNING', 'change', ? FROM seq_1_to_${SERVERS}`,
    [new Date(morning)],
  );
  await db.query("ANALYZE TABLE servers, server_events");
  const fillS = (Date.now() - fillStarted) / 1000;
  say(`filled ${(SERVERS * (2 * DAYS + 1)).toLocaleString("en-US")} server events in ${round(fillS)} s`);

  const reads = async (sql: Sql): Promise<number> =>
    (await sql.query<{ Value: string }>`SHOW SESSION STATUS WHERE Variable_name IN ('Handler_read_key', 'Handler_read_next', 'Handler_read_prev', 'Handler_read_rnd_next')`).reduce(
      (n, r) => n + Number(r.Value),
      0,
    );
  const wall: number[] = [];
  const dbCpu: number[] = [];
  const ownCpu: number[] = [];
  let read = 0;
  for (let i = 0; i < RUNS; i++) {
    const now = Date.now();
    const to = new Date(Math.floor(now / 60_000) * 60_000);
    const from = new Date(Math.floor(now / HOUR) * HOUR - HOUR);
    const a = await reads(one);
    const b = await reads(one);
    const cpu0 = cpuSeconds(mariadb);
    const own0 = process.cpuUsage();
    const t0 = performance.now();
    await accrueRange(one, analytics, from, to);
    wall.push(performance.now() - t0);
    const own = process.cpuUsage(own0);
    ownCpu.push((own.user + own.system) / 1000);
    dbCpu.push((cpuSeconds(mariadb) - cpu0) * 1000);
    read = (await reads(one)) - b - (b - a);
    say(`  run ${i + 1}: ${round(wall.at(-1) ?? 0)} ms, MariaDB ${round(dbCpu.at(-1) ?? 0)} ms CPU, this process ${round(ownCpu.at(-1) ?? 0)} ms; ${read.toLocaleString("en-US")} rows and index entries read`);
  }
  const median = (xs: number[]): number => percentile([...xs].sort((x, y) => x - y), 50);
  const line = {
    bench: "accrual",
    cores: CORES,
    load_avg_1m: round(loadavg()[0] ?? 0, 2),
    servers: SERVERS,
    days: DAYS,
    events: SERVERS * (2 * DAYS + 1),
    fill_s: round(fillS),
    runs: RUNS,
    run_ms_median: round(median(wall)),
    run_ms: wall.map((x) => round(x)),
    mariadb_cpu_ms_median: round(median(dbCpu)),
    bench_cpu_ms_median: round(median(ownCpu)),
    rows_read_per_run: read,
    rows_read_per_server: round(read / SERVERS, 2),
    accrual_rows: Number((await analytics.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM cost_accruals`)[0]?.n ?? 0),
  };
  say(`per run (median of ${RUNS}): ${line.run_ms_median} ms, MariaDB ${line.mariadb_cpu_ms_median} ms of CPU; ${line.rows_read_per_server} rows read per server`);
  console.log(JSON.stringify(line));
} finally {
  // The throwaway databases go even when a step fails.
  await Promise.allSettled([one.end(), analytics.end(), db.end()]);
  await bench.drop();
}
