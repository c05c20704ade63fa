// `npm run bench:job-sql`: what the job path costs the database, stage by stage. Runs the path's own functions (create,
// the relay's mark, start, complete; no gRPC, no broker, no kind's effects) against a throwaway database, in batches
// of 1 (a lone call), 16 and 64 (group commit under load), one stage after another from one connection at a time, and
// reads MariaDB's CPU time from /proc and the buffer pool's page counts around each stage: CPU and pages per job by
// stage, commits and row operations per job.
// Options: BENCH_JOBS (jobs per batch size, default 12,000; a tenth of that in batches of 1), BENCH_BATCHES ("1,16,64").
import { randomBytes, randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import { loadConfig } from "../src/config.js";
import { newId } from "../src/db/ids.js";
import { createSqlPool } from "../src/db/sql.js";
import { completeMany, startMany } from "../src/jobs/execution-batch.js";
import { JobExecution } from "../src/jobs/execution.js";
import { markOutboxPublished, type OutboxRef } from "../src/jobs/outbox.js";
import { insertJobs, type NewJob } from "../src/jobs/repository.js";
import { benchEnvironment, CORES, cpuSeconds, round, runDispatcher, say, servicePids } from "./support.js";

const JOBS = Number(process.env.BENCH_JOBS ?? 12_000);
const BATCHES = (process.env.BENCH_BATCHES ?? "1,16,64").split(",").map(Number).filter((n) => n > 0);
const STAGES = ["create", "mark", "start", "complete"] as const;
type Stage = (typeof STAGES)[number];
const OWNER = "bench-worker";
const PAYLOAD = { sleepMs: 0, outcome: "succeed", failAttempts: 0, pendingChecks: 0, note: "" };

const mariadb = servicePids(Number(new URL(loadConfig(process.env, "").mq.url).port || 4222)).mariadb;
if (!mariadb) throw new Error("no mariadbd process found: the bench reads its CPU time from /proc");
const bench = await benchEnvironment("jobsql");
await runDispatcher(["migrate"], bench.env);
const sql = createSqlPool(bench.provisioningUrl, 2);
const ex = new JobExecution({ sql });

function newJob(): NewJob {
  const traceId = randomBytes(16).toString("hex");
  return {
    id: newId(),
    kind: "diagnostic",
    payload: PAYLOAD,
    maxAttempts: 5,
    requestedBy: "bench",
    resource: null,
    idempotencyKey: randomUUID(),
    traceId,
    traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01`,
    now: new Date(),
    deadlineAt: new Date(Date.now() + 600_000),
    actor: "bench",
    subjectPrefix: "bench",
  };
}

interface StageCost {
  cpu: number;
  pageReads: number;
  pageChanges: number;
}

const noCost = (): Record<Stage, StageCost> => Object.fromEntries(STAGES.map((s) => [s, { cpu: 0, pageReads: 0, pageChanges: 0 }])) as Record<Stage, StageCost>;

/**
 * MariaDB's counters so far (every client's: the bench runs alone): commits, row operations, and the buffer pool's
 * logical page reads and page changes.
 */
async function counters(): Promise<Record<string, number>> {
  const rows = await sql.query<{ Variable_name: string; Value: string }>`
    SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_commit', 'Handler_write', 'Handler_update', 'Handler_read_key',
      'Innodb_buffer_pool_read_requests', 'Innodb_buffer_pool_write_requests')`;
  return Object.fromEntries(rows.map((r) => [r.Variable_name, Number(r.Value)]));
}

const READS = "Innodb_buffer_pool_read_requests";
const CHANGES = "Innodb_buffer_pool_write_requests";

/** One batch of `n` jobs through the four stages; adds each stage's MariaDB CPU seconds and page counts to `cost`. */
async function batch(n: number, cost: Record<Stage, StageCost>): Promise<void> {
  const timed = async <T>(stage: Stage, fn: () => Promise<T>): Promise<T> => {
    const pages = await counters();
    const before = cpuSeconds(mariadb);
    const out = await fn();
    cost[stage].cpu += cpuSeconds(mariadb) - before;
    const after = await counters();
    cost[stage].pageReads += (after[READS] ?? 0) - (pages[READS] ?? 0);
    cost[stage].pageChanges += (after[CHANGES] ?? 0) - (pages[CHANGES] ?? 0);
    return out;
  };
  const jobs = Array.from({ length: n }, newJob);
  const created = await timed("create", () => sql.transaction((tx) => insertJobs(tx, jobs, { pipelined: true })));
  await timed("mark", () => markOutboxPublished(sql, created.map((c) => c.outbox as OutboxRef)));
  const started = await timed("start", () => startMany(ex, jobs.map((j) => ({ jobId: j.id, kind: j.kind, owner: OWNER, leaseMs: 60_000 }))));
  if (started.some((s) => s.status !== "started")) throw new Error("a job did not start");
  const done = await timed("complete", () => completeMany(ex, jobs.map((j) => ({ jobId: j.id, kind: j.kind, attempt: 1, owner: OWNER, result: { sleptMs: 0, attempt: 1, note: "" } }))));
  if (done.some((d) => d.status !== "fulfilled" || !d.value)) throw new Error("a job did not complete");
}

say(`bench:job-sql: ${CORES} cores, load average ${loadavg().map((l) => round(l, 2)).join(" ")}`);
const results: Record<string, Record<string, number>> = {};
try {
  for (const size of BATCHES) {
    const jobs = size === 1 ? Math.max(1, Math.round(JOBS / 10)) : JOBS;
    const rounds = Math.max(1, Math.round(jobs / size));
    const warm = noCost();
    for (let i = 0; i < Math.min(20, rounds); i++) await batch(size, warm);
    const cost = noCost();
    const before = await counters();
    const t0 = Date.now();
    for (let i = 0; i < rounds; i++) await batch(size, cost);
    const seconds = (Date.now() - t0) / 1000;
    const after = await counters();
    const count = rounds * size;
    const per = (k: string): number => round(((after[k] ?? 0) - (before[k] ?? 0)) / count, 2);
    const ms = (s: number): number => round((s * 1000) / count, 3);
    const total = STAGES.reduce((sum, s) => sum + cost[s].cpu, 0);
    const perJob = (n: number): number => round(n / count, 1);
    results[String(size)] = {
      jobs: count,
      create_ms: ms(cost.create.cpu),
      mark_ms: ms(cost.mark.cpu),
      start_ms: ms(cost.start.cpu),
      complete_ms: ms(cost.complete.cpu),
      mariadb_ms_per_job: ms(total),
      commits_per_job: per("Com_commit"),
      rows_written_per_job: per("Handler_write"),
      rows_updated_per_job: per("Handler_update"),
      key_reads_per_job: per("Handler_read_key"),
      // Pages read and changed in the buffer pool: counts of the work itself, which the machine's speed does not move.
      page_reads_per_job: per(READS),
      page_writes_per_job: per(CHANGES),
      ...Object.fromEntries(STAGES.flatMap((st) => [[`${st}_page_reads`, perJob(cost[st].pageReads)], [`${st}_page_changes`, perJob(cost[st].pageChanges)]])),
      jobs_per_s: round(count / seconds, 0),
    };
    const r = results[String(size)] as Record<string, number>;
    say(
      `batches of ${size}: ${count} jobs, MariaDB CPU per job ${r.mariadb_ms_per_job} ms (create ${r.create_ms}, mark ${r.mark_ms}, start ${r.start_ms}, ` +
        `complete ${r.complete_ms}); per job ${r.commits_per_job} commits, ${r.rows_written_per_job} rows written and ${r.rows_updated_per_job} updated, ` +
        `${r.page_reads_per_job} page reads and ${r.page_writes_per_job} page changes`,
    );
    say(`  page reads / changes per job: ${STAGES.map((st) => `${st} ${r[`${st}_page_reads`]} / ${r[`${st}_page_changes`]}`).join(", ")}`);
  }
} finally {
  // The throwaway databases go even when a stage fails.
  await sql.end();
  await bench.drop();
}
console.log(JSON.stringify({ bench: "job-sql", cores: CORES, load_avg_1m: round(loadavg()[0] ?? 0, 2), batches: results }));
