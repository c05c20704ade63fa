// Acceptance: a real Prometheus (Debian's `prometheus`; .ci/run installs it) scraping a running `dispatcher start`.
// After 50 diagnostic jobs, PromQL over the succeeded counter of that kind answers 50, and the create→start
// histogram's p99 is a finite number of seconds.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { DiagnosticOutcome, JobState } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { Daemon } from "../support/daemon.js";
import { until } from "../support/poll.js";
import { bootstrapToken, createTestEnv, freePort, jobEnd, killStrayDispatchers, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";

const PROMETHEUS = "/usr/bin/prometheus";
const JOBS = 50;

let t: TestEnv;
let p: DispatcherProcess;
let c: DispatcherClients;
let prometheus: Daemon;
let promPort = 0;

/** An instant PromQL query against the private Prometheus: the vector's samples as [labels, value]. */
async function query(promql: string): Promise<Array<[Record<string, string>, number]>> {
  const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(promql)}`, { signal: AbortSignal.timeout(5_000) });
  const body = (await res.json()) as { status: string; error?: string; data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  if (body.status !== "success") throw new Error(`${promql}: ${body.error ?? res.status}`);
  return (body.data?.result ?? []).map((r) => [r.metric, Number(r.value[1])]);
}

beforeAll(async () => {
  t = await createTestEnv({ label: "prom", metrics: true });
  p = await startDispatcher(t, ["start"], { timeoutMs: 240_000 });
  const token = bootstrapToken(p) ?? "";
  if (!token) throw new Error(`no admin token printed\n${p.output()}`);
  c = createDispatcherClients({ address: t.address, token, retry: false });

  // A private Prometheus: its own port, data directory and configuration, scraping the dispatcher every second.
  promPort = await freePort();
  const config = join(t.dir, "prometheus.yml");
  writeFileSync(config, [
    "global: { scrape_interval: 1s, evaluation_interval: 1s }",
    "scrape_configs:",
    "  - job_name: dispatcher",
    `    static_configs: [{ targets: ["127.0.0.1:${t.ports.metrics}"] }]`,
    "",
  ].join("\n"));
  prometheus = new Daemon("prometheus", PROMETHEUS, [
    `--config.file=${config}`,
    `--storage.tsdb.path=${join(t.dir, "prometheus")}`,
    `--web.listen-address=127.0.0.1:${promPort}`,
    "--storage.tsdb.retention.time=1h",
  ], join(t.dir, "prometheus.log"));
  await until(async () => (await fetch(`http://127.0.0.1:${promPort}/-/ready`).catch(() => null))?.ok, 60_000, "Prometheus to be ready", () => prometheus.tail());
}, 360_000);

afterAll(async () => {
  c?.close();
  await prometheus?.stop();
  await p?.stop("SIGTERM").catch(() => undefined);
  await killStrayDispatchers();
  await t?.cleanup();
});

describe("Prometheus scraping a running dispatcher", () => {
  it(`counts ${JOBS} diagnostic jobs as succeeded and has a finite create→start p99`, async () => {
    await until(async () => (await query('up{job="dispatcher"}'))[0]?.[1] === 1, 30_000, "Prometheus to scrape the dispatcher", () => prometheus.tail());
    // Ten at a time, each to its end.
    const states: JobState[] = [];
    for (let i = 0; i < JOBS; i += 10) {
      const batch = await Promise.all(Array.from({ length: Math.min(10, JOBS - i) }, () => c.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED })));
      for (const r of await Promise.all(batch.map((b) => jobEnd(c, b.job, 60_000)))) states.push(r.state);
    }
    expect(states.filter((s) => s === JobState.JOB_STATE_SUCCEEDED)).toHaveLength(JOBS);

    const succeeded = 'sum(dispatcher_jobs_succeeded_total{job="dispatcher", job_kind="diagnostic"})';
    await until(async () => (await query(succeeded))[0]?.[1] === JOBS, 30_000, `${succeeded} to reach ${JOBS}`, () => prometheus.tail(5));
    expect(await query(succeeded)).toEqual([[{}, JOBS]]);

    // Over the cumulative buckets (every job since the start), not a rate: a rate over a series scraped only once or
    // twice since its jobs ran can be empty, which says nothing about the histogram.
    const p99 = 'histogram_quantile(0.99, sum by (le) (dispatcher_job_wait_duration_bucket{job_kind="diagnostic"}))';
    const seconds = await until(async () => {
      const v = (await query(p99))[0]?.[1];
      return v !== undefined && Number.isFinite(v) ? v : undefined;
    }, 30_000, `${p99} to be finite`, () => prometheus.tail(5));
    expect(Number.isFinite(seconds), `${p99} = ${seconds}`).toBe(true);
    expect(seconds).toBeGreaterThan(0);
    // And the same jobs, counted at their creation and start.
    expect((await query('sum(dispatcher_jobs_created_total{job_kind="diagnostic"})'))[0]?.[1]).toBe(JOBS);
    expect((await query('sum(dispatcher_job_wait_duration_count{job_kind="diagnostic"})'))[0]?.[1]).toBe(JOBS);
  }, 300_000);
});
