// A job's history: appending numbered events inside the transaction that changes the job, reading them back, and
// the after-commit doorbell on NATS that wakes WatchJob streams (the database stays the truth; a lost doorbell only
// delays a watcher until its next safety read).
import type { NatsConnection } from "@nats-io/transport-node";
import { IN_TRANSACTION, sqlFragment, type Sql, type SqlFragment } from "../db/sql.js";
import type { JobEvent, JobEventType, JobState } from "./model.js";

export interface NewJobEvent {
  jobId: string;
  type: JobEventType;
  fromState: JobState | null;
  toState: JobState;
  attempt: number;
  actor: string;
  message?: string;
}

/**
 * Appends an event with the next sequence number. Call it after the statement that locked the job row in the same
 * transaction (every transition updates the job first), so concurrent appends for one job are serialized.
 */
export async function appendEvent(sql: Sql, e: NewJobEvent, options: { pipelined?: boolean } = {}): Promise<void> {
  // `pipelined`: sent behind another statement of the transaction without waiting for it, so it must do nothing
  // should that statement abort the transaction (IN_TRANSACTION; HAVING, because the aggregate yields a row anyway).
  await sql.execute`
    INSERT INTO job_events (job_id, sequence, type, from_state, to_state, attempt, actor, message, created_at)
    SELECT ${e.jobId}, COALESCE(MAX(sequence), 0) + 1, ${e.type}, ${e.fromState}, ${e.toState}, ${e.attempt}, ${e.actor}, ${e.message ?? null}, NOW(3)
      FROM job_events WHERE job_id = ${e.jobId}${options.pipelined ? sqlFragment` HAVING ${IN_TRANSACTION}` : sqlFragment``}`;
}

interface EventRow {
  jobId: string;
  sequence: number;
  type: string;
  fromState: string | null;
  toState: string;
  attempt: number;
  actor: string;
  message: string | null;
  createdAt: Date;
}

/** The statement of listEvents: a range of the primary key (job_id, sequence), whatever the table's size. */
export function listEventsStatement(jobId: string, afterSequence = 0, limit = 1000): SqlFragment {
  return sqlFragment`
    SELECT job_id AS jobId, sequence, type, from_state AS fromState, to_state AS toState, attempt, actor, message, created_at AS createdAt
      FROM job_events WHERE job_id = ${jobId} AND sequence > ${afterSequence} ORDER BY sequence LIMIT ${limit}`;
}

/** Events of a job with sequence greater than `afterSequence`, oldest first. */
export async function listEvents(sql: Sql, jobId: string, afterSequence = 0, limit = 1000): Promise<JobEvent[]> {
  const rows = await sql.query<EventRow>`${listEventsStatement(jobId, afterSequence, limit)}`;
  return rows.map((r) => ({
    jobId: r.jobId,
    sequence: Number(r.sequence),
    type: r.type as JobEventType,
    fromState: r.fromState as JobState | null,
    toState: r.toState as JobState,
    attempt: Number(r.attempt),
    actor: r.actor,
    message: r.message ?? "",
    time: r.createdAt,
  }));
}

/** Subject of the doorbell rung after a job's change commits. Outside the jobs stream's subjects on purpose. */
export function jobDoorbellSubject(jobId: string): string {
  return `job-events.${jobId}`;
}

/** Rings the doorbell for a committed change; best effort (a watcher re-reads on its own timer too). */
export function ringDoorbell(nc: NatsConnection | undefined, jobId: string): void {
  if (!nc || nc.isClosed()) return;
  try {
    nc.publish(jobDoorbellSubject(jobId));
  } catch {
    // The watcher's periodic read covers a doorbell that could not be sent.
  }
}
