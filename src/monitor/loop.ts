// A periodic loop for the monitor: one iteration at a time, each in a span of its own trace, errors logged (never
// fatal), and a graceful stop that lets the iteration under way finish before aborting it.
import type { Logger } from "../log.js";
import { METRIC, observeGauge } from "../telemetry/metrics.js";
import { withSpan, type Span } from "../telemetry/spans.js";

export interface LoopOptions {
  /** Span name: `monitor.<name>`. */
  name: string;
  intervalMs: number;
  log: Logger;
  /**
   * One iteration. Return true when there is more to do at once (a full batch): the next iteration starts without
   * waiting. `signal` aborts when a stop's grace period is over.
   */
  run(span: Span, signal: AbortSignal): Promise<boolean | void>;
  /**
   * The share of the time (0–1] the loop may work while iterations return true: after each such iteration it rests
   * (1 / share − 1) times as long as the iteration took, so that a backlog (a purge, a retention's deletes) leaves the
   * database room for other work. Default 1: the next iteration starts at once.
   */
  share?: number;
}

export interface Loop {
  /** Starts no new iteration; lets the one under way finish for up to `graceMs`, then aborts it and waits for it. */
  stop(graceMs?: number): Promise<void>;
}

export function startLoop(options: LoopOptions): Loop {
  const abort = new AbortController();
  let stopping = false;
  let wake: (() => void) | undefined;
  // Lag: how far the loop is behind its schedule — time since its last iteration ended, beyond its interval.
  let lastEnd = performance.now();
  const unobserve = observeGauge(METRIC.loopLag, { unit: "s", description: "How far each monitor loop is behind its schedule" }, () => [
    [Math.max(0, (performance.now() - lastEnd - options.intervalMs) / 1000), { loop: options.name }],
  ]);
  const done = (async () => {
    while (!stopping) {
      let more = false;
      const started = performance.now();
      try {
        more = (await withSpan(`monitor.${options.name}`, { root: true }, (span) => options.run(span, abort.signal))) === true;
      } catch (err) {
        if (!abort.signal.aborted) options.log.error({ err, loop: options.name }, "monitor loop iteration failed");
      }
      if (more && !stopping) await rest(restAfter(performance.now() - started, options.share ?? 1), abort.signal);
      lastEnd = performance.now();
      if (more || stopping) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  })();
  return {
    async stop(graceMs = 0) {
      stopping = true;
      wake?.();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([done, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      abort.abort();
      await done;
      unobserve();
    },
  };
}

/** How long to rest after a batch of work that took `tookMs`, so that the work takes `share` of the time (0–1]. */
export function restAfter(tookMs: number, share: number): number {
  return share >= 1 ? 0 : tookMs * (1 / share - 1);
}

/** Waits `ms`, or less when the loop is stopped (`signal` aborts when its grace period is over). */
function rest(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
