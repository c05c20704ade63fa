// Data access for the queue figures and dead letters: the outbox backlog, dead letters listed under a job list's
// object scope, and one dead letter by id. Replaying one is a retry of its job (repository.retryJob marks it).
import { sqlFragment, sqlJoin, type Sql, type SqlFragment } from "../db/sql.js";
import { pageOf, type Page } from "../db/page.js";
import { visibleToClause } from "./repository.js";

export interface OutboxBacklog {
  /** Publications written and not yet published. */
  backlog: number;
  /** Age of the oldest of them in milliseconds, by the database's clock; 0 when there is none. */
  oldestAgeMs: number;
  /** Those the relay failed to publish at least once. */
  failed: number;
}

export interface DeadLetter {
  id: string;
  jobId: string;
  kind: string;
  attempt: number;
  lastError: string;
  createdAt: Date;
  replayedAt: Date | null;
}

export interface DeadLetterFilter {
  includeReplayed: boolean;
  kind?: string | undefined;
  /** Object scope: dead letters of the jobs this principal may list (repository.JobFilter.visibleTo). */
  visibleTo?: { userId: string; accountIds: readonly string[] } | undefined;
}

interface DeadLetterRow {
  id: string;
  jobId: string;
  kind: string;
  attempt: number;
  lastError: string | null;
  createdAt: Date;
  replayedAt: Date | null;
}

const DEAD_LETTER_COLUMNS = sqlFragment`d.id, d.job_id AS jobId, d.kind, d.attempt, d.last_error AS lastError,
  d.created_at AS createdAt, d.replayed_at AS replayedAt`;

function rowToDeadLetter(r: DeadLetterRow): DeadLetter {
  return { id: r.id, jobId: r.jobId, kind: r.kind, attempt: Number(r.attempt), lastError: r.lastError ?? "", createdAt: r.createdAt, replayedAt: r.replayedAt };
}

/** The outbox rows, all of them waiting for their publication (the relay deletes a row once JetStream has it). */
export async function outboxBacklog(sql: Sql): Promise<OutboxBacklog> {
  const [row] = await sql.query<{ n: bigint | number; ageUs: bigint | number | null; failed: bigint | number | string | null }>`
    SELECT COUNT(*) AS n, TIMESTAMPDIFF(MICROSECOND, MIN(created_at), NOW(3)) AS ageUs, SUM(publish_attempts > 0) AS failed
      FROM outbox_entries`;
  const n = Number(row?.n ?? 0);
  return { backlog: n, oldestAgeMs: n > 0 ? Math.max(0, Math.round(Number(row?.ageUs ?? 0) / 1000)) : 0, failed: Number(row?.failed ?? 0) };
}

/** Dead letters not yet replayed, of every job. */
export async function countWaitingDeadLetters(sql: Sql): Promise<number> {
  const [row] = await sql.query<{ n: bigint | number }>`SELECT COUNT(*) AS n FROM dead_letters WHERE replayed_at IS NULL`;
  return Number(row?.n ?? 0);
}

/** One page of dead letters, newest first (ids are time-ordered), after the dead letter `afterId`. */
export async function listDeadLetters(sql: Sql, filter: DeadLetterFilter, afterId: string | undefined, limit: number): Promise<Page<DeadLetter>> {
  const where: SqlFragment[] = [];
  if (!filter.includeReplayed) where.push(sqlFragment`d.replayed_at IS NULL`);
  if (filter.kind) where.push(sqlFragment`d.kind = ${filter.kind}`);
  if (afterId) where.push(sqlFragment`d.id < ${afterId}`);
  // The scope's columns (requested_by, resource_*) are the job's: dead_letters has none of those names.
  if (filter.visibleTo) where.push(visibleToClause(filter.visibleTo));
  const clause = where.length > 0 ? sqlFragment`WHERE ${sqlJoin(where, " AND ")}` : sqlFragment``;
  const rows = await sql.query<DeadLetterRow>`
    SELECT ${DEAD_LETTER_COLUMNS} FROM dead_letters d JOIN jobs ON jobs.id = d.job_id ${clause} ORDER BY d.id DESC LIMIT ${limit + 1}`;
  return pageOf(rows.map(rowToDeadLetter), limit, (d) => d.id);
}

export async function findDeadLetter(sql: Sql, id: string): Promise<DeadLetter | null> {
  const [row] = await sql.query<DeadLetterRow>`SELECT ${DEAD_LETTER_COLUMNS} FROM dead_letters d WHERE d.id = ${id}`;
  return row ? rowToDeadLetter(row) : null;
}
