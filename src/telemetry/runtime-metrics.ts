// The process's own runtime, as OpenTelemetry's V8 and Node.js conventions name it: how long its garbage collections
// stop it (each pause stops every call the process holds, so they show in every latency's tail) and how late its event
// loop runs, over fixed windows, so that a deployment sees which process is short of CPU or pausing, and why.
import { constants, monitorEventLoopDelay, performance, PerformanceObserver, type EventLoopUtilization, type IntervalHistogram, type PerformanceEntry } from "node:perf_hooks";
import { METRIC, observeGauge, recordGcPause } from "./metrics.js";

/** Window over which the event loop's delay and utilization are reported (the last complete one). */
const LOOP_WINDOW_MS = 10_000;

const GC_TYPE: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb",
};

/** Nanoseconds (the histogram's unit) in seconds; an empty histogram's NaN as 0. */
const seconds = (ns: number): number => (Number.isFinite(ns) ? ns / 1e9 : 0);

interface LoopWindow {
  p50: number;
  p99: number;
  max: number;
  utilization: number;
}

/** Starts recording; returns its stop. */
export function observeRuntime(): () => void {
  const gcWatch = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      recordGcPause((kind !== undefined && GC_TYPE[kind]) || "other", e.duration / 1000);
    }
  });
  gcWatch.observe({ entryTypes: ["gc"] });

  const delay: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let utilizationMark: EventLoopUtilization = performance.eventLoopUtilization();
  const sample = (): LoopWindow => ({
    p50: seconds(delay.percentile(50)),
    p99: seconds(delay.percentile(99)),
    max: seconds(delay.max),
    utilization: performance.eventLoopUtilization(performance.eventLoopUtilization(), utilizationMark).utilization,
  });
  // Until the first window is complete, the one under way.
  let last: LoopWindow | undefined;
  const roll = setInterval(() => {
    last = sample();
    delay.reset();
    utilizationMark = performance.eventLoopUtilization();
  }, LOOP_WINDOW_MS);
  roll.unref();
  const current = (): LoopWindow => last ?? sample();

  const unobserve = [
    observeGauge(METRIC.eventLoopDelayP50, { unit: "s", description: "Event loop delay of this process, median over the last 10 s window" }, () => [[current().p50, {}]]),
    observeGauge(METRIC.eventLoopDelayP99, { unit: "s", description: "Event loop delay of this process, 99th percentile over the last 10 s window" }, () => [[current().p99, {}]]),
    observeGauge(METRIC.eventLoopDelayMax, { unit: "s", description: "Event loop delay of this process, longest in the last 10 s window" }, () => [[current().max, {}]]),
    observeGauge(METRIC.eventLoopUtilization, { unit: "1", description: "Share of the last 10 s window this process's event loop was busy (0 to 1)" }, () => [[current().utilization, {}]]),
  ];

  return () => {
    gcWatch.disconnect();
    delay.disable();
    clearInterval(roll);
    unobserve.forEach((remove) => remove());
  };
}
