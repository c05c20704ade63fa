// Data access for jobs: creating one (job + "created" event + outbox row in the caller's transaction), reading and
// listing (keyset pages), and the operator transitions cancel and retry. The job tables are reached through the `Sql`
// layer only (src/db/sql.ts): Prisma costs several times the driver's CPU per statement on the hot path.
import { sqlFragment, sqlJoin, type Sql, type SqlFragment, type SqlPool } from "../db/sql.js";
import { cancelUnstartedChildren } from "./children.js";
import type { NewJob } from "./new-job.js";
import { appendEvent } from "./events.js";
import type { Job, JobState, ResourceRef } from "./model.js";
import { enqueuePublication, insertOutboxEntries, type OutboxRef } from "./outbox.js";

const JOB_COLUMNS = sqlFragment`id, kind, state, attempt, max_attempts AS maxAttempts, progress_percent AS progressPercent,
  progress_message AS progressMessage, error_code AS errorCode, error_message AS errorMessage, error_details AS errorDetails,
  result, payload, requested_by AS requestedBy, resource_type AS resourceType, resource_id AS resourceId,
  idempotency_key AS idempotencyKey, trace_id AS traceId, cancel_requested AS cancelRequested, created_at AS createdAt,
  updated_at AS updatedAt, started_at AS startedAt, ended_at AS endedAt, deadline_at AS deadlineAt, parent_id AS parentId`;

interface JobRow {
  id: string;
  kind: string;
  state: string;
  attempt: number;
  maxAttempts: number;
  progressPercent: number;
  progressMessage: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  errorDetails: unknown;
  result: unknown;
  payload: unknown;
  requestedBy: string;
  resourceType: string | null;
  resourceId: string | null;
  idempotencyKey: string | null;
  traceId: string;
  cancelRequested: number | boolean;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
  deadlineAt: Date | null;
  parentId: string | null;
}

/** JSON columns arrive parsed through the driver adapter; a string (other drivers) is parsed here. */
function json(value: unknown): unknown {
  if (typeof value !== "string") return value ?? null;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

function record(value: unknown): Record<string, unknown> | null {
  const v = json(value);
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

export function rowToJob(r: JobRow): Job {
  const details = record(r.errorDetails);
  return {
    id: r.id,
    kind: r.kind,
    state: r.state as JobState,
    attempt: Number(r.attempt),
    maxAttempts: Number(r.maxAttempts),
    progressPercent: Number(r.progressPercent),
    progressMessage: r.progressMessage ?? "",
    error: r.errorCode || r.errorMessage ? { code: r.errorCode ?? "UNKNOWN", message: r.errorMessage ?? "", ...(details ? { details } : {}) } : null,
    result: record(r.result),
    payload: json(r.payload),
    requestedBy: r.requestedBy,
    resource: r.resourceType ? { type: r.resourceType, id: r.resourceId ?? "" } : null,
    idempotencyKey: r.idempotencyKey,
    traceId: r.traceId.trim(),
    cancelRequested: Boolean(Number(r.cancelRequested)),
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    startedAt: r.startedAt,
    endedAt: r.endedAt,
    deadlineAt: r.deadlineAt,
    parentId: r.parentId ?? null,
  };
}

export type { NewJob } from "./new-job.js";

/**
 * Writes each job (QUEUED, publication 1), its "created" event and its outbox row in `tx`: three statements whatever
 * the number of jobs, no read. A job with the same (requested_by, idempotency_key) as an existing one fails the first
 * statement with a unique violation before anything is written (MariaDB rolls back that statement only; the
 * transaction stays usable). Results in the order of `jobs`.
 *
 * `pipelined`: the jobs and their events go to the server together (two round trips instead of three). Only for a
 * transaction that rolls back when this throws: after a failed first statement the second has still run.
 */
export async function insertJobs(tx: Sql, jobs: NewJob[], options: { pipelined?: boolean } = {}): Promise<{ job: Job; outbox: OutboxRef }[]> {
  const jobRows = jobs.map(
    (j) => sqlFragment`(${j.id}, ${j.kind}, 'QUEUED', 0, ${j.maxAttempts}, ${JSON.stringify(j.payload ?? null)}, ${j.requestedBy},
      ${j.resource?.type ?? null}, ${j.resource ? j.resource.id : null}, ${accountOf(j.resource)}, ${j.idempotencyKey}, ${j.traceId},
      ${j.traceparent}, ${j.deadlineAt}, 1, ${j.now}, ${j.now})`,
  );
  const insertJobRows = (): Promise<number> => tx.execute`
    INSERT INTO jobs (id, kind, state, attempt, max_attempts, payload, requested_by, resource_type, resource_id, account_id,
                      idempotency_key, trace_id, traceparent, deadline_at, publish_count, created_at, updated_at)
    VALUES ${sqlJoin(jobRows, ", ")}`;
  const eventRows = jobs.map((j) => sqlFragment`(${j.id}, 1, 'created', NULL, 'QUEUED', 0, ${j.actor}, NULL, ${j.now})`);
  const insertEvents = (): Promise<number> => tx.execute`
    INSERT INTO job_events (job_id, sequence, type, from_state, to_state, attempt, actor, message, created_at)
    VALUES ${sqlJoin(eventRows, ", ")}`;
  const insertOutbox = (): Promise<OutboxRef[]> =>
    insertOutboxEntries(
      tx,
      jobs.map((j) => ({ jobId: j.id, kind: j.kind, traceparent: j.traceparent, tracestate: j.tracestate ?? null, subjectPrefix: j.subjectPrefix, publication: 1, attempt: 0 })),
    );
  let outbox: OutboxRef[];
  if (options.pipelined) {
    // The jobs and their events go together; both settle before this goes on (no reply left to arrive after the
    // caller's ROLLBACK) and the first failure, in statement order, is the one thrown. Should the jobs' INSERT abort
    // the transaction (a deadlock, a Galera abort), the events' INSERT runs alone and fails on its foreign key. The
    // outbox rows, which have no foreign key, follow only once both have succeeded inside the transaction.
    const settled = await Promise.allSettled([insertJobRows(), insertEvents()]);
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    outbox = await insertOutbox();
  } else {
    await insertJobRows();
    await insertEvents();
    outbox = await insertOutbox();
  }
  return jobs.map((j, i) => ({ job: queuedJob(j), outbox: outbox[i] as OutboxRef }));
}

/** The account_id a new job's row gets: named by the creator, the account itself, or its server's or resource's. */
function accountOf(resource: ResourceRef | null): SqlFragment {
  if (!resource) return sqlFragment`NULL`;
  if (resource.accountId) return sqlFragment`${resource.accountId}`;
  if (resource.type === "account") return sqlFragment`${resource.id}`;
  if (resource.type === "server") return sqlFragment`(SELECT account_id FROM servers WHERE id = ${resource.id})`;
  return sqlFragment`(SELECT account_id FROM resources WHERE id = ${resource.id} AND type = ${resource.type})`;
}

/** A job as insertJobs writes it. */
function queuedJob(j: NewJob): Job {
  return {
    id: j.id,
    kind: j.kind,
    state: "QUEUED",
    attempt: 0,
    maxAttempts: j.maxAttempts,
    progressPercent: 0,
    progressMessage: "",
    error: null,
    result: null,
    payload: j.payload,
    requestedBy: j.requestedBy,
    resource: j.resource,
    idempotencyKey: j.idempotencyKey,
    traceId: j.traceId,
    cancelRequested: false,
    // DATETIME(3) keeps milliseconds: what a later read returns.
    createdAt: new Date(j.now.getTime()),
    updatedAt: new Date(j.now.getTime()),
    startedAt: null,
    endedAt: null,
    deadlineAt: j.deadlineAt,
    parentId: null,
  };
}

export async function findJob(sql: Sql, id: string): Promise<Job | null> {
  const rows = await sql.query<JobRow>`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ${id}`;
  return rows[0] ? rowToJob(rows[0]) : null;
}

/**
 * The job a principal created with this idempotency key. With `lock`, a locking read: it sees a row another
 * transaction just committed (a plain read in REPEATABLE READ would not) — use it after a unique violation.
 */
export async function findJobByIdempotencyKey(sql: Sql, requestedBy: string, key: string, lock = false): Promise<Job | null> {
  const rows = await sql.query<JobRow>`
    SELECT ${JOB_COLUMNS} FROM jobs WHERE requested_by = ${requestedBy} AND idempotency_key = ${key} ${lock ? sqlFragment`LOCK IN SHARE MODE` : sqlFragment``}`;
  return rows[0] ? rowToJob(rows[0]) : null;
}

export interface JobFilter {
  state?: JobState | undefined;
  kind?: string | undefined;
  resourceType?: string | undefined;
  resourceId?: string | undefined;
  requestedBy?: string | undefined;
  /** Jobs whose resource is this account or one of its servers. */
  accountId?: string | undefined;
  /** Children of this job. */
  parentId?: string | undefined;
  /** created_at ≥ createdAfter and < createdBefore. */
  createdAfter?: Date | undefined;
  createdBefore?: Date | undefined;
  /** Object scope: only jobs this principal requested (applied on top of requestedBy). */
  ownedBy?: string | undefined;
  /**
   * Object scope: only jobs `userId` requested or whose resource belongs to one of `accountIds`
   * (applied on top of the other filters).
   */
  visibleTo?: { userId: string; accountIds: readonly string[] } | undefined;
}

/** Position after the last job of a page, in (created_at desc, id desc) order. */
export interface JobCursor {
  createdAt: Date;
  id: string;
}

/** Object scope of a job list (JobFilter.visibleTo) on the columns of `jobs`, for reads that join it. */
export function visibleToClause(scope: { userId: string; accountIds: readonly string[] }): SqlFragment {
  if (scope.accountIds.length === 0) return sqlFragment`requested_by = ${scope.userId}`;
  return sqlFragment`(requested_by = ${scope.userId} OR account_id IN (${scope.accountIds}))`;
}

/** The account a job's resource belongs to, for object scope; null when it has none or there is no such job. */
export async function accountOfJob(sql: Sql, jobId: string): Promise<string | null> {
  const [row] = await sql.query<{ accountId: string | null }>`SELECT account_id AS accountId FROM jobs WHERE id = ${jobId}`;
  return row?.accountId ?? null;
}

/** One page of jobs, newest first; `next` is null on the last page. */
/**
 * The statement of one ListJobs page: newest first, after `after`. Each filter has an index ending in created_at (and
 * InnoDB appends the id), so the page is an index range read whatever the table's size; a test EXPLAINs it.
 */
export function listJobsStatement(filter: JobFilter, after: JobCursor | null, limit: number): SqlFragment {
  const where: SqlFragment[] = [];
  if (filter.state) where.push(sqlFragment`state = ${filter.state}`);
  if (filter.kind) where.push(sqlFragment`kind = ${filter.kind}`);
  if (filter.resourceType) where.push(sqlFragment`resource_type = ${filter.resourceType}`);
  if (filter.resourceId) where.push(sqlFragment`resource_id = ${filter.resourceId}`);
  if (filter.requestedBy) where.push(sqlFragment`requested_by = ${filter.requestedBy}`);
  if (filter.ownedBy) where.push(sqlFragment`requested_by = ${filter.ownedBy}`);
  if (filter.accountId) where.push(sqlFragment`account_id = ${filter.accountId}`);
  if (filter.parentId) where.push(sqlFragment`parent_id = ${filter.parentId}`);
  if (filter.createdAfter) where.push(sqlFragment`created_at >= ${filter.createdAfter}`);
  if (filter.createdBefore) where.push(sqlFragment`created_at < ${filter.createdBefore}`);
  if (filter.visibleTo) where.push(visibleToClause(filter.visibleTo));
  if (after) where.push(sqlFragment`(created_at < ${after.createdAt} OR (created_at = ${after.createdAt} AND id < ${after.id}))`);
  const clause = where.length > 0 ? sqlFragment`WHERE ${sqlJoin(where, " AND ")}` : sqlFragment``;
  return sqlFragment`SELECT ${JOB_COLUMNS} FROM jobs ${clause} ORDER BY created_at DESC, id DESC LIMIT ${limit + 1}`;
}

export async function listJobs(sql: Sql, filter: JobFilter, after: JobCursor | null, limit: number): Promise<{ jobs: Job[]; next: JobCursor | null }> {
  const rows = await sql.query<JobRow>`${listJobsStatement(filter, after, limit)}`;
  const jobs = rows.slice(0, limit).map(rowToJob);
  const last = jobs[jobs.length - 1];
  return { jobs, next: rows.length > limit && last ? { createdAt: last.createdAt, id: last.id } : null };
}

export type CancelOutcome =
  | { outcome: "cancelled" | "requested" | "already_requested"; job: Job }
  | { outcome: "finished"; job: Job }
  | { outcome: "not_found" };

/**
 * Cancels a job by compare-and-set: QUEUED → CANCELLED at once; RUNNING → cancel_requested (the handler stops at its
 * next checkpoint). A finished job is reported, not changed. Each change and its event commit together.
 */
export async function cancelJob(pool: SqlPool, id: string, actor: string, reason: string): Promise<CancelOutcome> {
  const message = reason || "cancelled on request";
  // A job can move RUNNING → QUEUED (retry scheduled) between the two compare-and-sets: try again then.
  for (let round = 0; round < 5; round++) {
    const outcome = await pool.transaction(async (tx): Promise<CancelOutcome | null> => {
      const cancelled = await tx.execute`
        UPDATE jobs SET state = 'CANCELLED', held = 0, error_code = 'CANCELLED', error_message = ${message}, ended_at = NOW(3),
                        updated_at = NOW(3), lease_owner = NULL, lease_expires_at = NULL, next_check_at = NULL
         WHERE id = ${id} AND state = 'QUEUED'`;
      if (cancelled === 1) {
        const attempt = await attemptOf(tx, id);
        await appendEvent(tx, { jobId: id, type: "cancelled", fromState: "QUEUED", toState: "CANCELLED", attempt, actor, message });
        // A parent cancelled before it started never releases its children: they end with it.
        await cancelUnstartedChildren(tx, id, actor, `job ${id} was cancelled`);
        return { outcome: "cancelled", job: (await findJob(tx, id)) as Job };
      }
      const requested = await tx.execute`
        UPDATE jobs SET cancel_requested = 1, updated_at = NOW(3) WHERE id = ${id} AND state = 'RUNNING' AND cancel_requested = 0`;
      if (requested === 1) {
        const attempt = await attemptOf(tx, id);
        await appendEvent(tx, { jobId: id, type: "cancel_requested", fromState: "RUNNING", toState: "RUNNING", attempt, actor, message });
        return { outcome: "requested", job: (await findJob(tx, id)) as Job };
      }
      const job = await findJob(tx, id);
      if (!job) return { outcome: "not_found" };
      if (job.state === "RUNNING") return { outcome: "already_requested", job };
      if (job.state === "QUEUED") return null;
      return { outcome: "finished", job };
    });
    if (outcome) return outcome;
  }
  throw new Error(`job ${id} kept changing state while being cancelled`);
}

async function attemptOf(tx: Sql, id: string): Promise<number> {
  const rows = await tx.query<{ attempt: number }>`SELECT attempt FROM jobs WHERE id = ${id}`;
  return Number(rows[0]?.attempt ?? 0);
}

export interface RetryRequest {
  id: string;
  actor: string;
  /** Added to max_attempts: the kind's own maxAttempts, so the new run gets as many attempts as a first one. */
  addAttempts: number;
  /** The new run's deadline (the kind's timeout from now). */
  deadlineAt: Date;
  /** A key recorded with the "retried" event: the same key again returns the job without another retry. */
  idempotencyKey: string | null;
  subjectPrefix: string;
}

export type RetryOutcome =
  | { outcome: "retried"; job: Job; outbox: OutboxRef }
  | { outcome: "replayed"; job: Job }
  | { outcome: "not_retryable"; job: Job }
  | { outcome: "not_found" };

/** The message of a "retried" event, carrying the request's idempotency key when it had one. */
export function retriedMessage(key: string | null): string {
  return key ? `retried (idempotency key ${JSON.stringify(key)})` : "retried";
}

/**
 * FAILED or CANCELLED → QUEUED with a fresh error-free state and one more publication; marks the job's dead letters
 * replayed. Locks the job row first (retry is rare; a plain lock is simpler than a compare-and-set loop).
 */
export async function retryJob(pool: SqlPool, r: RetryRequest): Promise<RetryOutcome> {
  return pool.transaction(async (tx): Promise<RetryOutcome> => {
    const locked = await tx.query<{ state: JobState; kind: string; attempt: number; traceparent: string | null }>`
      SELECT state, kind, attempt, traceparent FROM jobs WHERE id = ${r.id} FOR UPDATE`;
    const row = locked[0];
    if (!row) return { outcome: "not_found" };
    if (r.idempotencyKey) {
      const seen = await tx.query<{ n: number }>`
        SELECT 1 AS n FROM job_events WHERE job_id = ${r.id} AND type = 'retried' AND message = ${retriedMessage(r.idempotencyKey)} LIMIT 1`;
      if (seen.length > 0) return { outcome: "replayed", job: (await findJob(tx, r.id)) as Job };
    }
    if (row.state !== "FAILED" && row.state !== "CANCELLED") return { outcome: "not_retryable", job: (await findJob(tx, r.id)) as Job };
    await tx.execute`
      UPDATE jobs SET state = 'QUEUED', max_attempts = max_attempts + ${r.addAttempts}, error_code = NULL, error_message = NULL,
                      error_details = NULL, result = NULL, cancel_requested = 0, lease_owner = NULL, lease_expires_at = NULL,
                      next_check_at = NULL, checks = 0, progress_percent = 0, progress_message = NULL, ended_at = NULL,
                      deadline_at = ${r.deadlineAt}, updated_at = NOW(3)
       WHERE id = ${r.id}`;
    await appendEvent(tx, { jobId: r.id, type: "retried", fromState: row.state, toState: "QUEUED", attempt: Number(row.attempt), actor: r.actor, message: retriedMessage(r.idempotencyKey) });
    await tx.execute`UPDATE dead_letters SET replayed_at = NOW(3) WHERE job_id = ${r.id} AND replayed_at IS NULL`;
    const outbox = await enqueuePublication(tx, { jobId: r.id, kind: row.kind, traceparent: row.traceparent, subjectPrefix: r.subjectPrefix });
    return { outcome: "retried", job: (await findJob(tx, r.id)) as Job, outbox };
  });
}
