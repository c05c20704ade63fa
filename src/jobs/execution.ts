// Running a job, in SQL: start, lease renewal, progress and every outcome, each one short transaction on the
// provisioning database followed by the job's doorbell. Outcomes are compare-and-sets on (id, attempt, RUNNING, lease
// owner): an outcome that loses is recorded as a "stale_completion_rejected" event and never applied.
import { IN_TRANSACTION, type Isolation, type Sql } from "../db/sql.js";
import { newId } from "../db/ids.js";
import type { Attributes } from "@opentelemetry/api";
import { measuring, recordJob, recordJobRun, recordJobWait, type JobTransition } from "../telemetry/metrics.js";
import { ATTR_JOB_ATTEMPT, ATTR_JOB_ID, ATTR_JOB_KIND, withSpan } from "../telemetry/spans.js";
import { appendEvent, ringDoorbell } from "./events.js";
import type { JobError, JobEventType, JobState } from "./model.js";
import { CLAIMED_NOTE, micros, MONITOR_OWNER, RUNNABLE_NOW, START_COLUMNS, startedJob, type AttemptRef, type CompleteInput, type ExecutionDeps, type FailInput, type PendingInput, type StartInput, type StartResult, type StartRow } from "./attempt.js";

export { CLAIMED_NOTE, micros, MONITOR_OWNER, RUNNABLE_NOW, START_COLUMNS, startedJob } from "./attempt.js";
export type { AttemptRef, CompleteInput, ExecutionDeps, FailInput, PendingInput, StartedJob, StartInput, StartResult, StartRow } from "./attempt.js";

/** Thrown inside an outcome's transaction whose compare-and-set lost, to roll back what went with it. */
class CasLost extends Error {
  constructor() {
    super("the attempt no longer holds the job");
  }
}

/** The error a cancelled job carries (as when the job service cancels a queued one). */
const CANCELLED_MESSAGE = "cancelled on request";

export class JobExecution {
  constructor(readonly deps: ExecutionDeps) {}

  /**
   * Starts an attempt: QUEUED (or RUNNING under an expired worker lease) → RUNNING with attempt + 1 and a lease for
   * `owner`, plus a "started" event (after a "lease_expired" one when it takes over). A job with cancellation
   * requested, past its deadline or out of attempts ends instead. Anything else is "skipped": ack and drop.
   */
  async start(input: StartInput): Promise<StartResult> {
    const result = await this.transaction("start", { id: input.jobId, kind: input.kind }, async (tx): Promise<StartResult> => {
      // The common case in one round trip: lock and read the row, start it if it is plainly runnable (the UPDATE's
      // condition is runnableNow's), and append the "started" event only if that UPDATE changed the row (ROW_COUNT()
      // is the preceding statement's count). The server runs the three in order; the read shows the row before the
      // UPDATE, which changes nothing should the read abort the transaction (IN_TRANSACTION). Any other row (taken over, to be ended, skipped) takes startLocked as before, in the same transaction.
      const [rows, n] = await Promise.all([
        tx.query<StartRow>`SELECT ${START_COLUMNS} FROM jobs WHERE id = ${input.jobId} FOR UPDATE`,
        tx.execute`
          UPDATE jobs SET state = 'RUNNING', attempt = attempt + 1, lease_owner = ${input.owner},
                 lease_expires_at = NOW(3) + INTERVAL ${micros(input.leaseMs)} MICROSECOND, next_check_at = NULL,
                 started_at = COALESCE(started_at, NOW(3)), updated_at = NOW(3)
           WHERE id = ${input.jobId} AND ${RUNNABLE_NOW} AND ${IN_TRANSACTION}`,
        tx.execute`
          INSERT INTO job_events (job_id, sequence, type, from_state, to_state, attempt, actor, message, created_at)
          SELECT j.id, COALESCE((SELECT MAX(x.sequence) FROM job_events x WHERE x.job_id = j.id), 0) + 1, 'started', 'QUEUED', 'RUNNING',
                 j.attempt, ${input.owner}, CONCAT('attempt ', j.attempt, ' of ', j.max_attempts, ${input.claimed ? CLAIMED_NOTE : ""}), NOW(3)
            FROM jobs j WHERE j.id = ${input.jobId} AND ROW_COUNT() = 1`,
      ]);
      const row = rows[0];
      if (!row) return { status: "skipped", state: null };
      if (n !== 1) return this.startLocked(tx, row, input);
      this.measure(tx, { transition: "started", kind: row.kind });
      if (row.attempt === 0) this.measure(tx, { transition: "wait", kind: row.kind, seconds: Number(row.waitedUs) / 1e6 });
      return { status: "started", job: startedJob(row, row.deadlineInMs === null ? null : Number(row.deadlineInMs)), tookOver: false };
    });
    if (result.status !== "skipped") this.ring(input.jobId);
    return result;
  }

  /** start() for a row this transaction locked (read with START_COLUMNS). */
  async startLocked(tx: Sql, row: StartRow, input: Pick<StartInput, "owner" | "leaseMs" | "claimed">): Promise<StartResult> {
    const tookOver = row.state === "RUNNING" && row.leaseOwner !== MONITOR_OWNER && Number(row.leaseExpired) === 1;
    if (row.state !== "QUEUED" && !tookOver) {
      const underLease = row.state === "RUNNING" && row.leaseOwner !== MONITOR_OWNER && row.leaseOwner !== input.owner && row.leaseInMs !== null;
      return underLease ? { status: "skipped", state: row.state, leaseInMs: Math.max(0, Number(row.leaseInMs)) } : { status: "skipped", state: row.state };
    }
    const ref = { jobId: row.id, kind: row.kind, attempt: row.attempt, owner: row.leaseOwner ?? "" };
    if (tookOver) {
      await this.event(tx, ref, "lease_expired", "RUNNING", "QUEUED", input.owner, `attempt ${row.attempt} stopped renewing its lease (owner ${row.leaseOwner})`);
    }
    const deadlineInMs = row.deadlineInMs === null ? null : Number(row.deadlineInMs);
    const ended = await this.endIfUnrunnable(tx, ref, { cancelRequested: Number(row.cancelRequested) === 1, deadlineInMs, maxAttempts: row.maxAttempts }, input.owner);
    if (ended) return { status: "ended", state: ended };
    // The row is locked; the compare-and-set on (state, attempt) still guards against a read that was not.
    // The UPDATE and its event go to the server together (it runs them in order, so the event follows the row lock);
    // a failed compare-and-set throws, which rolls the event back with it.
    const attempt = row.attempt + 1;
    const [n] = await Promise.all([
      tx.execute`
        UPDATE jobs SET state = 'RUNNING', attempt = attempt + 1, lease_owner = ${input.owner},
               lease_expires_at = NOW(3) + INTERVAL ${micros(input.leaseMs)} MICROSECOND, next_check_at = NULL,
               started_at = COALESCE(started_at, NOW(3)), updated_at = NOW(3)
         WHERE id = ${row.id} AND attempt = ${row.attempt} AND state = ${tookOver ? "RUNNING" : "QUEUED"}`,
      this.event(tx, { ...ref, attempt }, "started", "QUEUED", "RUNNING", input.owner, `attempt ${attempt} of ${row.maxAttempts}${input.claimed ? CLAIMED_NOTE : ""}`, { pipelined: true }),
    ]);
    if (n !== 1) throw new Error(`job ${row.id} changed under its row lock`);
    if (row.attempt === 0) this.measure(tx, { transition: "wait", kind: row.kind, seconds: Number(row.waitedUs) / 1e6 });
    return { status: "started", job: startedJob(row, deadlineInMs), tookOver };
  }

  /** The job's state, or null when there is no such job. */
  async state(jobId: string): Promise<JobState | null> {
    const rows = await this.deps.sql.query<{ state: JobState }>`SELECT state FROM jobs WHERE id = ${jobId}`;
    return rows[0]?.state ?? null;
  }

  /**
   * Extends the attempt's lease by `leaseMs`. `held` is false when the attempt lost the job (it was requeued, taken
   * over or ended elsewhere): stop working on it. `cancelRequested` says whether to stop at the next checkpoint.
   */
  async renewLease(a: AttemptRef, leaseMs: number): Promise<{ held: boolean; cancelRequested: boolean }> {
    const sql = this.deps.sql;
    const renewed = await sql.execute`
      UPDATE jobs SET lease_expires_at = NOW(3) + INTERVAL ${micros(leaseMs)} MICROSECOND
       WHERE id = ${a.jobId} AND attempt = ${a.attempt} AND state = 'RUNNING' AND lease_owner = ${a.owner}`;
    if (renewed !== 1) return { held: false, cancelRequested: false };
    const rows = await sql.query<{ c: number }>`SELECT cancel_requested AS c FROM jobs WHERE id = ${a.jobId}`;
    return { held: true, cancelRequested: Number(rows[0]?.c ?? 0) === 1 };
  }

  /** Records progress (clamped to 0–100) and a "progress" event; false when the attempt no longer holds the job. */
  async progress(a: AttemptRef, percent: number, message = ""): Promise<boolean> {
    const pct = Math.min(100, Math.max(0, Math.round(percent)));
    const text = message.slice(0, 1024);
    const done = await this.transaction("progress", refAttrs(a), async (tx) => {
      const n = await tx.execute`
        UPDATE jobs SET progress_percent = ${pct}, progress_message = ${text}, updated_at = NOW(3)
         WHERE id = ${a.jobId} AND attempt = ${a.attempt} AND state = 'RUNNING' AND lease_owner = ${a.owner}`;
      if (n !== 1) return false;
      await this.event(tx, a, "progress", "RUNNING", "RUNNING", a.owner, text ? `${pct}% ${text}` : `${pct}%`);
      return true;
    });
    if (done) this.ring(a.jobId);
    return done;
  }

  /** RUNNING → SUCCEEDED with the result and the handler's effects, in one transaction. False: rejected as stale. */
  async complete(input: CompleteInput): Promise<boolean> {
    const result = input.result === undefined ? null : JSON.stringify(input.result);
    return this.outcome("complete", input, "succeeded", async (tx) => {
      // The compare-and-set and its event go to the server together (the event does nothing outside the transaction),
      // and guarded effects with them; a lost compare-and-set rolls them back (CasLost) and the outcome is recorded
      // as stale.
      const guarded = input.effectsGuarded ? input.effects : undefined;
      const [cas, ...rest] = await Promise.allSettled([
        tx.execute`
          UPDATE jobs SET state = 'SUCCEEDED', result = ${result}, progress_percent = 100, error_code = NULL, error_message = NULL,
                 error_details = NULL, lease_owner = NULL, lease_expires_at = NULL, next_check_at = NULL, ended_at = NOW(3), updated_at = NOW(3)
           WHERE id = ${input.jobId} AND attempt = ${input.attempt} AND state = 'RUNNING' AND lease_owner = ${input.owner}`,
        this.event(tx, input, "succeeded", "RUNNING", "SUCCEEDED", input.owner, `attempt ${input.attempt} succeeded`, { pipelined: true }),
        guarded?.(tx),
      ]);
      if (cas.status === "rejected") throw cas.reason;
      if (cas.value !== 1) throw new CasLost();
      for (const r of rest) if (r.status === "rejected") throw r.reason;
      // Other effects only once the compare-and-set has held, never pipelined behind it: arbitrary statements cannot
      // all carry IN_TRANSACTION, and one run in autocommit after an aborted transaction would apply a stale effect.
      if (input.effects && !guarded) await input.effects(tx);
      return true;
    });
  }

  /**
   * RUNNING → QUEUED after a retryable failure, keeping the error, with a "retry_scheduled" event. published_at is set
   * to when the delayed redelivery is due, so the reconciler does not republish the job while it waits.
   */
  async scheduleRetry(input: AttemptRef & { error: JobError; delayMs: number }): Promise<boolean> {
    const { error } = input;
    return this.outcome("retry", input, "retry_scheduled", async (tx) => {
      const n = await tx.execute`
        UPDATE jobs SET state = 'QUEUED', error_code = ${error.code}, error_message = ${error.message},
               error_details = ${error.details ? JSON.stringify(error.details) : null}, lease_owner = NULL, lease_expires_at = NULL,
               next_check_at = NULL, published_at = NOW(3) + INTERVAL ${micros(input.delayMs)} MICROSECOND, updated_at = NOW(3)
         WHERE id = ${input.jobId} AND attempt = ${input.attempt} AND state = 'RUNNING' AND lease_owner = ${input.owner}`;
      if (n !== 1) return false;
      const message = `attempt ${input.attempt} failed (${error.code}: ${error.message}); retrying in ${input.delayMs} ms`;
      await this.event(tx, input, "retry_scheduled", "RUNNING", "QUEUED", input.owner, message);
      return true;
    });
  }

  /** RUNNING → FAILED with the error; with `deadLetter`, a dead letter keeping the payload too. False: stale. */
  async fail(input: FailInput): Promise<boolean> {
    const { error } = input;
    const eventType = input.eventType ?? "failed";
    return this.outcome("fail", input, eventType, async (tx) => {
      const n = await tx.execute`
        UPDATE jobs SET state = 'FAILED', error_code = ${error.code}, error_message = ${error.message},
               error_details = ${error.details ? JSON.stringify(error.details) : null}, lease_owner = NULL, lease_expires_at = NULL,
               next_check_at = NULL, ended_at = NOW(3), updated_at = NOW(3)
         WHERE id = ${input.jobId} AND attempt = ${input.attempt} AND state = 'RUNNING' AND lease_owner = ${input.owner}`;
      if (n !== 1) return false;
      await this.event(tx, input, eventType, "RUNNING", "FAILED", input.owner, `${error.code}: ${error.message}`);
      if (input.deadLetter) await this.deadLetter(tx, input, error, input.owner);
      return true;
    });
  }

  /** RUNNING with cancellation requested → CANCELLED. False: stale, or cancellation was never requested. */
  async cancel(a: AttemptRef): Promise<boolean> {
    return this.outcome("cancel", a, "cancelled", async (tx) => {
      const n = await tx.execute`
        UPDATE jobs SET state = 'CANCELLED', error_code = 'CANCELLED', error_message = ${CANCELLED_MESSAGE}, error_details = NULL,
               lease_owner = NULL, lease_expires_at = NULL, next_check_at = NULL, ended_at = NOW(3), updated_at = NOW(3)
         WHERE id = ${a.jobId} AND attempt = ${a.attempt} AND state = 'RUNNING' AND lease_owner = ${a.owner} AND cancel_requested = 1`;
      if (n !== 1) return false;
      await this.event(tx, a, "cancelled", "RUNNING", "CANCELLED", a.owner, `cancelled at a checkpoint of attempt ${a.attempt}`);
      return true;
    });
  }

  /**
   * The attempt's work is under way elsewhere: the job stays RUNNING, the monitor holds it and checks it again after
   * `checkAfterMs`. The "pending" event is written only when the job passes from a worker to the monitor.
   */
  async pending(input: PendingInput): Promise<boolean> {
    const first = input.owner !== MONITOR_OWNER;
    const pct = input.progressPercent === undefined ? null : Math.min(100, Math.max(0, Math.round(input.progressPercent)));
    const text = input.progressMessage === undefined ? null : input.progressMessage.slice(0, 1024);
    return this.outcome("pending", input, "pending", async (tx) => {
      const n = await tx.execute`
        UPDATE jobs SET lease_owner = ${MONITOR_OWNER}, lease_expires_at = NULL,
               next_check_at = NOW(3) + INTERVAL ${micros(input.checkAfterMs)} MICROSECOND,
               checks = IF(${first ? 1 : 0} = 1, 0, checks), progress_percent = COALESCE(${pct}, progress_percent),
               progress_message = COALESCE(${text}, progress_message), updated_at = NOW(3)
         WHERE id = ${input.jobId} AND attempt = ${input.attempt} AND state = 'RUNNING' AND lease_owner = ${input.owner}`;
      if (n !== 1) return false;
      if (first) await this.event(tx, input, "pending", "RUNNING", "RUNNING", input.owner, `waiting for completion; first check in ${input.checkAfterMs} ms`);
      return true;
    }, first);
  }

  /**
   * Runs `fn` (a compare-and-set plus its event) in one transaction. When it loses, a "stale_completion_rejected"
   * event is recorded instead, in a transaction of its own (nothing of the outcome is applied).
   */
  private async outcome(op: string, a: AttemptRef, what: string, fn: (tx: Sql) => Promise<boolean>, ring = true): Promise<boolean> {
    const applied = await this.transaction(op, refAttrs(a), fn).catch((err: unknown) => {
      if (err instanceof CasLost) return false;
      throw err;
    });
    if (applied) {
      if (ring) this.ring(a.jobId);
      return true;
    }
    const recorded = await this.transaction("reject_stale", refAttrs(a), async (tx) => {
      const rows = await tx.query<{ state: JobState; attempt: number; owner: string | null }>`
        SELECT state, attempt, lease_owner AS owner FROM jobs WHERE id = ${a.jobId} FOR UPDATE`;
      const row = rows[0];
      if (!row) return false;
      const now = `${row.state} at attempt ${row.attempt}${row.owner ? ` (owner ${row.owner})` : ""}`;
      await this.event(tx, a, "stale_completion_rejected", row.state, row.state, a.owner, `outcome "${what}" of attempt ${a.attempt} by ${a.owner} rejected: the job is ${now}`);
      return true;
    });
    if (recorded) this.ring(a.jobId);
    return false;
  }

  /**
   * Inside a transaction that locked a job about to (re)start, with its state now QUEUED: ends it instead when
   * cancellation was requested, its deadline passed, or `ref.attempt` used up its attempts. Returns the state it ended in.
   */
  async endIfUnrunnable(
    tx: Sql,
    ref: AttemptRef,
    job: { cancelRequested: boolean; deadlineInMs: number | null; maxAttempts: number },
    actor: string,
  ): Promise<"CANCELLED" | "FAILED" | null> {
    let type: "cancelled" | "timed_out" | "failed";
    let error: JobError;
    if (job.cancelRequested) {
      type = "cancelled";
      error = { code: "CANCELLED", message: CANCELLED_MESSAGE };
    } else if (job.deadlineInMs !== null && job.deadlineInMs <= 0) {
      type = "timed_out";
      error = { code: "DEADLINE_EXCEEDED", message: `timed out before attempt ${ref.attempt + 1} could start` };
    } else if (ref.attempt >= job.maxAttempts) {
      type = "failed";
      error = { code: "ABORTED", message: `attempt ${ref.attempt} of ${job.maxAttempts} stopped without an outcome; no attempts are left` };
    } else {
      return null;
    }
    const state = type === "cancelled" ? "CANCELLED" : "FAILED";
    await tx.execute`
      UPDATE jobs SET state = ${state}, error_code = ${error.code}, error_message = ${error.message}, error_details = NULL,
             lease_owner = NULL, lease_expires_at = NULL, next_check_at = NULL, ended_at = NOW(3), updated_at = NOW(3)
       WHERE id = ${ref.jobId}`;
    await this.event(tx, ref, type, "QUEUED", state, actor, type === "cancelled" ? "cancelled before it started" : `${error.code}: ${error.message}`);
    if (type === "failed") await this.deadLetter(tx, ref, error, actor);
    return state;
  }

  /** Writes the dead letter (the payload copied from the job row) and its event; the job row must be locked. */
  async deadLetter(tx: Sql, ref: AttemptRef, error: JobError, actor: string): Promise<void> {
    await tx.execute`
      INSERT INTO dead_letters (id, job_id, attempt, kind, payload, last_error, created_at)
      SELECT ${newId()}, id, attempt, kind, payload, ${`${error.code}: ${error.message}`}, NOW(3) FROM jobs WHERE id = ${ref.jobId}`;
    await this.event(tx, ref, "dead_lettered", "FAILED", "FAILED", actor, `attempts exhausted after attempt ${ref.attempt}; payload kept as a dead letter`);
  }

  async event(tx: Sql, ref: AttemptRef, type: JobEventType, from: JobState | null, to: JobState, actor: string, message?: string, options: { pipelined?: boolean } = {}): Promise<void> {
    await appendEvent(tx, { jobId: ref.jobId, type, fromState: from, toState: to, attempt: ref.attempt, actor, message }, options);
    const transition = TRANSITIONS[type];
    if (!transition || !this.measurements.has(tx)) return;
    this.measure(tx, { transition, kind: ref.kind });
    // A run's length is read only while metrics are on: one primary-key read of the row this transaction holds.
    if (from === "RUNNING" && (to === "SUCCEEDED" || to === "FAILED" || to === "CANCELLED") && measuring()) {
      const [row] = await tx.query<{ us: bigint | number | null }>`SELECT TIMESTAMPDIFF(MICROSECOND, started_at, NOW(3)) AS us FROM jobs WHERE id = ${ref.jobId}`;
      if (row?.us !== null && row?.us !== undefined) this.measure(tx, { transition: "run", kind: ref.kind, outcome: OUTCOMES[to], seconds: Number(row.us) / 1e6 });
    }
  }

  /** Notes a measurement of the transaction `tx`; it is recorded once that commits (see transaction()). */
  measure(tx: Sql, m: Measurement): void {
    this.measurements.get(tx)?.push(m);
  }

  /** Measurements of the transactions under way, by transaction: a try that rolls back records none of its own. */
  private readonly measurements = new WeakMap<Sql, Measurement[]>();

  ring(jobId: string): void {
    ringDoorbell(this.deps.nc, jobId);
  }

  /** One transaction in a span, tried again on a deadlock or lock wait timeout (nothing of a failed try remains). */
  async transaction<T>(op: string, job: { id: string; kind?: string; attempt?: number } | null, fn: (tx: Sql) => Promise<T>, isolation?: Isolation): Promise<T> {
    const attributes: Attributes = {};
    if (job) attributes[ATTR_JOB_ID] = job.id;
    if (job?.kind) attributes[ATTR_JOB_KIND] = job.kind;
    if (job?.attempt !== undefined) attributes[ATTR_JOB_ATTEMPT] = job.attempt;
    let measured: Measurement[] = [];
    const result = await withSpan(`job.${op}`, { attributes }, () =>
      this.deps.sql.transaction(async (tx) => {
        measured = [];
        this.measurements.set(tx, measured);
        return fn(tx);
      }, { isolation }),
    );
    for (const m of measured) record(m);
    return result;
  }
}

/** A job metric noted inside a transaction: a transition counted, or a wait (create→start) or run (start→end) timed. */
export type Measurement =
  | { transition: JobTransition; kind: string; count?: number }
  | { transition: "wait"; kind: string; seconds: number }
  | { transition: "run"; kind: string; outcome: "succeeded" | "failed" | "cancelled"; seconds: number };

function record(m: Measurement): void {
  if (m.transition === "wait") recordJobWait(m.kind, m.seconds);
  else if (m.transition === "run") recordJobRun(m.kind, m.outcome, m.seconds);
  else recordJob(m.transition, m.kind, m.count);
}

/** The counted transition each event type stands for. */
const TRANSITIONS: Partial<Record<JobEventType, JobTransition>> = {
  started: "started",
  succeeded: "succeeded",
  failed: "failed",
  timed_out: "failed",
  cancelled: "cancelled",
  retry_scheduled: "retried",
  dead_lettered: "dead_lettered",
};

const OUTCOMES = { SUCCEEDED: "succeeded", FAILED: "failed", CANCELLED: "cancelled" } as const;

function refAttrs(a: AttemptRef): { id: string; kind: string; attempt: number } {
  return { id: a.jobId, kind: a.kind, attempt: a.attempt };
}
