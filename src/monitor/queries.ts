// The monitor's SQL: claiming due completion checks, and the reconciler's sweeps (expired worker leases, jobs queued
// too long, deadlines). Safe with several monitors: claims skip locked rows and every change re-checks its condition.
import type { Sql } from "../db/sql.js";
import { MONITOR_OWNER, micros, type JobExecution } from "../jobs/execution.js";
import type { JobState } from "../jobs/model.js";

/** A pending job the monitor claimed for one completion check. */
export interface DueCheck {
  jobId: string;
  kind: string;
  attempt: number;
  payload: unknown;
  traceparent: string | null;
  /** Checks so far, this one included. */
  checks: number;
  cancelRequested: boolean;
  /** Milliseconds left before the deadline (database clock; ≤ 0: past it), null without one. */
  deadlineInMs: number | null;
}

/** Writes a new publication of a job in the caller's transaction (enqueuePublication of src/jobs/outbox.ts). */
export type Republish<R> = (tx: Sql, job: { jobId: string; kind: string; traceparent: string | null }) => Promise<R>;

interface DueRow {
  id: string;
  kind: string;
  attempt: number;
  payload: unknown;
  traceparent: string | null;
  checks: number;
  cancelRequested: number;
  deadlineInMs: bigint | number | null;
}

/**
 * Claims up to `limit` due checks: moves each one's next_check_at `claimMs` ahead (so another monitor leaves it alone
 * while this one checks, and takes it again if this one dies) and counts the check. Rows another monitor holds are skipped.
 */
export async function claimDueChecks(ex: JobExecution, options: { limit: number; claimMs: number }): Promise<DueCheck[]> {
  // Scanning next_check_at in order (forced: the optimizer may prefer another index plus a sort, which reads and
  // locks every due row) under READ COMMITTED, so a claim locks only the rows it takes and monitors share the work.
  return ex.transaction("claim_checks", null, async (tx) => {
    const rows = await tx.query<DueRow>`
      SELECT id, kind, attempt, payload, traceparent, checks, cancel_requested AS cancelRequested,
             TIMESTAMPDIFF(MICROSECOND, NOW(3), deadline_at) DIV 1000 AS deadlineInMs
        FROM jobs FORCE INDEX (jobs_next_check_at_idx)
       WHERE next_check_at <= NOW(3) AND state = 'RUNNING' AND lease_owner = ${MONITOR_OWNER}
       ORDER BY next_check_at LIMIT ${options.limit} FOR UPDATE SKIP LOCKED`;
    if (rows.length === 0) return [];
    await tx.execute`
      UPDATE jobs SET next_check_at = NOW(3) + INTERVAL ${micros(options.claimMs)} MICROSECOND, checks = checks + 1
       WHERE id IN (${rows.map((r) => r.id)})`;
    return rows.map((r) => ({
      jobId: r.id,
      kind: r.kind,
      attempt: r.attempt,
      payload: r.payload,
      traceparent: r.traceparent,
      checks: r.checks + 1,
      cancelRequested: Number(r.cancelRequested) === 1,
      deadlineInMs: r.deadlineInMs === null ? null : Number(r.deadlineInMs),
    }));
  }, "READ COMMITTED");
}

export interface SweepResult<R> {
  /** Jobs changed by the sweep. */
  changed: number;
  /** What `republish` returned for each job it published again (hand them to the relay after commit). */
  published: R[];
}

interface ExpiredRow {
  id: string;
  kind: string;
  attempt: number;
  maxAttempts: number;
  traceparent: string | null;
  cancelRequested: number;
  leaseOwner: string | null;
  deadlineInMs: bigint | number | null;
}

/**
 * RUNNING jobs whose worker stopped renewing its lease → QUEUED ("lease_expired") and published again; or CANCELLED
 * when cancellation was requested, FAILED (+ dead letter) when that was the last attempt. One transaction per job.
 */
export async function requeueExpiredLeases<R>(ex: JobExecution, options: { limit: number; actor: string; republish: Republish<R> }): Promise<SweepResult<R>> {
  const candidates = await ex.deps.sql.query<{ id: string }>`
    SELECT id FROM jobs WHERE state = 'RUNNING' AND lease_expires_at < NOW(3) AND lease_owner <> ${MONITOR_OWNER}
     ORDER BY lease_expires_at LIMIT ${options.limit}`;
  const result: SweepResult<R> = { changed: 0, published: [] };
  for (const { id } of candidates) {
    const done = await ex.transaction("requeue_expired", { id }, async (tx) => {
      const rows = await tx.query<ExpiredRow>`
        SELECT id, kind, attempt, max_attempts AS maxAttempts, traceparent, cancel_requested AS cancelRequested,
               lease_owner AS leaseOwner, TIMESTAMPDIFF(MICROSECOND, NOW(3), deadline_at) DIV 1000 AS deadlineInMs
          FROM jobs WHERE id = ${id} AND state = 'RUNNING' AND lease_expires_at < NOW(3) AND lease_owner <> ${MONITOR_OWNER}
           FOR UPDATE SKIP LOCKED`;
      const row = rows[0];
      if (!row) return null;
      const ref = { jobId: row.id, kind: row.kind, attempt: row.attempt, owner: options.actor };
      await ex.event(tx, ref, "lease_expired", "RUNNING", "QUEUED", options.actor, `attempt ${row.attempt} stopped renewing its lease (owner ${row.leaseOwner})`);
      const job = { cancelRequested: Number(row.cancelRequested) === 1, deadlineInMs: row.deadlineInMs === null ? null : Number(row.deadlineInMs), maxAttempts: row.maxAttempts };
      if (await ex.endIfUnrunnable(tx, ref, job, options.actor)) return { published: [] as R[] };
      await tx.execute`
        UPDATE jobs SET state = 'QUEUED', lease_owner = NULL, lease_expires_at = NULL, published_at = NOW(3), updated_at = NOW(3)
         WHERE id = ${row.id}`;
      return { published: [await options.republish(tx, { jobId: row.id, kind: row.kind, traceparent: row.traceparent })] };
    });
    if (!done) continue;
    ex.ring(id);
    result.changed++;
    result.published.push(...done.published);
  }
  return result;
}

/**
 * QUEUED jobs (not held: a held child waits for its parent, src/jobs/children.ts) last published (or, never
 * published, created) more than `olderThanMs` ago: the message may be lost, so
 * publish them again under a new message id, with a "republished" event. A duplicate is harmless: starting is a CAS.
 * A job whose last publication has not reached JetStream yet (NATS down: the relay holds it) is left alone, since
 * another would not go out either; and republishes in a row are one event whose count grows, not one event each.
 */
export async function republishQueued<R>(
  ex: JobExecution,
  options: { olderThanMs: number; limit: number; actor: string; republish: Republish<R> },
): Promise<SweepResult<R>> {
  const age = micros(options.olderThanMs);
  const candidates = await ex.deps.sql.query<{ id: string }>`
    SELECT id FROM jobs WHERE state = 'QUEUED' AND held = 0 AND COALESCE(published_at, created_at) < NOW(3) - INTERVAL ${age} MICROSECOND
       AND id NOT IN (SELECT job_id FROM outbox_entries)
     LIMIT ${options.limit}`;
  const result: SweepResult<R> = { changed: 0, published: [] };
  for (const { id } of candidates) {
    const published = await ex.transaction("republish", { id }, async (tx) => {
      const rows = await tx.query<{ id: string; kind: string; attempt: number; traceparent: string | null; publishCount: number }>`
        SELECT id, kind, attempt, traceparent, publish_count AS publishCount FROM jobs
         WHERE id = ${id} AND state = 'QUEUED' AND held = 0 AND COALESCE(published_at, created_at) < NOW(3) - INTERVAL ${age} MICROSECOND
           FOR UPDATE SKIP LOCKED`;
      const row = rows[0];
      if (!row) return null;
      await tx.execute`UPDATE jobs SET published_at = NOW(3), updated_at = NOW(3) WHERE id = ${row.id}`;
      await recordRepublish(ex, tx, { ...row, olderThanMs: options.olderThanMs, actor: options.actor });
      return options.republish(tx, { jobId: row.id, kind: row.kind, traceparent: row.traceparent });
    });
    if (published === null) continue;
    ex.ring(id);
    result.changed++;
    result.published.push(published);
  }
  return result;
}

/** QUEUED or RUNNING jobs past their deadline → FAILED (DEADLINE_EXCEEDED) with a "timed_out" event. */
export async function failPastDeadline(ex: JobExecution, options: { limit: number; actor: string }): Promise<number> {
  const candidates = await ex.deps.sql.query<{ id: string }>`
    SELECT id FROM jobs WHERE state IN ('QUEUED', 'RUNNING') AND deadline_at < NOW(3) LIMIT ${options.limit}`;
  let changed = 0;
  for (const { id } of candidates) {
    const done = await ex.transaction("time_out", { id }, async (tx) => {
      const rows = await tx.query<{ id: string; kind: string; state: JobState; attempt: number; owner: string | null; checks: number }>`
        SELECT id, kind, state, attempt, lease_owner AS owner, checks FROM jobs
         WHERE id = ${id} AND state IN ('QUEUED', 'RUNNING') AND deadline_at < NOW(3) FOR UPDATE SKIP LOCKED`;
      const row = rows[0];
      if (!row) return false;
      const message = timeoutMessage(row);
      await tx.execute`
        UPDATE jobs SET state = 'FAILED', held = 0, error_code = 'DEADLINE_EXCEEDED', error_message = ${message}, error_details = NULL,
               lease_owner = NULL, lease_expires_at = NULL, next_check_at = NULL, ended_at = NOW(3), updated_at = NOW(3)
         WHERE id = ${row.id}`;
      await ex.event(tx, { jobId: row.id, kind: row.kind, attempt: row.attempt, owner: options.actor }, "timed_out", row.state, "FAILED", options.actor, `DEADLINE_EXCEEDED: ${message}`);
      return true;
    });
    if (!done) continue;
    ex.ring(id);
    changed++;
  }
  return changed;
}

/** Why a job timed out, in words an operator reads on the job. */
export function timeoutMessage(job: { kind: string; state: JobState; attempt: number; owner: string | null; checks: number }): string {
  if (job.state === "QUEUED") return job.attempt === 0 ? `timed out before ${job.kind} could start` : `timed out waiting to retry ${job.kind} after attempt ${job.attempt}`;
  if (job.owner === MONITOR_OWNER) return `timed out waiting for ${job.kind} to complete (${job.checks} checks)`;
  return `timed out while attempt ${job.attempt} of ${job.kind} was running`;
}

/** "(3 times in a row)" at the end of a republished event's message. */
const IN_A_ROW = /\((\d+) times? in a row\)$/;

/**
 * The "republished" event of a republish: a new one, or — when the job's last event is already one (nothing happened
 * to the job since) — that one, its message now counting the republishes in a row.
 */
async function recordRepublish(
  ex: JobExecution,
  tx: Sql,
  job: { id: string; kind: string; attempt: number; publishCount: number; olderThanMs: number; actor: string },
): Promise<void> {
  const last = (await tx.query<{ sequence: number; type: string; message: string | null }>`
    SELECT sequence, type, message FROM job_events WHERE job_id = ${job.id} ORDER BY sequence DESC LIMIT 1`)[0];
  const previous = last?.type === "republished" ? Number(IN_A_ROW.exec(last.message ?? "")?.[1] ?? 1) : 0;
  const times = previous + 1;
  const message =
    `publication ${job.publishCount} reached JetStream but no worker started the job within ${Math.round(job.olderThanMs / 1000)} s; ` +
    `published again as publication ${job.publishCount + 1} (${times} ${times === 1 ? "time" : "times"} in a row)`;
  if (last && previous > 0) {
    await tx.execute`UPDATE job_events SET message = ${message} WHERE job_id = ${job.id} AND sequence = ${last.sequence}`;
    return;
  }
  await ex.event(tx, { jobId: job.id, kind: job.kind, attempt: job.attempt, owner: job.actor }, "republished", "QUEUED", "QUEUED", job.actor, message);
}
