// npm run bench:metrics — metric ingestion and roll-ups on a fresh analytics database: BENCH_SERVERS simulated servers
// (default 1,000) each sending a sample every BENCH_INTERVAL_S seconds (10) for BENCH_HOURS hours (24): 8.64 M samples
// by default, ingested through ingestSamples with BENCH_IN_FLIGHT calls in flight (4), one call per tick of the fleet
// (every server's sample of that moment), as agents' pings would. Then the hourly and daily roll-ups of the whole
// period, and the database's size from information_schema. Prints a summary and one JSON line.
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { createAnalyticsSql } from "../src/analytics/db.js";
import { ingestSamples, type MetricSample } from "../src/analytics/metrics.js";
import { rollUpDays, rollUpHours } from "../src/analytics/rollup.js";
import { loadConfig } from "../src/config.js";
import { openConnection } from "../src/db/connect.js";
import { DATABASES } from "../src/db/databases.js";
import { migrate, quoteIdentifier } from "../src/db/migrate.js";
import { withDatabase } from "../src/db/url.js";
import { CORES, cpuSeconds, machineTicks, round, say, servicePids } from "./support.js";

const SERVERS = Number(process.env.BENCH_SERVERS ?? 1000);
const INTERVAL_S = Number(process.env.BENCH_INTERVAL_S ?? 10);
const HOURS = Number(process.env.BENCH_HOURS ?? 24);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 4);
const DAY0 = Date.UTC(2026, 10, 1);

const config = loadConfig(process.env, "");
const database = `bench_metrics_${randomBytes(3).toString("hex")}_anl`;
const url = withDatabase(config.analytics.url, database);
const ticks = Math.floor((HOURS * 3600) / INTERVAL_S);
const total = ticks * SERVERS;

say(`bench:metrics on ${CORES} cores — ${SERVERS} servers × ${ticks} samples (every ${INTERVAL_S} s for ${HOURS} h) = ${total.toLocaleString("en")} samples, ${IN_FLIGHT} in flight; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
say(`migrating a throwaway database ${database}`);
await migrate(url, DATABASES.find((d) => d.name === "analytics")?.migrationsDir as string);
const sql = createAnalyticsSql(url, IN_FLIGHT + 1, { acquireTimeoutMs: 60_000 });
const serverIds = Array.from({ length: SERVERS }, (_, i) => `bench-server-${String(i).padStart(5, "0")}`);

/** Every server's sample at one tick: a slow daily wave with noise, memory and disk creeping, network deltas. */
function tickSamples(tick: number): MetricSample[] {
  const time = new Date(DAY0 + tick * INTERVAL_S * 1000);
  const phase = Math.sin((tick / ticks) * 2 * Math.PI);
  return serverIds.map((serverId, i) => ({
    serverId,
    time,
    cpuPercent: Math.max(0, Math.min(100, 40 + 30 * phase + ((i * 7919 + tick * 31) % 200) / 10 - 10)),
    memoryUsedBytes: 2 ** 30 + ((i * 104729 + tick) % 2 ** 20) * 512,
    memoryTotalBytes: 4 * 2 ** 30,
    diskUsedBytes: 20 * 2 ** 30 + tick * 4096,
    diskTotalBytes: 80 * 2 ** 30,
    networkInBytes: 10_000 + ((i + tick) % 1000) * 100,
    networkOutBytes: 5_000 + ((i * 3 + tick) % 1000) * 50,
  }));
}

const services = servicePids(Number(new URL(config.mq.url).port || 4222));
const cpu0 = { node: process.cpuUsage(), mariadb: cpuSeconds(services.mariadb) };
const machine0 = machineTicks();
try {
  say("ingesting");
  const t0 = performance.now();
  let next = 0;
  let done = 0;
  let lastReport = t0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < ticks) {
        const tick = next++;
        const n = await ingestSamples(sql, tickSamples(tick));
        done += n;
        if (performance.now() - lastReport > 10_000) {
          lastReport = performance.now();
          say(`  ${done.toLocaleString("en")} samples, ${round(done / ((lastReport - t0) / 1000), 0).toLocaleString("en")}/s`);
        }
      }
    }),
  );
  const ingestS = (performance.now() - t0) / 1000;
  const machine1 = machineTicks();
  const nodeCpu = (process.cpuUsage(cpu0.node).user + process.cpuUsage(cpu0.node).system) / 1e6;
  const mariadbCpu = cpuSeconds(services.mariadb) - cpu0.mariadb;
  const busy = (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total);
  const perSecond = done / ingestS;
  say(`  ${done.toLocaleString("en")} samples in ${round(ingestS, 1)} s = ${round(perSecond, 0).toLocaleString("en")} samples/s`);
  say(`  cpu: this process ${round(nodeCpu, 1)} s, mariadb ${round(mariadbCpu, 1)} s; machine ${round(busy * 100, 0)}% of ${CORES} cores busy`);

  say("rolling up the whole period (hours from raw samples, then days from hours)");
  const r0 = performance.now();
  await rollUpHours(sql, new Date(DAY0), new Date(DAY0 + HOURS * 3_600_000));
  const hoursS = (performance.now() - r0) / 1000;
  const d0 = performance.now();
  await rollUpDays(sql, new Date(DAY0), new Date(DAY0 + HOURS * 3_600_000));
  const daysS = (performance.now() - d0) / 1000;
  const counts = await sql.query<{ resolution: string; n: bigint }>`SELECT resolution, COUNT(*) AS n FROM server_metric_rollups GROUP BY resolution`;
  const rows = Object.fromEntries(counts.map((c) => [c.resolution, Number(c.n)]));
  say(`  hourly: ${round(hoursS, 1)} s (${rows.HOUR ?? 0} rows); daily: ${round(daysS, 2)} s (${rows.DAY ?? 0} rows)`);

  // Fresh statistics first: information_schema's sizes come from them.
  for (const t of ["server_metric_samples", "server_metric_rollups"]) await sql.query([`ANALYZE TABLE ${t}`] as unknown as TemplateStringsArray);
  const sizes = await sql.query<{ table_name: string; data: bigint; idx: bigint; rows_: bigint }>`
    SELECT table_name, data_length AS data, index_length AS idx, table_rows AS rows_ FROM information_schema.tables WHERE table_schema = ${database} ORDER BY table_name`;
  let dbBytes = 0;
  for (const s of sizes) {
    const bytes = Number(s.data) + Number(s.idx);
    dbBytes += bytes;
    if (bytes > 100_000) say(`  ${s.table_name}: ${round(bytes / 2 ** 20, 1)} MiB (data ${round(Number(s.data) / 2 ** 20, 1)}, indexes ${round(Number(s.idx) / 2 ** 20, 1)}), ~${Number(s.rows_).toLocaleString("en")} rows`);
  }
  say(`  analytics database: ${round(dbBytes / 2 ** 20, 1)} MiB = ${round(dbBytes / done, 1)} bytes per sample`);
  process.stdout.write(
    `${JSON.stringify({
      bench: "metrics",
      cores: CORES,
      servers: SERVERS,
      intervalS: INTERVAL_S,
      hours: HOURS,
      inFlight: IN_FLIGHT,
      samples: done,
      ingestSeconds: round(ingestS, 2),
      samplesPerSecond: round(perSecond, 0),
      nodeCpuSeconds: round(nodeCpu, 1),
      mariadbCpuSeconds: round(mariadbCpu, 1),
      rollupHourSeconds: round(hoursS, 2),
      rollupDaySeconds: round(daysS, 2),
      hourlyRows: rows.HOUR ?? 0,
      dailyRows: rows.DAY ?? 0,
      dbBytes,
    })}\n`,
  );
} finally {
  await sql.end();
  const conn = await openConnection(url, false);
  await conn.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(database)}`).finally(() => conn.end());
}
