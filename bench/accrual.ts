// `npm run bench:accrual`: what one cost-accrual run costs a fleet with a long history. Fills a throwaway database with
// BENCH_SERVERS running servers, each with BENCH_DAYS days of history (started every morning, stopped every evening:
// two state changes a day, written in time order as the service writes them), then times BENCH_RUNS accrual runs of the
// monitor's steady range (the hour before the current one, to the last whole minute) from one connection: wall time,
// MariaDB's CPU, and the rows and index entries the run read (that connection's handler counters). Then a month's cost
// on its last day: every server's hourly accrual rows of BENCH_MONTH_DAYS days over 20 budget codes and 10 accounts,
// summed from every server's hours (as before cost_hours) against monthCost (final hours per account and code), by
// budget code (budget usage, each accrual interval) and for one account (the fleet summary, each call); and ReportUsage's
// month from every server's hours against usageSums (whole days from cost_days, the open day's hours), by code for every
// account and by server for one. Last, hours past their retention (analytics.hourlyRetentionDays,
// src/analytics/retention.ts) deleted flat out, as the monitor's passes do before their rests: the month's accrual hours
// summed into days (and the report after it), then a week of every server's hourly metric roll-ups.
// Options: BENCH_SERVERS (default 2,000), BENCH_DAYS (default 365), BENCH_RUNS (default 5), BENCH_MONTH_DAYS (≤ 30, 30).
import { loadavg } from "node:os";
import { ACCRUAL_TASK, accrueRange, monthStart, nextMonthStart } from "../src/analytics/accrual.js";
import { rollUpCostDays, usageSums } from "../src/analytics/cost-days.js";
import { METRICS } from "../src/analytics/metrics.js";
import { monthCost, rollUpCostHours } from "../src/analytics/cost-hours.js";
import { createAnalyticsSql } from "../src/analytics/db.js";
import { pruneCostHours, pruneHourlyRollups } from "../src/analytics/retention.js";
import { HOURLY_TASK, saveProgress } from "../src/analytics/rollup.js";
import { loadConfig } from "../src/config.js";
import { openConnection } from "../src/db/connect.js";
import { createSqlPool, sqlFragment, type Sql, type SqlFragment } from "../src/db/sql.js";
import { rowsReadBy } from "../test/analytics/support.js";
import { benchEnvironment, CORES, cpuSeconds, percentile, round, runDispatcher, say, servicePids } from "./support.js";

const SERVERS = Number(process.env.BENCH_SERVERS ?? 2_000);
const DAYS = Number(process.env.BENCH_DAYS ?? 365);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const MONTH_DAYS = Math.min(30, Number(process.env.BENCH_MONTH_DAYS ?? 30));
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
const analyticsUrl = bench.env.DISPATCHER_ANALYTICS_URL ?? "";
const analyticsDb = new URL(analyticsUrl).pathname.slice(1);
const analytics = createAnalyticsSql(analyticsUrl, 2);
const oneAnalytics = createAnalyticsSql(analyticsUrl, 1);

try {
  say(`bench:accrual on ${CORES} cores: ${SERVERS} running servers with ${DAYS} days of history (${2 * DAYS} state changes each)`);
  const fillStarted = Date.now();
  await db.query(`INSERT INTO clouds (id, name, driver, endpoint) VALUES ('01BENCHCLOUDCCCCCCCCCCCCCC', 'bench', 'local', '')`);
  await db.query(`INSERT INTO accounts (id, name, cloud_id, credential_id, status) VALUES ('${ACCOUNT}', 'a', '01BENCHCLOUDCCCCCCCCCCCCCC', 'none', 'ACTIVE')`);
  // Day d of the history starts DAYS - d days before today's midnight; every server started at 08:00 and stopped at
  // 20:00 of each day, and was started again this morning, before the runs' history cutoff (their range's start less
  // an hour): that start is where each run's read of a server's history begins.
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

  const median = (xs: number[]): number => round(percentile([...xs].sort((x, y) => x - y), 50));
  /** Runs `step` `runs` times through `sql` (a pool of one): wall time, MariaDB's and this process's CPU, rows read. */
  async function measure(label: string, runs: number, sql: Sql, step: () => Promise<unknown>): Promise<{ ms: number[]; mariadb_ms: number; bench_ms: number; rows_read: number }> {
    const wall: number[] = [];
    const dbCpu: number[] = [];
    const ownCpu: number[] = [];
    let read = 0;
    for (let i = 0; i < runs; i++) {
      read = await rowsReadBy(sql, async () => {
        const cpu0 = cpuSeconds(mariadb);
        const own0 = process.cpuUsage();
        const t0 = performance.now();
        await step();
        wall.push(performance.now() - t0);
        const own = process.cpuUsage(own0);
        ownCpu.push((own.user + own.system) / 1000);
        dbCpu.push((cpuSeconds(mariadb) - cpu0) * 1000);
      });
      say(`  ${label} ${i + 1}: ${round(wall.at(-1) ?? 0)} ms, MariaDB ${round(dbCpu.at(-1) ?? 0)} ms CPU, this process ${round(ownCpu.at(-1) ?? 0)} ms; ${read.toLocaleString("en-US")} rows and index entries read`);
    }
    return { ms: wall.map((x) => round(x)), mariadb_ms: median(dbCpu), bench_ms: median(ownCpu), rows_read: read };
  }

  const accrual = await measure("accrual run", RUNS, one, () => {
    const now = Date.now();
    return accrueRange(one, analytics, new Date(Math.floor(now / HOUR) * HOUR - HOUR), new Date(Math.floor(now / 60_000) * 60_000));
  });
  say(`accrual run (median of ${RUNS}): ${median(accrual.ms)} ms, MariaDB ${accrual.mariadb_ms} ms of CPU; ${round(accrual.rows_read / SERVERS, 2)} rows read per server`);

  // A month's last day: every server's hourly rows of BENCH_MONTH_DAYS days, over 20 codes and 10 accounts (the
  // accrual runs' own rows go first, so the month's are the only accruals the days' roll-up starts from).
  const monthNow = new Date(Date.UTC(2030, 0, MONTH_DAYS + 1, 0, 30));
  await analytics.execute`DELETE FROM cost_accruals`;
  for (let d = 0; d < MONTH_DAYS; d++) {
    await db.query(
      `INSERT INTO \`${analyticsDb}\`.cost_accruals (server_id, period_start, account_id, budget_code, hourly_price_micros, accruing_ms, amount_micros, updated_at)
        SELECT CONCAT('S', LPAD(s.seq, 25, '0')), ? + INTERVAL h.seq HOUR, CONCAT('A', LPAD(s.seq % 10, 25, '0')), CONCAT('CODE', s.seq % 20), 120000, 3600000, 120000, NOW(3)
          FROM seq_1_to_${SERVERS} s JOIN seq_0_to_23 h ORDER BY h.seq, s.seq`,
      [new Date(Date.UTC(2030, 0, d + 1))],
    );
  }
  await db.query(`ANALYZE TABLE \`${analyticsDb}\`.cost_accruals`);
  await saveProgress(analytics, ACCRUAL_TASK, new Date(Date.UTC(2030, 0, MONTH_DAYS + 1)));
  const monthRows = SERVERS * MONTH_DAYS * 24;
  say(`budget usage on day ${MONTH_DAYS + 1} of a month: ${monthRows.toLocaleString("en-US")} accrual rows this month`);
  const everyHour = await measure("summing every server's hours", 3, oneAnalytics, () => oneAnalytics.query`
    SELECT budget_code, SUM(amount_micros) AS micros FROM cost_accruals WHERE period_start >= ${monthStart(monthNow)} AND period_start < ${nextMonthStart(monthNow)} GROUP BY budget_code`);
  const firstPass = await measure("first pass (sums the month's final hours)", 1, oneAnalytics, () => rollUpCostHours(oneAnalytics, monthNow));
  const steady = await measure("budget usage's month", RUNS, oneAnalytics, async () => {
    await rollUpCostHours(oneAnalytics, monthNow);
    return monthCost(oneAnalytics, monthNow, { by: "budget_code" });
  });
  say(`budget usage's month (median of ${RUNS}): ${median(steady.ms)} ms, MariaDB ${steady.mariadb_ms} ms of CPU, ${steady.rows_read.toLocaleString("en-US")} rows read; summing every server's hours: ${median(everyHour.ms)} ms, ${everyHour.mariadb_ms} ms, ${everyHour.rows_read.toLocaleString("en-US")}`);
  // The fleet summary of one account (a tenth of the servers): its month to date, on each call.
  const oneAccount = sqlFragment`account_id = ${`A${"1".padStart(25, "0")}`}`;
  const accountEveryHour = await measure("one account, summing its servers' hours", 3, oneAnalytics, () => oneAnalytics.query`
    SELECT SUM(amount_micros) AS micros FROM cost_accruals WHERE ${oneAccount} AND period_start >= ${monthStart(monthNow)} AND period_start < ${nextMonthStart(monthNow)}`);
  const account = await measure("one account's month", RUNS, oneAnalytics, () => monthCost(oneAnalytics, monthNow, { by: "account_id", accounts: oneAccount }));
  say(`one account's month (median of ${RUNS}): ${median(account.ms)} ms, MariaDB ${account.mariadb_ms} ms of CPU, ${account.rows_read.toLocaleString("en-US")} rows read; summing its servers' hours: ${median(accountEveryHour.ms)} ms, ${accountEveryHour.mariadb_ms} ms, ${accountEveryHour.rows_read.toLocaleString("en-US")}`);

  // ReportUsage of the month: by budget code over every account (an administrator's report), and by server for one
  // account (a tenth of the fleet), first from every server's hours (no day summed yet), then from cost_days.
  const month = { start: monthStart(monthNow), end: nextMonthStart(monthNow) };
  const byCode = () => usageSums(oneAnalytics, { key: sqlFragment`budget_code`, where: [sqlFragment`1 = 1`], ...month });
  const byServer = () => usageSums(oneAnalytics, { key: sqlFragment`server_id`, where: [oneAccount], ...month });
  // What ReportUsage ran before cost_days: one statement over every server's hours of the period.
  const everyHourOf = (key: SqlFragment, where: SqlFragment) => () => oneAnalytics.query`
    SELECT ${key} AS k, SUM(amount_micros) AS micros, SUM(accruing_ms) AS ms, COUNT(DISTINCT server_id) AS servers
      FROM cost_accruals WHERE ${where} AND period_start >= ${month.start} AND period_start < ${month.end} GROUP BY k ORDER BY k`;
  const reportEveryHour = await measure("usage report by code, every server's hours", 3, oneAnalytics, everyHourOf(sqlFragment`budget_code`, sqlFragment`1 = 1`));
  const serversEveryHour = await measure("one account's usage by server, every server's hours", 3, oneAnalytics, everyHourOf(sqlFragment`server_id`, oneAccount));
  const daysPass = await measure("summing the month's final days", 1, oneAnalytics, async () => {
    for (let more = true; more; ) more = (await rollUpCostDays(oneAnalytics, monthNow, 31)).more;
  });
  await db.query(`ANALYZE TABLE \`${analyticsDb}\`.cost_days`);
  const report = await measure("usage report by code", RUNS, oneAnalytics, byCode);
  const servers = await measure("one account's usage by server", RUNS, oneAnalytics, byServer);
  say(`usage report by code (median of ${RUNS}): ${median(report.ms)} ms, MariaDB ${report.mariadb_ms} ms of CPU, ${report.rows_read.toLocaleString("en-US")} rows read; from every server's hours: ${median(reportEveryHour.ms)} ms, ${reportEveryHour.mariadb_ms} ms, ${reportEveryHour.rows_read.toLocaleString("en-US")}`);
  say(`one account's usage by server (median of ${RUNS}): ${median(servers.ms)} ms, MariaDB ${servers.mariadb_ms} ms of CPU, ${servers.rows_read.toLocaleString("en-US")} rows read; from every server's hours: ${median(serversEveryHour.ms)} ms, ${serversEveryHour.mariadb_ms} ms, ${serversEveryHour.rows_read.toLocaleString("en-US")}`);

  // Four months on, with the default retention of 90 days: the month's summed hours expire. The passes run back to
  // back, as the monitor runs them while a batch comes back full.
  const batch = loadConfig(process.env, "").analytics.retentionBatchSize;
  const expiredAt = new Date(monthNow.getTime() + 120 * 24 * HOUR);
  /** Runs `pass` until it comes back short; the rows it deleted and the passes it took. */
  const drain = async (pass: () => Promise<{ deleted: number; more: boolean }>): Promise<{ rows: number; passes: number }> => {
    const out = { rows: 0, passes: 0 };
    for (let more = true; more; out.passes++) {
      const r = await pass();
      out.rows += r.deleted;
      more = r.more;
    }
    return out;
  };
  let pruned = 0;
  let prunePasses = 0;
  const prune = await measure("deleting the month's expired hours", 1, oneAnalytics, async () => {
    ({ rows: pruned, passes: prunePasses } = await drain(() => pruneCostHours(oneAnalytics, expiredAt, 90, batch)));
  });
  const prunedReport = await measure("usage report by code, hours expired", RUNS, oneAnalytics, () =>
    usageSums(oneAnalytics, { key: sqlFragment`budget_code`, where: [sqlFragment`1 = 1`], start: month.start, end: new Date(Date.UTC(2030, 0, MONTH_DAYS)) }),
  );
  const pruneS = (prune.ms[0] ?? 0) / 1000;
  say(`expired hours: ${pruned.toLocaleString("en-US")} rows deleted in ${round(pruneS)} s (${Math.round(pruned / pruneS).toLocaleString("en-US")} rows/s, ${prunePasses} passes of up to ${batch.toLocaleString("en-US")} rows a statement), MariaDB ${round(prune.mariadb_ms / 1000)} s of CPU; the report by code over the summed days after it ${median(prunedReport.ms)} ms`);

  // A week of hourly roll-ups of every metric of every server, then deleted as expired.
  const rollupDays = 7;
  for (let d = 0; d < rollupDays; d++) {
    await db.query(
      `INSERT INTO \`${analyticsDb}\`.server_metric_rollups (server_id, resolution, metric, bucket_start, count, sum, min, max, avg, updated_at)
        SELECT CONCAT('S', LPAD(s.seq, 25, '0')), 'HOUR', m.metric, ? + INTERVAL h.seq HOUR, 360, 18000, 10, 90, 50, NOW(3)
          FROM seq_1_to_${SERVERS} s JOIN seq_0_to_23 h JOIN (${METRICS.map((m) => `SELECT '${m}' AS metric`).join(" UNION ALL ")}) m ORDER BY h.seq, s.seq`,
      [new Date(Date.UTC(2030, 0, d + 1))],
    );
  }
  await saveProgress(analytics, HOURLY_TASK, monthNow);
  let rollupsPruned = 0;
  const rollupPrune = await measure("deleting a week of expired hourly roll-ups", 1, oneAnalytics, async () => {
    rollupsPruned = (await drain(() => pruneHourlyRollups(oneAnalytics, expiredAt, 90, batch))).rows;
  });
  const rollupPruneS = (rollupPrune.ms[0] ?? 0) / 1000;
  say(`expired hourly roll-ups: ${rollupsPruned.toLocaleString("en-US")} rows deleted in ${round(rollupPruneS)} s (${Math.round(rollupsPruned / rollupPruneS).toLocaleString("en-US")} rows/s), MariaDB ${round(rollupPrune.mariadb_ms / 1000)} s of CPU`);

  console.log(
    JSON.stringify({
      bench: "accrual",
      cores: CORES,
      load_avg_1m: round(loadavg()[0] ?? 0, 2),
      servers: SERVERS,
      days: DAYS,
      events: SERVERS * (2 * DAYS + 1),
      fill_s: round(fillS),
      runs: RUNS,
      run_ms_median: median(accrual.ms),
      run_ms: accrual.ms,
      mariadb_cpu_ms_median: accrual.mariadb_ms,
      bench_cpu_ms_median: accrual.bench_ms,
      rows_read_per_run: accrual.rows_read,
      rows_read_per_server: round(accrual.rows_read / SERVERS, 2),
      budget_month_rows: monthRows,
      budget_every_hour: { ms_median: median(everyHour.ms), mariadb_ms: everyHour.mariadb_ms, rows_read: everyHour.rows_read },
      budget_first_pass: { ms: firstPass.ms[0], mariadb_ms: firstPass.mariadb_ms, rows_read: firstPass.rows_read },
      budget_month_to_date: { ms_median: median(steady.ms), mariadb_ms: steady.mariadb_ms, rows_read: steady.rows_read },
      account_every_hour: { ms_median: median(accountEveryHour.ms), mariadb_ms: accountEveryHour.mariadb_ms, rows_read: accountEveryHour.rows_read },
      account_month_to_date: { ms_median: median(account.ms), mariadb_ms: account.mariadb_ms, rows_read: account.rows_read },
      usage_by_code_every_hour: { ms_median: median(reportEveryHour.ms), mariadb_ms: reportEveryHour.mariadb_ms, rows_read: reportEveryHour.rows_read },
      usage_by_code: { ms_median: median(report.ms), mariadb_ms: report.mariadb_ms, rows_read: report.rows_read },
      usage_by_server_every_hour: { ms_median: median(serversEveryHour.ms), mariadb_ms: serversEveryHour.mariadb_ms, rows_read: serversEveryHour.rows_read },
      usage_by_server: { ms_median: median(servers.ms), mariadb_ms: servers.mariadb_ms, rows_read: servers.rows_read },
      cost_days_first_pass: { ms: daysPass.ms[0], mariadb_ms: daysPass.mariadb_ms, rows_read: daysPass.rows_read },
      hours_expired: { rows: pruned, s: round(pruneS), rows_per_s: Math.round(pruned / pruneS), passes: prunePasses, mariadb_s: round(prune.mariadb_ms / 1000), report_ms_median: median(prunedReport.ms) },
      hourly_rollups_expired: { rows: rollupsPruned, s: round(rollupPruneS), rows_per_s: Math.round(rollupsPruned / rollupPruneS), mariadb_s: round(rollupPrune.mariadb_ms / 1000) },
    }),
  );
} finally {
  // The throwaway databases go even when a step fails.
  await Promise.allSettled([one.end(), analytics.end(), oneAnalytics.end(), db.end()]);
  await bench.drop();
}
