// One attempt of a job as the SQL that runs it sees it: who holds it, what a start and each outcome take and give,
// and the job row's start columns and runnable condition.
import type { NatsConnection } from "@nats-io/transport-node";
import { sqlFragment, type Sql, type SqlPool } from "../db/sql.js";
import type { JobError, JobState } from "./model.js";

/** lease_owner of a job waiting for completion by observation: the monitor, not any one worker, holds it. */
export const MONITOR_OWNER = "monitor";

/** One attempt of a job as its runner (a worker, or the monitor) holds it. */
export interface AttemptRef {
  jobId: string;
  kind: string;
  attempt: number;
  /** lease_owner the attempt runs under: a worker's id, or MONITOR_OWNER. */
  owner: string;
}

/** What a worker needs to run the attempt it just started. */
export interface StartedJob {
  id: string;
  kind: string;
  attempt: number;
  maxAttempts: number;
  payload: unknown;
  traceparent: string | null;
  /** Milliseconds left before the job's deadline, on the database clock; null when it has none. */
  deadlineInMs: number | null;
}

export type StartResult =
  | { status: "started"; job: StartedJob; tookOver: boolean }
  /**
   * Nothing to run: a duplicate or stale delivery, a job that is running elsewhere or already ended. `leaseInMs`: the
   * job runs under another worker's lease that ends this many milliseconds from now (the delivery may be the one that
   * should take the job over once that lease runs out).
   */
  | { status: "skipped"; state: JobState | null; leaseInMs?: number }
  /** Ended instead of starting: cancellation was requested, the deadline passed, or no attempts were left. */
  | { status: "ended"; state: "CANCELLED" | "FAILED" };

export interface ExecutionDeps {
  /** The provisioning database's pool (src/db/sql.ts). */
  sql: SqlPool;
  /** Rings the job's doorbell after each commit; absent in tests that do not watch. */
  nc?: NatsConnection;
}

export interface StartInput {
  jobId: string;
  /** The kind the message names (for the span; the job row's kind is what runs). */
  kind?: string;
  owner: string;
  leaseMs: number;
  /** Claimed from the database rather than delivered (src/jobs/claimer.ts): the "started" event says so. */
  claimed?: boolean;
}

/** What a "started" event adds to its message when the job was claimed from the database. */
export const CLAIMED_NOTE = " (claimed from the database: the broker delivered nothing)";

export interface CompleteInput extends AttemptRef {
  result?: Record<string, unknown>;
  /** The handler's database effects, applied in the completion's transaction (and only if it wins). */
  effects?: (tx: Sql) => Promise<void>;
  /** Every statement of `effects` carries IN_TRANSACTION: they may go pipelined with the compare-and-set. */
  effectsGuarded?: boolean;
}

export interface FailInput extends AttemptRef {
  error: JobError;
  /** Attempts are exhausted: also write a dead letter keeping the payload (and a "dead_lettered" event). */
  deadLetter?: boolean;
  /** "timed_out" when the deadline ended it. */
  eventType?: "failed" | "timed_out";
}

export interface PendingInput extends AttemptRef {
  checkAfterMs: number;
  progressPercent?: number;
  progressMessage?: string;
}

/** A job row as start() reads it, locked. */
export interface StartRow {
  id: string;
  kind: string;
  state: JobState;
  attempt: number;
  maxAttempts: number;
  payload: unknown;
  traceparent: string | null;
  cancelRequested: number;
  leaseOwner: string | null;
  leaseExpired: number | null;
  leaseInMs: bigint | number | null;
  deadlineInMs: bigint | number | null;
  /** Microseconds since the job was created, on the database clock. */
  waitedUs: bigint | number;
}

/** The columns of a StartRow. */
export const START_COLUMNS = sqlFragment`id, kind, state, attempt, max_attempts AS maxAttempts, payload, traceparent,
  cancel_requested AS cancelRequested, lease_owner AS leaseOwner, lease_expires_at < NOW(3) AS leaseExpired,
  TIMESTAMPDIFF(MICROSECOND, NOW(3), lease_expires_at) DIV 1000 AS leaseInMs,
  TIMESTAMPDIFF(MICROSECOND, NOW(3), deadline_at) DIV 1000 AS deadlineInMs, TIMESTAMPDIFF(MICROSECOND, created_at, NOW(3)) AS waitedUs`;

/**
 * A job row a worker may start without more ado: QUEUED, no cancellation requested, attempts left, its deadline (on
 * the database clock, in whole milliseconds as START_COLUMNS reads it) ahead. runnableNow in execution-batch.ts is
 * the same test on a row read with START_COLUMNS.
 */
export const RUNNABLE_NOW = sqlFragment`state = 'QUEUED' AND cancel_requested = 0 AND attempt < max_attempts
  AND (deadline_at IS NULL OR TIMESTAMPDIFF(MICROSECOND, NOW(3), deadline_at) DIV 1000 > 0)`;

/** The attempt a started row runs: the one after the row's (read before the start's UPDATE). */
export function startedJob(row: StartRow, deadlineInMs: number | null): StartedJob {
  return { id: row.id, kind: row.kind, attempt: row.attempt + 1, maxAttempts: row.maxAttempts, payload: row.payload, traceparent: row.traceparent, deadlineInMs };
}

/** Microseconds, as INTERVAL … MICROSECOND wants them: whole and never negative. */
export const micros = (ms: number): number => Math.max(0, Math.round(ms * 1000));
