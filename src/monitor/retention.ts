// Retention: finished jobs older than the configured age leave the provisioning database in small batches, with their
// events (cascade), dead letters, effect rows and children (a fleet command's), so the jobs table does not grow without
// bound. Safe with several monitors: each batch locks the rows it deletes and skips those another monitor holds.
import { sqlFragment, type SqlFragment, type SqlPool } from "../db/sql.js";
import { micros } from "../jobs/execution.js";
import type { Logger } from "../log.js";
import { startLoop, type Loop } from "./loop.js";

export interface RetentionOptions {
  sql: SqlPool;
  log: Logger;
  /** Finished jobs whose end is older than this many days are purged; 0 keeps every job. */
  retentionDays: number;
  /** Jobs per batch (one short transaction each). */
  batch: number;
  /**
   * Share of the time a backlog's purge works (0–1]: after a full batch it rests (1 / share − 1) times as long as the
   * batch took. A million aged jobs purged flat out take most of a small database's time from job creation.
   */
  share: number;
  intervalMs: number;
}

export interface PurgeResult {
  jobs: number;
  deadLetters: number;
}

/**
 * Deletes up to `limit` finished jobs that ended more than `olderThanMs` ago (by the database's clock, which every
 * replica shares), oldest first, with their events, dead letters and diagnostic effect rows.
 */
export async function purgeFinishedJobs(sql: SqlPool, options: { olderThanMs: number; limit: number }): Promise<PurgeResult> {
  return sql.transaction(async (tx) => {
    // ended_at is set exactly when a job reaches a final state (and cleared by a retry), so the index on it finds the
    // candidates; the state test keeps a job that a retry just moved back to QUEUED.
    // Children go with their parent (below), never on their own: a parent's history keeps its children while it lasts.
    const rows = await tx.query<{ id: string }>`
      SELECT id FROM jobs FORCE INDEX (jobs_ended_at_idx)
       WHERE ended_at < NOW(3) - INTERVAL ${micros(options.olderThanMs)} MICROSECOND AND state IN ('SUCCEEDED', 'FAILED', 'CANCELLED')
         AND parent_id IS NULL
       ORDER BY ended_at LIMIT ${options.limit} FOR UPDATE SKIP LOCKED`;
    if (rows.length === 0) return { jobs: 0, deadLetters: 0 };
    const out = { jobs: 0, deadLetters: 0 };
    for (let i = 0; i < rows.length; i += PURGE_IN_CHUNK) {
      const ids = rows.slice(i, i + PURGE_IN_CHUNK).map((r) => r.id);
      // Dead letters and diagnostic jobs' effect rows name their job without a foreign key: they go with it.
      out.deadLetters += await tx.execute`DELETE d FROM dead_letters d JOIN jobs c ON c.id = d.job_id WHERE c.parent_id IN (${ids})`;
      await tx.execute`DELETE e FROM diagnostic_effects e JOIN jobs c ON c.id = e.job_id WHERE c.parent_id IN (${ids})`;
      out.jobs += await tx.execute`${deleteChildrenStatement(ids)}`;
      out.deadLetters += await tx.execute`DELETE FROM dead_letters WHERE job_id IN (${ids})`;
      await tx.execute`DELETE FROM diagnostic_effects WHERE job_id IN (${ids})`;
      out.jobs += await tx.execute`DELETE FROM jobs WHERE id IN (${ids})`;
    }
    return out;
  });
}

/**
 * Ids per IN list in a purge's statements. From 200 values on (`eq_range_index_dive_limit`) MariaDB estimates an IN
 * list from index statistics, and as almost every job's parent_id is NULL it then reads the whole jobs table to find a
 * batch's few children — a million rows for each batch of 1,000 (and from 1,000 values it turns the list into a
 * derived table, which a DELETE cannot read through an index at all). Short lists keep every statement a lookup.
 */
export const PURGE_IN_CHUNK = 100;

/** The children of `parentIds`, through the parent index (test/monitor/retention.test.ts EXPLAINs it). */
export function deleteChildrenStatement(parentIds: readonly string[]): SqlFragment {
  return sqlFragment`DELETE FROM jobs WHERE parent_id IN (${parentIds})`;
}

/** The monitor's retention loop; a stopped loop when retention is off (0 days). */
export function startRetention(options: RetentionOptions): Loop {
  const log = options.log.child({ component: "retention" });
  if (options.retentionDays <= 0) return { stop: async () => undefined };
  return startLoop({
    name: "retention",
    intervalMs: options.intervalMs,
    log,
    // A full batch: more may be due, so the loop goes again after a rest that keeps the purge to its share of the time.
    share: options.share,
    async run(span) {
      const olderThanMs = options.retentionDays * 86_400_000;
      const purged = await purgeFinishedJobs(options.sql, { olderThanMs, limit: options.batch });
      span.setAttribute("dispatcher.purged_jobs", purged.jobs);
      if (purged.jobs > 0) log.info({ jobs: purged.jobs, deadLetters: purged.deadLetters, retentionDays: options.retentionDays }, "purged finished jobs past retention");
      return purged.jobs >= options.batch;
    },
  });
}
