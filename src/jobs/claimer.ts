// Claiming queued jobs straight from the database while the broker delivers nothing (a JetStream leader election, a
// stalled relay): a worker with free slots that has had no delivery for `afterMs` reads a few due, runnable jobs and
// starts them through the same path as a delivery, where the compare-and-set decides who runs each one.
import { sqlFragment, type Sql, type SqlFragment } from "../db/sql.js";
import type { Logger } from "../log.js";
import { createOutageLog } from "../mq/outage-log.js";
import { micros, RUNNABLE_NOW } from "./execution.js";
import type { Settle } from "./settle.js";

/** A queued job the claimer found, to be started as if its message had arrived. */
export interface ClaimedJob {
  jobId: string;
  kind: string;
  traceparent: string | null;
}

/** A job claimableJobs found: due now when `dueInMs` is 0 or less. */
export interface ClaimCandidate extends ClaimedJob {
  dueInMs: number;
}

export interface ClaimerOptions {
  sql: Sql;
  /** Kinds this worker can run: a job of another kind waits for a worker that knows it. */
  kinds: string[];
  /**
   * No delivery for this long (and slots free all along) before the first sweep; also how long a job must have waited
   * since its publication (or creation) to be claimed, and the longest pause after a sweep that found none due.
   */
  afterMs: number;
  /** Slots of the worker not taken by a delivery or a claimed job. */
  freeSlots(): number;
  /** Starts and runs a claimed job as a delivery; resolves once its attempt is settled (or it did not start). */
  take(job: ClaimedJob, settle: Settle): Promise<unknown>;
  /** Claimed jobs the worker started so far (for the log lines). */
  startedSoFar(): number;
  log: Logger;
  /** How often a long claiming spell is summarised in the log. */
  summaryEveryMs?: number;
}

export interface Claimer {
  /** A delivery arrived: the broker works, so claiming stops and the quiet period starts again. */
  noteDelivery(): void;
  /** Stops sweeping and waits for the claimed jobs still running. */
  stop(): Promise<void>;
}

/** Candidates read per free slot: two workers sweeping at once each start a random part of them. */
const CANDIDATES_PER_SLOT = 3;
const MAX_CANDIDATES = 256;

/**
 * A claimed job has no message: acking or terminating one is nothing, and a nak leaves the job to the database — a
 * retry is already QUEUED with its due time in published_at, a job that could not start stays QUEUED for the next
 * sweep or its message, and a stopping worker's RUNNING job is taken over after its lease.
 */
export const claimedSettle: Settle = { ack() {}, nak() {}, term() {}, working() {} };

export function startClaimer(options: ClaimerOptions): Claimer {
  const { afterMs, log } = options;
  const summaryEveryMs = options.summaryEveryMs ?? 30_000;
  const tickMs = Math.max(25, Math.floor(afterMs / 4));
  const held = new Set<string>();
  const running = new Set<Promise<void>>();
  let quietSince = Date.now();
  let nextSweepAt = 0;
  let stopping = false;
  let sweeping: Promise<void> | undefined;
  // A claiming spell: from the first sweep that finds jobs to the next delivery (for its two log lines).
  let spell: { since: number; startedAtStart: number; lastLine: number } | undefined;
  // A database that cannot be read is one warning per outage, not one per sweep.
  const readFailures = createOutageLog(log, "looking for queued jobs to claim from the database", summaryEveryMs);

  const tick = (): void => {
    if (stopping || sweeping) return;
    const now = Date.now();
    const free = options.freeSlots();
    // A worker whose slots are all taken by deliveries asks the broker for nothing: that is no silence. During a
    // spell, slots full of claimed jobs do not restart the clock, so a freed slot is claimed again at the next tick.
    if (free <= 0) {
      if (!spell) quietSince = now;
      return;
    }
    if (now - quietSince < afterMs || now < nextSweepAt) return;
    sweeping = sweep(free)
      .catch((err: unknown) => {
        nextSweepAt = Date.now() + afterMs;
        readFailures.failed(err);
      })
      .finally(() => (sweeping = undefined));
  };

  async function sweep(free: number): Promise<void> {
    const began = Date.now();
    const limit = Math.min(MAX_CANDIDATES, free * CANDIDATES_PER_SLOT + held.size);
    const candidates = (await claimableJobs(options.sql, { kinds: options.kinds, dueForMs: afterMs, limit })).filter((j) => !held.has(j.jobId));
    readFailures.succeeded();
    // A delivery that arrived during the read: the broker works again, and the jobs are its to deliver.
    if (stopping || quietSince >= began) return;
    const found = candidates.filter((j) => j.dueInMs <= 0);
    if (found.length === 0) {
      // Nothing due yet: look again when the first job found becomes due (a job created as the broker stalled is
      // claimed one delay after its creation, not up to two), or after a delay when none was found.
      const soonest = Math.min(afterMs, ...candidates.map((j) => j.dueInMs));
      nextSweepAt = Date.now() + soonest;
      return;
    }
    noteSpell(found.length);
    for (const job of shuffle(found).slice(0, options.freeSlots())) {
      held.add(job.jobId);
      const p: Promise<void> = options
        .take(job, claimedSettle)
        .then(() => undefined)
        .catch((err: unknown) => log.warn({ err, jobId: job.jobId }, "a claimed job's run failed"))
        .finally(() => {
          held.delete(job.jobId);
          running.delete(p);
        });
      running.add(p);
    }
  }

  function noteSpell(found: number): void {
    const now = Date.now();
    if (!spell) {
      spell = { since: now, startedAtStart: options.startedSoFar(), lastLine: now };
      log.warn({ quietMs: now - quietSince, found }, `the broker delivered no job for ${now - quietSince} ms: claiming queued jobs from the database`);
    } else if (now - spell.lastLine >= summaryEveryMs) {
      spell.lastLine = now;
      log.warn({ forMs: now - spell.since, started: options.startedSoFar() - spell.startedAtStart }, "still claiming queued jobs from the database: the broker delivers nothing");
    }
  }

  const timer = setInterval(tick, tickMs);
  timer.unref();
  return {
    noteDelivery() {
      quietSince = Date.now();
      if (!spell) return;
      log.info({ forMs: quietSince - spell.since, started: options.startedSoFar() - spell.startedAtStart }, "the broker delivers jobs again: no longer claiming them from the database");
      spell = undefined;
    },
    async stop() {
      stopping = true;
      clearInterval(timer);
      await sweeping;
      await Promise.allSettled(running);
    },
  };
}

/**
 * Up to `limit` QUEUED jobs of these kinds that are not held (a fleet's child waits for its parent), runnable, and
 * published (or, never published, created) before now — a retry's published_at is its due time, so one waiting out its
 * backoff is not among them — oldest first, each with how long until it is due for a claim: `dueForMs` after that time.
 * A plain read, no lock: two sweepers may find the same rows, and the start's row lock and compare-and-set pick one. It
 * reads the (state, created_at) index from its QUEUED end: nothing queued, nothing read.
 */
export async function claimableJobs(sql: Sql, q: ClaimQuery): Promise<ClaimCandidate[]> {
  if (q.kinds.length === 0) return [];
  const rows = await sql.query<ClaimedJob & { dueInMs: bigint | number }>`${claimQuery(q)}`;
  return rows.map((r) => ({ jobId: r.jobId, kind: r.kind, traceparent: r.traceparent, dueInMs: Number(r.dueInMs) }));
}

export interface ClaimQuery {
  kinds: string[];
  dueForMs: number;
  limit: number;
}

/** claimableJobs' statement (the tests EXPLAIN it). */
export function claimQuery(q: ClaimQuery): SqlFragment {
  return sqlFragment`
    SELECT id AS jobId, kind, traceparent,
           TIMESTAMPDIFF(MICROSECOND, NOW(3), COALESCE(published_at, created_at) + INTERVAL ${micros(q.dueForMs)} MICROSECOND) DIV 1000 AS dueInMs
      FROM jobs
     WHERE ${RUNNABLE_NOW} AND held = 0 AND kind IN (${q.kinds}) AND COALESCE(published_at, created_at) <= NOW(3)
     ORDER BY created_at LIMIT ${q.limit}`;
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}
