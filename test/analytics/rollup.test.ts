// Roll-ups against the real MariaDB: every hourly and daily bucket equals the aggregate of the raw samples it covers
// (random samples, several runs), recomputing gives the same rows, the monitor's run resumes from its mark, and
// retention deletes only raw samples that are old enough and already rolled up.
import fc from "fast-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ingestSamples, METRICS, type MetricName, type MetricSample } from "../../src/analytics/metrics.js";
import { pruneRawSamples } from "../../src/analytics/retention.js";
import { floorTo, readProgress, rollUpDays, rollUpHours, runRollups, HOURLY_TASK } from "../../src/analytics/rollup.js";
import { InvalidArgumentError } from "../../src/errors.js";
import { HOUR, openAnalyticsFixture, type AnalyticsFixture } from "./support.js";

let f: AnalyticsFixture;
beforeAll(async () => {
  f = await openAnalyticsFixture("anl_rollup");
});
afterAll(() => f?.close());
beforeEach(async () => {
  await f.analytics.execute`DELETE FROM server_metric_samples`;
  await f.analytics.execute`DELETE FROM server_metric_rollups`;
  await f.analytics.execute`DELETE FROM analytics_progress`;
});

const DAY0 = Date.UTC(2026, 10, 20);

const FIELD: Record<MetricName, keyof MetricSample> = {
  cpu_percent: "cpuPercent",
  memory_used_bytes: "memoryUsedBytes",
  memory_total_bytes: "memoryTotalBytes",
  disk_used_bytes: "diskUsedBytes",
  disk_total_bytes: "diskTotalBytes",
  network_in_bytes: "networkInBytes",
  network_out_bytes: "networkOutBytes",
};

const bytes = fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: null });
const sampleArb = fc.record({
  server: fc.constantFrom("srv-a", "srv-b", "srv-c"),
  // Two days and a bit, so buckets cross a day boundary.
  offsetMs: fc.integer({ min: 0, max: 50 * HOUR }),
  cpuPercent: fc.double({ min: 0, max: 100, noNaN: true }),
  memoryUsedBytes: fc.integer({ min: 0, max: 2 ** 36 }),
  memoryTotalBytes: bytes,
  diskUsedBytes: bytes,
  diskTotalBytes: bytes,
  networkInBytes: bytes,
  networkOutBytes: bytes,
});

interface Agg {
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** What a bucket should hold, computed here from the samples. */
function expected(samples: MetricSample[], stepMs: number): Map<string, Agg> {
  const out = new Map<string, Agg>();
  for (const s of samples) {
    for (const m of METRICS) {
      const v = s[FIELD[m]] as number | null | undefined;
      if (v === null || v === undefined) continue;
      const key = `${s.serverId}|${m}|${floorTo(s.time, stepMs).toISOString()}`;
      const a = out.get(key) ?? { count: 0, sum: 0, min: Infinity, max: -Infinity };
      a.count++;
      a.sum += v;
      a.min = Math.min(a.min, v);
      a.max = Math.max(a.max, v);
      out.set(key, a);
    }
  }
  return out;
}

interface RollupRow {
  server_id: string;
  metric: string;
  bucket_start: Date;
  count: bigint;
  sum: number;
  min: number;
  max: number;
  avg: number;
}

async function rollups(resolution: "HOUR" | "DAY"): Promise<Map<string, RollupRow>> {
  const rows = await f.analytics.query<RollupRow>`
    SELECT server_id, metric, bucket_start, count, sum, min, max, avg FROM server_metric_rollups WHERE resolution = ${resolution}`;
  return new Map(rows.map((r) => [`${r.server_id}|${r.metric}|${r.bucket_start.toISOString()}`, r]));
}

const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));

function compare(actual: Map<string, RollupRow>, want: Map<string, Agg>): void {
  expect([...actual.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [key, w] of want) {
    const r = actual.get(key) as RollupRow;
    expect(Number(r.count), key).toBe(w.count);
    expect(r.min, key).toBe(w.min);
    expect(r.max, key).toBe(w.max);
    expect(close(r.sum, w.sum), `${key} sum ${r.sum} vs ${w.sum}`).toBe(true);
    expect(close(r.avg, w.sum / w.count), `${key} avg`).toBe(true);
  }
}

describe("roll-ups", () => {
  it("hourly and daily buckets equal the aggregates of the raw samples (random samples), and recomputing changes nothing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(sampleArb, { minLength: 1, maxLength: 300 }), async (raw) => {
        await f.analytics.execute`DELETE FROM server_metric_samples`;
        await f.analytics.execute`DELETE FROM server_metric_rollups`;
        const sent: MetricSample[] = raw.map((r) => ({ ...r, serverId: r.server, time: new Date(DAY0 + r.offsetMs) }));
        expect(await ingestSamples(f.analytics, sent)).toBe(sent.length);
        // A server's second sample at the same instant replaces the first.
        const samples = [...new Map(sent.map((s) => [`${s.serverId}|${s.time.getTime()}`, s])).values()];
        const from = new Date(DAY0);
        const to = new Date(DAY0 + 51 * HOUR);
        await rollUpHours(f.analytics, from, to);
        await rollUpDays(f.analytics, from, to);
        const hours = await rollups("HOUR");
        const days = await rollups("DAY");
        compare(hours, expected(samples, HOUR));
        compare(days, expected(samples, 24 * HOUR));
        // Again, over an overlapping range: the same rows.
        await rollUpHours(f.analytics, new Date(DAY0 + 5 * HOUR), to);
        await rollUpDays(f.analytics, from, to);
        compare(await rollups("HOUR"), expected(samples, HOUR));
        compare(await rollups("DAY"), expected(samples, 24 * HOUR));
      }),
      { numRuns: 6 },
    );
  });

  it("the monitor's run starts at the oldest sample, keeps the current hour open, catches up late samples, and resumes after a restart", async () => {
    const s = (offsetMs: number, cpu: number): MetricSample => ({ serverId: "srv-m", time: new Date(DAY0 + offsetMs), cpuPercent: cpu, memoryUsedBytes: 1 });
    await ingestSamples(f.analytics, [s(10 * 60_000, 10), s(70 * 60_000, 20), s(130 * 60_000, 30)]);
    const now = new Date(DAY0 + 2 * HOUR + 40 * 60_000);
    expect(await runRollups(f.analytics, now)).toMatchObject({ from: new Date(DAY0), more: false });
    expect(await readProgress(f.analytics, HOURLY_TASK)).toEqual(new Date(DAY0 + 2 * HOUR));
    // A late sample in the previous hour and one in the current hour; a "restarted" run picks both up.
    await ingestSamples(f.analytics, [s(100 * 60_000, 40), s(150 * 60_000, 50)]);
    await runRollups(f.analytics, new Date(now.getTime() + 60_000));
    const cpu = [...(await rollups("HOUR")).values()].filter((r) => r.metric === "cpu_percent").sort((a, b) => a.bucket_start.getTime() - b.bucket_start.getTime());
    expect(cpu.map((r) => [Number(r.count), r.sum])).toEqual([
      [1, 10],
      [2, 60],
      [2, 80],
    ]);
    const day = [...(await rollups("DAY")).values()].find((r) => r.metric === "cpu_percent");
    expect(day && [Number(day.count), day.sum, day.min, day.max]).toEqual([5, 150, 10, 50]);
  });

  it("retention deletes raw samples past the retention in bounded batches, never ones not rolled up yet, and keeps the roll-ups", async () => {
    const samples: MetricSample[] = Array.from({ length: 50 }, (_, i) => ({ serverId: "srv-r", time: new Date(DAY0 + i * 6 * 60_000), cpuPercent: i, memoryUsedBytes: i }));
    await ingestSamples(f.analytics, samples);
    const now = new Date(DAY0 + 10 * HOUR);
    // Nothing rolled up yet: nothing may go.
    expect(await pruneRawSamples(f.analytics, now, HOUR, 7)).toEqual({ deleted: 0, more: false });
    await runRollups(f.analytics, now);
    const before = await rollups("HOUR");
    // Retention 7 h: samples before 03:00 go (30 of them), 7 per statement, at most 2 statements per call.
    expect(await pruneRawSamples(f.analytics, now, 7 * HOUR, 7, 2)).toEqual({ deleted: 14, more: true });
    let total = 14;
    for (;;) {
      const r = await pruneRawSamples(f.analytics, now, 7 * HOUR, 7, 2);
      total += r.deleted;
      if (!r.more) break;
    }
    expect(total).toBe(30);
    const left = await f.analytics.query<{ t: Date }>`SELECT MIN(time) AS t FROM server_metric_samples`;
    expect(left[0]?.t).toEqual(new Date(DAY0 + 3 * HOUR));
    expect(await rollups("HOUR")).toEqual(before);
  });

  it("stores a sample sent twice once, with the values sent last", async () => {
    const s: MetricSample = { serverId: "srv-d", time: new Date(DAY0), cpuPercent: 5, memoryUsedBytes: 1 };
    await ingestSamples(f.analytics, [s]);
    await ingestSamples(f.analytics, [{ ...s, cpuPercent: 7 }]);
    expect(await f.analytics.query`SELECT cpu_percent FROM server_metric_samples WHERE server_id = 'srv-d'`).toEqual([{ cpu_percent: 7 }]);
  });

  it("refuses bad samples before writing any", async () => {
    const good: MetricSample = { serverId: "srv-x", time: new Date(DAY0), cpuPercent: 1, memoryUsedBytes: 1 };
    const err = await ingestSamples(f.analytics, [good, { ...good, cpuPercent: Number.NaN }, { ...good, serverId: "" }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).violations.map((v) => v.field)).toEqual(["samples[1].cpu_percent", "samples[2].server_id"]);
    expect(await f.analytics.query`SELECT 1 FROM server_metric_samples`).toEqual([]);
  });
});
