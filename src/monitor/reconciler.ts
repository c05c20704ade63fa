// The reconciler: every few seconds, fails jobs past their deadline, requeues and republishes jobs whose worker
// stopped renewing its lease, and republishes jobs left queued too long (their message may be lost).
import type { JobExecution } from "../jobs/execution.js";
import { startLoop, type Loop } from "./loop.js";
import { cancelOrphanedChildren } from "../jobs/children.js";
import { failPastDeadline, republishQueued, requeueExpiredLeases, type Republish } from "./queries.js";
import type { MonitorResources } from "./resources.js";

export interface ReconcilerOptions<R> {
  resources: Pick<MonitorResources, "log" | "config">;
  ex: JobExecution;
  /** Writes a new publication in the caller's transaction (enqueuePublication of src/jobs/outbox.ts). */
  republish: Republish<R>;
  /** Called after commit with what `republish` returned (e.g. to hand the entries to the relay's fast path). */
  onPublished?: (published: R[]) => void;
  /** Default config.jobs.reconcileIntervalMs. */
  intervalMs?: number;
  /** Default config.jobs.republishAfterMs. */
  republishAfterMs?: number;
  /** Jobs each sweep takes per iteration. Default 200. */
  batch?: number;
}

const ACTOR = "monitor";

export function startReconciler<R>(options: ReconcilerOptions<R>): Loop {
  const { resources, ex, republish } = options;
  const batch = options.batch ?? 200;
  const log = resources.log.child({ component: "reconciler" });
  return startLoop({
    name: "reconcile",
    intervalMs: options.intervalMs ?? resources.config.jobs.reconcileIntervalMs,
    log,
    async run(span) {
      // Deadlines first: a job past its deadline is failed rather than requeued.
      const timedOut = await failPastDeadline(ex, { limit: batch, actor: ACTOR });
      const expired = await requeueExpiredLeases(ex, { limit: batch, actor: ACTOR, republish });
      const olderThanMs = options.republishAfterMs ?? resources.config.jobs.republishAfterMs;
      const queued = await republishQueued(ex, { olderThanMs, limit: batch, actor: ACTOR, republish });
      const published = [...expired.published, ...queued.published];
      if (published.length > 0) options.onPublished?.(published);
      // Held children of a parent that ended without releasing them (deadline, attempts, cancelled before it started).
      const orphans = await cancelOrphanedChildren(ex.deps.sql, { limit: batch, actor: ACTOR });
      const counts = { "monitor.timed_out": timedOut, "monitor.leases_expired": expired.changed, "monitor.republished": queued.changed, "monitor.orphans_cancelled": orphans };
      span.setAttributes(counts);
      if (timedOut + expired.changed + queued.changed + orphans > 0) log.info(counts, "reconciled jobs");
      return timedOut >= batch || expired.changed >= batch || queued.changed >= batch;
    },
  });
}
