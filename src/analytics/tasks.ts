// The monitor's analytics work: roll-ups, cost accrual with budget usage, and retention (raw samples, hourly detail)
// — each a loop of its own (src/monitor/loop.ts). When the analytics database is down they log one warning, skip
// their runs, and say so again when it is back; nothing else in the monitor waits for them.
import type { Config } from "../config.js";
import type { SqlPool } from "../db/sql.js";
import type { Logger } from "../log.js";
import { startLoop, type Loop } from "../monitor/loop.js";
import { runAccrual } from "./accrual.js";
import { accrueResources, resourceRates } from "../resources/accrual.js";
import { updateBudgetUsage } from "./budget-usage.js";
import { rollUpCostDays } from "./cost-days.js";
import { analyticsOutageGuard } from "./db.js";
import { pruneCostHours, pruneHourlyRollups, pruneRawSamples } from "./retention.js";
import { runRollups } from "./rollup.js";

export interface AnalyticsTaskOptions {
  config: Pick<Config, "analytics">;
  log: Logger;
  /** The provisioning database (servers, server events, budget codes). */
  sql: SqlPool;
  analytics: SqlPool;
  now: () => Date;
}

export interface AnalyticsTasks {
  stop(graceMs?: number): Promise<void>;
}

export function startAnalyticsTasks(options: AnalyticsTaskOptions): AnalyticsTasks {
  const { config, sql, analytics, now } = options;
  const log = options.log.child({ component: "analytics" });
  /** Runs `fn`; an unavailable analytics database is one warning per outage, not an error per run. */
  const guarded = analyticsOutageGuard(log, {
    down: "analytics database unavailable: roll-ups and cost accrual paused (launches and jobs are not affected)",
    back: "analytics database is back: roll-ups and cost accrual resume",
  });
  const loops: Loop[] = [
    startLoop({
      name: "analytics.rollup",
      intervalMs: config.analytics.rollupIntervalMs,
      log,
      run: () =>
        guarded(async () => {
          const run = await runRollups(analytics, now());
          return run?.more ?? false;
        }),
    }),
    startLoop({
      name: "analytics.accrual",
      intervalMs: config.analytics.accrualIntervalMs,
      log,
      run: (span) =>
        guarded(async () => {
          const t = now();
          const run = await runAccrual(sql, analytics, t);
          await accrueResources(sql, analytics, run.from, run.to);
          if (run.more) return true;
          const changed = await updateBudgetUsage(sql, analytics, t, await resourceRates(sql));
          span.setAttribute("analytics.budget_codes_changed", changed.length);
          const days = await rollUpCostDays(analytics, t);
          span.setAttribute("analytics.cost_days_summed", days.days);
          return days.more;
        }),
    }),
    // Apart from the roll-ups and the accrual, so that a backlog's passes (after an upgrade, or a shorter retention)
    // repeat only deletes, not a roll-up's rescan of raw samples; between full passes it rests, keeping to its share
    // of the database's time.
    startLoop({
      name: "analytics.retention",
      intervalMs: config.analytics.rollupIntervalMs,
      log,
      share: config.analytics.retentionShare,
      run: (span) =>
        guarded(async () => {
          const t = now();
          const { rawRetentionMs, hourlyRetentionDays: days, retentionBatchSize: batch } = config.analytics;
          const samples = await pruneRawSamples(analytics, t, rawRetentionMs, batch);
          const rollups = await pruneHourlyRollups(analytics, t, days, batch);
          const costs = await pruneCostHours(analytics, t, days, batch);
          span.setAttribute("analytics.samples_pruned", samples.deleted);
          span.setAttribute("analytics.hourly_rollups_pruned", rollups.deleted);
          span.setAttribute("analytics.cost_hours_pruned", costs.deleted);
          return samples.more || rollups.more || costs.more;
        }),
    }),
  ];
  return {
    async stop(graceMs = 0) {
      await Promise.all(loops.map((l) => l.stop(graceMs)));
    },
  };
}
