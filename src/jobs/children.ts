// Jobs created by a parent job (a fleet command's one per server), in SQL: written with the parent in its creation
// transaction as multi-row inserts, held (no outbox row, no deadline, never republished) until the parent releases
// them a few at a time, counted per state, and cancelled with the parent. The parent's attempt is the only releaser:
// every release locks the parent row and checks that the attempt still holds it.
import { sqlFragment, sqlJoin, type Sql, type SqlFragment, type SqlPool } from "../db/sql.js";
import type { ChildCounts, JobState } from "./model.js";
import { insertOutboxEntries, type OutboxRef } from "./outbox.js";
import type { NewJob } from "./new-job.js";
import { micros, type StartedJob } from "./attempt.js";

/** Rows per INSERT statement when writing children (all in the caller's one transaction). */
const INSERT_CHUNK = 500;

/** How a parent's children stand. `running` counts children released and not ended (queued for a worker or running). */

export const NO_CHILDREN: Readonly<ChildCounts> = { total: 0, pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };

/** Children that have ended. */
export function endedChildren(c: ChildCounts): number {
  return c.succeeded + c.failed + c.cancelled;
}

/**
 * Writes `children` of `parentId` in `tx` — held, QUEUED, with a "created" event each — in one INSERT per 500 jobs
 * and as many for their events: no outbox row and no deadline until they are released. Each child's resource names
 * its account (`resource.accountId`), so no row is read per child.
 */
export async function insertHeldChildren(tx: Sql, parentId: string, children: readonly NewJob[]): Promise<void> {
  for (let i = 0; i < children.length; i += INSERT_CHUNK) {
    const chunk = children.slice(i, i + INSERT_CHUNK);
    const jobRows = chunk.map(
      (j) => sqlFragment`(${j.id}, ${j.kind}, 'QUEUED', 0, ${j.maxAttempts}, ${JSON.stringify(j.payload ?? null)}, ${j.requestedBy},
        ${j.resource?.type ?? null}, ${j.resource ? j.resource.id : null}, ${j.resource?.accountId ?? null}, ${j.traceId}, ${j.traceparent}, 0,
        ${j.now}, ${j.now}, ${parentId}, 1)`,
    );
    await tx.execute`
      INSERT INTO jobs (id, kind, state, attempt, max_attempts, payload, requested_by, resource_type, resource_id, account_id,
                        trace_id, traceparent, publish_count, created_at, updated_at, parent_id, held)
      VALUES ${sqlJoin(jobRows, ", ")}`;
    const message = `waiting for job ${parentId} to release it`;
    const eventRows = chunk.map((j) => sqlFragment`(${j.id}, 1, 'created', NULL, 'QUEUED', 0, ${j.actor}, ${message}, ${j.now})`);
    await tx.execute`
      INSERT INTO job_events (job_id, sequence, type, from_state, to_state, attempt, actor, message, created_at)
      VALUES ${sqlJoin(eventRows, ", ")}`;
  }
}

/** Counts of the children of each parent (parents without children are absent). */
export async function childCounts(sql: Sql, parentIds: readonly string[]): Promise<Map<string, ChildCounts>> {
  const out = new Map<string, ChildCounts>();
  if (parentIds.length === 0) return out;
  const rows = await sql.query<{ parentId: string; state: JobState; held: number; n: bigint | number }>`
    SELECT parent_id AS parentId, state, held, COUNT(*) AS n FROM jobs WHERE parent_id IN (${parentIds}) GROUP BY parent_id, held, state`;
  for (const r of rows) {
    const c = out.get(r.parentId) ?? { ...NO_CHILDREN };
    addCount(c, r.state, Number(r.held) === 1, Number(r.n));
    out.set(r.parentId, c);
  }
  return out;
}

function addCount(c: ChildCounts, state: JobState, held: boolean, n: number): void {
  c.total += n;
  if (state === "SUCCEEDED") c.succeeded += n;
  else if (state === "FAILED") c.failed += n;
  else if (state === "CANCELLED") c.cancelled += n;
  else if (held) c.pending += n;
  else c.running += n;
}

/** Children released and not ended: what the concurrency limit counts. */
const RELEASED_UNENDED = sqlFragment`held = 0 AND state IN ('QUEUED', 'RUNNING')`;

/** The attempt of a parent that releases its children: (job, attempt) names one start, so one runner. */
export interface ParentAttempt {
  jobId: string;
  attempt: number;
}

/** The actor of the events a parent writes on its children. */
export const parentActor = (jobId: string): string => `job:${jobId}`;

export interface ReleaseInput extends ParentAttempt {
  /** Children running (released, not ended) at most, counting those already running. */
  maxRunning: number;
  /** Stop releasing once this many children failed. */
  errorBudget: number;
  /** A released child's deadline, from its release. */
  childTimeoutMs: number;
  subjectPrefix: string;
  /**
   * Start up to `max` of the children released (the first ones) in this transaction, RUNNING under `owner`'s lease,
   * with no outbox row: the caller runs them in slots it reserved (LocalStarts).
   */
  startHere?: { owner: string; leaseMs: number; max: number; runs(kind: string): boolean };
}

export type ReleaseRound =
  /** The attempt no longer holds the parent (it ended, or another attempt took it over). */
  | { status: "lost" }
  | {
      status: "ok";
      counts: ChildCounts;
      /** Publications of the children released by this round: hand them to a relay once the transaction committed. */
      released: OutboxRef[];
      /** Cancellation of the parent was requested: nothing is released, the children not started are cancelled. */
      cancelRequested: boolean;
      /** The error budget is spent: nothing more is released, the children not started are cancelled. */
      budgetSpent: boolean;
      /** Ids of the children released and not ended as the round left them (those it released among them). */
      live: string[];
      /** Children released and started by this round under `startHere.owner`: run them once the transaction committed. */
      startedHere: StartedJob[];
    };

/**
 * One round of a parent's supervision, in one transaction: lock the parent (its attempt must still hold it), count the
 * children, then — unless cancellation was requested or the error budget is spent, in which case the children not
 * started yet are cancelled — release held children, oldest first, until `maxRunning` run.
 */
export async function releaseRound(pool: SqlPool, input: ReleaseInput): Promise<ReleaseRound> {
  return pool.transaction(async (tx): Promise<ReleaseRound> => {
    // Statements sent together run in order on the connection (src/db/sql.ts), one round trip for each group: the
    // round is on the path from a child's end to the next child's release.
    const [[parent], unended] = await Promise.all([
      tx.query<{ state: JobState; attempt: number; cancelRequested: number }>`
        SELECT state, attempt, cancel_requested AS cancelRequested FROM jobs WHERE id = ${input.jobId} FOR UPDATE`,
      tx.query<{ id: string }>`SELECT id FROM jobs WHERE parent_id = ${input.jobId} AND ${RELEASED_UNENDED}`,
    ]);
    if (!parent || parent.state !== "RUNNING" || Number(parent.attempt) !== input.attempt) return { status: "lost" };
    const actor = parentActor(input.jobId);
    // Lock the released children that may still end (at most the limit), then count: a child ending right now
    // commits first and is counted, one ending later waits for this round. So no release is decided on counts that
    // miss a failure. Read under the parent's lock, that set can only shrink before its own lock (lockChildren).
    const ids = unended.map((r) => r.id);
    const [locked, byParent] = await Promise.all([
      ids.length > 0 ? tx.query<{ id: string }>`SELECT id FROM jobs FORCE INDEX (PRIMARY) WHERE id IN (${ids}) AND ${RELEASED_UNENDED} ORDER BY id FOR UPDATE` : [],
      childCounts(tx, [input.jobId]),
    ]);
    const live = locked.map((r) => r.id);
    const counts = byParent.get(input.jobId) ?? { ...NO_CHILDREN };
    const cancelRequested = Number(parent.cancelRequested) === 1;
    const budgetSpent = counts.failed >= input.errorBudget;
    if (cancelRequested || budgetSpent) {
      const why = cancelRequested ? `job ${input.jobId} was cancelled` : `job ${input.jobId} stopped: ${counts.failed} children failed (error budget ${input.errorBudget})`;
      const n = await cancelUnstartedChildren(tx, input.jobId, actor, why);
      moveCounts(counts, n);
      if (cancelRequested) await requestCancelOfRunningChildren(tx, input.jobId, actor, why);
      return { status: "ok", counts, released: [], cancelRequested, budgetSpent, live, startedHere: [] };
    }
    const room = Math.min(input.maxRunning - counts.running, counts.pending);
    if (room <= 0) return { status: "ok", counts, released: [], cancelRequested, budgetSpent, live, startedHere: [] };
    const rows = await tx.query<HeldRow>`
      SELECT id, kind, traceparent, attempt, max_attempts AS maxAttempts, payload, cancel_requested AS cancelRequested
        FROM jobs WHERE parent_id = ${input.jobId} AND held = 1 AND state = 'QUEUED' ORDER BY id LIMIT ${room} FOR UPDATE`;
    if (rows.length === 0) return { status: "ok", counts, released: [], cancelRequested, budgetSpent, live, startedHere: [] };
    const by = input.startHere;
    const here = by ? rows.filter((r) => startable(r) && by.runs(r.kind)).slice(0, by.max) : [];
    const published = rows.filter((r) => !here.includes(r));
    const released = rows.map((r) => r.id);
    const deadline = sqlFragment`NOW(3) + INTERVAL ${Math.max(0, Math.round(input.childTimeoutMs * 1000))} MICROSECOND`;
    // published_at now: the reconciler measures a lost message from it, and these were created long ago. The
    // statements run in order: the events read the attempts the starts' UPDATE wrote.
    const [, started, , , refs] = await Promise.all([
      published.length > 0
        ? tx.execute`
            UPDATE jobs SET held = 0, publish_count = 1, published_at = NOW(3), updated_at = NOW(3), deadline_at = ${deadline}
             WHERE id IN (${published.map((r) => r.id)})`
        : 0,
      here.length > 0 && input.startHere ? startReleased(tx, here.map((r) => r.id), input.startHere, deadline) : 0,
      appendEventsOf(tx, sqlFragment`j.id IN (${released})`, { type: "released", from: "QUEUED", to: "QUEUED", actor, message: `released by job ${input.jobId}` }),
      here.length > 0 && input.startHere
        ? appendEventsOf(tx, sqlFragment`j.id IN (${here.map((r) => r.id)})`, {
            type: "started",
            from: "QUEUED",
            to: "RUNNING",
            actor: input.startHere.owner,
            message: sqlFragment`CONCAT('attempt ', j.attempt, ' of ', j.max_attempts, ${` (started on release by job ${input.jobId})`})`,
          })
        : undefined,
      published.length > 0
        ? insertOutboxEntries(
            tx,
            published.map((r) => ({ jobId: r.id, kind: r.kind, traceparent: r.traceparent, subjectPrefix: input.subjectPrefix, publication: 1, attempt: 0 })),
          )
        : [],
    ]);
    if (started !== here.length) throw new Error(`children changed under their row locks (${started} of ${here.length} started)`);
    counts.pending -= rows.length;
    counts.running += rows.length;
    const deadlineInMs = input.childTimeoutMs;
    const startedHere = here.map((r): StartedJob => ({ id: r.id, kind: r.kind, attempt: r.attempt + 1, maxAttempts: r.maxAttempts, payload: r.payload, traceparent: r.traceparent, deadlineInMs }));
    return { status: "ok", counts, released: refs, cancelRequested, budgetSpent, live: [...live, ...released], startedHere };
  });
}

/** A held child as a release reads it: enough to publish it, or to start and run it. */
interface HeldRow {
  id: string;
  kind: string;
  traceparent: string | null;
  attempt: number;
  maxAttempts: number;
  payload: unknown;
  cancelRequested: number;
}

/** A held child that may start as it is released: attempts left and no cancellation asked (RUNNABLE_NOW's test; its deadline is new). */
function startable(r: HeldRow): boolean {
  return r.attempt < r.maxAttempts && Number(r.cancelRequested) !== 1;
}

/** Releases the held children `ids` (locked) straight to RUNNING under `owner`'s lease, as a worker's start does; rows changed. */
function startReleased(tx: Sql, ids: string[], by: { owner: string; leaseMs: number }, deadline: SqlFragment): Promise<number> {
  return tx.execute`
    UPDATE jobs SET held = 0, publish_count = 0, published_at = NOW(3), deadline_at = ${deadline}, state = 'RUNNING', attempt = attempt + 1,
           lease_owner = ${by.owner}, lease_expires_at = NOW(3) + INTERVAL ${micros(by.leaseMs)} MICROSECOND, next_check_at = NULL,
           started_at = COALESCE(started_at, NOW(3)), updated_at = NOW(3)
     WHERE id IN (${ids}) AND held = 1 AND state = 'QUEUED'`;
}

/** Counts after `n` pending-or-queued children were cancelled (held ones first, as cancelUnstartedChildren takes them). */
function moveCounts(c: ChildCounts, n: { held: number; queued: number }): void {
  c.pending -= n.held;
  c.running -= n.queued;
  c.cancelled += n.held + n.queued;
}

/**
 * Cancels the children of `parentId` that have not started: held ones and released ones still QUEUED (a worker that
 * receives one finds it ended and drops the message). Each gets a "cancelled" event. In the caller's transaction.
 */
export async function cancelUnstartedChildren(tx: Sql, parentId: string, actor: string, message: string): Promise<{ held: number; queued: number }> {
  const rows = await lockChildren<{ id: string; held: number }>(tx, parentId, sqlFragment`id, held`, sqlFragment`state = 'QUEUED'`);
  if (rows.length === 0) return { held: 0, queued: 0 };
  const ids = rows.map((r) => r.id);
  await tx.execute`
    UPDATE jobs SET state = 'CANCELLED', held = 0, error_code = 'CANCELLED', error_message = ${message}, ended_at = NOW(3), updated_at = NOW(3),
           lease_owner = NULL, lease_expires_at = NULL, next_check_at = NULL
     WHERE id IN (${ids}) AND state = 'QUEUED'`;
  await appendEventsOf(tx, sqlFragment`j.id IN (${ids})`, { type: "cancelled", from: "QUEUED", to: "CANCELLED", actor, message });
  const held = rows.filter((r) => Number(r.held) === 1).length;
  return { held, queued: rows.length - held };
}

/** Asks the running children of `parentId` to stop at their next checkpoint ("cancel_requested" events). */
export async function requestCancelOfRunningChildren(tx: Sql, parentId: string, actor: string, message: string): Promise<number> {
  const rows = await lockChildren<{ id: string }>(tx, parentId, sqlFragment`id`, sqlFragment`state = 'RUNNING' AND cancel_requested = 0`);
  if (rows.length === 0) return 0;
  const ids = rows.map((r) => r.id);
  await tx.execute`UPDATE jobs SET cancel_requested = 1, updated_at = NOW(3) WHERE id IN (${ids})`;
  await appendEventsOf(tx, sqlFragment`j.id IN (${ids})`, { type: "cancel_requested", from: "RUNNING", to: "RUNNING", actor, message });
  return ids.length;
}

/**
 * Held children whose parent ended without releasing them (its deadline passed, it ran out of attempts, it was
 * cancelled before it started) → CANCELLED, up to `limit` parents per call. Returns the children cancelled. The
 * reconciler runs it; each parent is one short transaction.
 */
export async function cancelOrphanedChildren(pool: SqlPool, options: { limit: number; actor: string }): Promise<number> {
  const parents = await pool.query<{ parentId: string; state: JobState }>`
    SELECT DISTINCT c.parent_id AS parentId, p.state FROM jobs c FORCE INDEX (jobs_held_idx) JOIN jobs p ON p.id = c.parent_id
     WHERE c.held = 1 AND c.state = 'QUEUED' AND p.state IN ('SUCCEEDED', 'FAILED', 'CANCELLED') LIMIT ${options.limit}`;
  let cancelled = 0;
  for (const p of parents) {
    const n = await pool.transaction(async (tx) => {
      const [row] = await tx.query<{ state: JobState }>`SELECT state FROM jobs WHERE id = ${p.parentId} FOR UPDATE`;
      if (!row || !["SUCCEEDED", "FAILED", "CANCELLED"].includes(row.state)) return 0;
      const r = await cancelUnstartedChildren(tx, p.parentId, options.actor, `job ${p.parentId} ended (${row.state}) before releasing it`);
      return r.held + r.queued;
    });
    cancelled += n;
  }
  return cancelled;
}

/**
 * Locks the children of `parentId` that `where` selects and returns them (`columns`) as they are under the lock, `where`
 * checked again. The lock goes through the primary key in id order, as every statement that locks several jobs does:
 * a locking read through the (parent, held, state) index would hold index records that a starting or ending child's
 * UPDATE must change while it waits for the row that UPDATE holds — a deadlock, after which the start was retried
 * 2 s later. A child that leaves the set between the read and the lock (it started or ended) is left out; one that
 * enters it (a retry back to QUEUED) is the next round's: a parent's rounds go on until its children are done.
 */
async function lockChildren<T>(tx: Sql, parentId: string, columns: SqlFragment, where: SqlFragment): Promise<T[]> {
  const ids = (await tx.query<{ id: string }>`SELECT id FROM jobs WHERE parent_id = ${parentId} AND ${where}`).map((r) => r.id);
  if (ids.length === 0) return [];
  return tx.query<T>`SELECT ${columns} FROM jobs FORCE INDEX (PRIMARY) WHERE id IN (${ids}) AND ${where} ORDER BY id FOR UPDATE`;
}

/** The next event of each job `where` selects (rows the transaction locked), with its attempt read from the job. */
async function appendEventsOf(tx: Sql, where: SqlFragment, e: { type: string; from: JobState; to: JobState; actor: string; message: string | SqlFragment }): Promise<void> {
  await tx.execute`
    INSERT INTO job_events (job_id, sequence, type, from_state, to_state, attempt, actor, message, created_at)
    SELECT j.id, COALESCE((SELECT MAX(x.sequence) FROM job_events x WHERE x.job_id = j.id), 0) + 1, ${e.type}, ${e.from}, ${e.to},
           j.attempt, ${e.actor}, ${e.message}, NOW(3)
      FROM jobs j WHERE ${where}`;
}
