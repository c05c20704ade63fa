// The worker runtime: a durable JetStream consumer that runs job handlers with bounded concurrency. Each delivery
// starts an attempt (CAS), runs the kind's handler under a renewed lease, commits the outcome, and only then settles
// the message. While the broker delivers nothing, due queued jobs are claimed from the database (claimer.ts) and go
// the same way.
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { trace } from "@opentelemetry/api";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Config } from "../config.js";
import { createBatcher, fulfilled } from "../db/batcher.js";
import { consume, ensureWorkerConsumer, type Delivery } from "../mq/consumer.js";
import { ensureJobsStream } from "../mq/jobs-stream.js";
import { whileJetStreamStarts } from "../mq/jetstream-wait.js";
import { lazyChild, type Logger } from "../log.js";
import { isTransientConflict } from "../db/errors.js";
import { contextFromTraceparent } from "../telemetry/propagation.js";
import { jobAttributes, SpanKind, withSpan } from "../telemetry/spans.js";
import { classifyFailure, createAttemptControl, LeaseLostError, RunnerStoppingError, type AttemptControl, type Failure } from "./attempt-context.js";
import { JobCatalog, type JobKind, type JobOutcome, type JobServices } from "./catalog.js";
import { startClaimer, type ClaimedJob, type Claimer } from "./claimer.js";
import { createJobSlots } from "./slots.js";
import { createLocalStarts } from "./local-starts.js";
import { isTerminal } from "./model.js";
import { completeMany, startMany } from "./execution-batch.js";
import { JobExecution, type AttemptRef, type CompleteInput, type StartInput, type StartResult, type StartedJob } from "./execution.js";
import { parseJobMessage, type JobMessage } from "./outbox.js";
import { commitThenSettle, type Settle, type SettleAs } from "./settle.js";
import { SlotSet } from "../runtime/slot-table.js";

/** What a worker needs of its process: the services its handlers use, NATS, a logger, its settings and its id. */
export interface WorkerResources extends JobServices {
  config: JobServices["config"] & Pick<Config, "jobs" | "mq" | "startup">;
  nats: NatsConnection;
  log: Logger;
  /** Names the worker in leases and events (`worker-<instanceId>`). */
  instanceId: string;
}

export interface WorkerOptions {
  resources: WorkerResources;
  catalog: JobCatalog;
  /** Handlers run at once; default config.jobs.workerConcurrency. */
  concurrency?: number;
  /** Lease of a running attempt, renewed every third of it; default config.jobs.leaseMs. */
  leaseMs?: number;
  /** lease_owner and event actor; default `worker-<instanceId>`. */
  owner?: string;
  /** The job SQL; default one over resources.sql (tests pass one that fails on purpose). */
  execution?: JobExecution;
}

export interface RunningWorker {
  readonly owner: string;
  /** Handler runs in progress. */
  readonly active: number;
  /** Jobs this worker started after claiming them from the database (the broker had delivered nothing). */
  readonly claimed: number;
  /**
   * Stops pulling, lets running handlers finish for up to `graceMs`, then aborts them: their jobs stay RUNNING and are
   * picked up again once their lease expires (their messages come back after it).
   */
  stop(graceMs: number): Promise<void>;
}

/** Redelivery delay of a message whose kind this process does not know (another version may). */
const UNKNOWN_KIND_DELAY_MS = 30_000;
/** Redelivery delay when the database could not start the attempt. */
const START_RETRY_MS = 2_000;
/** How much longer than a lease a delivery may go unacknowledged: redelivered, it finds the lease expired. */
const ACK_WAIT_MARGIN_MS = 1_000;
/** How long stop() waits for aborted handlers after the grace period. */
const ABORT_WAIT_MS = 2_000;
/** Start transactions under way at once (see the starts batcher). */
const STARTS_IN_FLIGHT = 2;
/** Redelivery delay of a parent job while this worker already runs as many parents as it may. */
const PARENTS_BUSY_MS = 5_000;

type Span = ReturnType<typeof trace.getActiveSpan>;

/** Ensures the jobs stream and the durable consumer, then consumes until stop(). */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const { resources, catalog } = options;
  const { config, nats } = resources;
  const owner = options.owner ?? `worker-${resources.instanceId}`;
  const leaseMs = options.leaseMs ?? config.jobs.leaseMs;
  const stream = config.mq.jobsStream;
  const durable = config.mq.workerDurable;
  // The message and the lease are kept alive together (working() with each renewal), and the message comes back a
  // little after the lease ran out: a dead worker's jobs are taken over by the redelivery itself, about one lease
  // after the last renewal, with no wait for the reconciler.
  const ackWaitMs = leaseMs + ACK_WAIT_MARGIN_MS;
  const renewEveryMs = Math.max(50, Math.floor(leaseMs / 3));
  const log = resources.log.child({ component: "worker", owner });

  const jsm = await jetstreamManager(nats);
  await whileJetStreamStarts(log, "set up the jobs stream", () => ensureJobsStream(jsm, { stream, subjectPrefix: config.mq.subjectPrefix, replicas: config.mq.jobsStreamReplicas, log }), config.startup.waitForStoresMs);
  // Attempts are counted in MySQL, so JetStream never gives up on a message (max_deliver -1).
  const consumer = { stream, durable, filterSubjects: [`${config.mq.subjectPrefix}.>`], ackWaitMs, maxDeliver: -1, maxAckPending: config.mq.maxAckPending, replicas: config.mq.jobsStreamReplicas, log };
  await whileJetStreamStarts(log, "set up the workers' consumer", () => ensureWorkerConsumer(jsm, consumer), config.startup.waitForStoresMs);

  const ex = options.execution ?? new JobExecution({ sql: resources.sql, nc: nats });
  const active = new SlotSet<AttemptControl>(); // an entry per attempt: ../runtime/slot-table.ts
  // Group commit: starts, and successful completions, that arrive while earlier ones commit share one transaction.
  const concurrency = options.concurrency ?? config.jobs.workerConcurrency;
  const batchOptions = { maxBatch: concurrency };
  // A parent job holds its slot while its children run in others: parents may take half the slots at most, so that
  // parents can never fill a worker and leave their children no room to run.
  const parentSlots = Math.floor(concurrency / 2);
  let parents = 0;
  // Deliveries and claimed jobs in hand, started or starting: the claimer fills only what is free, and a delivery that
  // finds every slot held by claimed jobs (deliveries resumed in the middle of a claiming spell) waits for one.
  const slots = createJobSlots(concurrency);
  let claimer: Claimer | undefined;
  let claimedStarts = 0;
  // Two start transactions may be under way at once: a delivery arriving while a start commits begins its own rather
  // than waiting for that commit (the start is what create→start latency ends on); they lock rows in id order.
  const starts = createBatcher<StartInput, StartResult>({ ...batchOptions, maxInFlight: STARTS_IN_FLIGHT, run: async (inputs) => fulfilled(await startMany(ex, inputs)) });
  const completions = createBatcher<CompleteInput, boolean>({ ...batchOptions, run: (inputs) => completeMany(ex, inputs) });

  async function onMessage(d: Delivery): Promise<void> {
    claimer?.noteDelivery();
    const msg = parseJobMessage(d.data);
    if (!msg) {
      log.warn({ subject: d.subject, seq: d.seq }, "not a job message; terminated");
      d.term("not a job message");
      return;
    }
    const span = trace.getActiveSpan();
    span?.setAttributes(jobAttributes({ id: msg.jobId, kind: msg.kind }));
    if (!catalog.get(msg.kind)) {
      const state = await ex.state(msg.jobId);
      if (state === null || isTerminal(state)) return d.ack();
      log.warn({ jobId: msg.jobId, kind: msg.kind }, "job of a kind this worker does not know; redelivering later");
      return d.nak(UNKNOWN_KIND_DELAY_MS);
    }
    await take(d, msg, span, false);
  }

  /** A claimed job (or, not `claimed`, a child run here again), in a span of its own continuing the job's trace as a delivery's does. */
  function takeClaimed(job: ClaimedJob, settle: Settle, claimed = true): Promise<boolean> {
    const options = { kind: SpanKind.CONSUMER, parent: contextFromTraceparent(job.traceparent), attributes: jobAttributes({ id: job.jobId, kind: job.kind }) };
    return withSpan(`${claimed ? "claim" : "run"} ${job.kind}`, options, (span) => take(settle, job, span, claimed));
  }

  /** Starts and runs a job under the parent-slot rule; whether it started. */
  async function take(d: Settle, msg: Pick<JobMessage, "jobId" | "kind">, span: Span, claimed: boolean): Promise<boolean> {
    const parent = catalog.get(msg.kind)?.parent === true;
    if (parent && parents >= parentSlots) {
      d.nak(PARENTS_BUSY_MS);
      return false;
    }
    if (parent) parents++;
    try {
      if (!(claimed ? slots.tryTake() : await slots.take(() => d.working()))) {
        // Stopping (or, for a claim, the slot went meanwhile): the job stays queued for a later delivery or claim.
        d.nak(START_RETRY_MS);
        return false;
      }
      try {
        return await startAndRun(d, msg, span, claimed);
      } finally {
        slots.release();
      }
    } finally {
      if (parent) parents--;
    }
  }

  async function startAndRun(d: Settle, msg: Pick<JobMessage, "jobId" | "kind">, span: Span, claimed: boolean): Promise<boolean> {
    let started;
    try {
      started = await starts.submit({ jobId: msg.jobId, kind: msg.kind, owner, leaseMs, claimed });
    } catch (err) {
      // A claimed start that lost a certification conflict lost a race another worker won: nothing to say.
      if (claimed && isTransientConflict(err)) log.debug({ err, jobId: msg.jobId }, "a claimed job's start lost a conflict; left to the database");
      else log.warn({ err, jobId: msg.jobId }, claimed ? "could not start a claimed job; it stays queued" : "could not start the job; redelivering");
      d.nak(START_RETRY_MS);
      return false;
    }
    // Under another worker's lease: that worker may be dead (this is its message coming back), so look again once
    // the lease has run out; the start then takes the job over, or finds it ended and acks.
    if (started.status === "skipped" && started.leaseInMs !== undefined) {
      d.nak(started.leaseInMs + ACK_WAIT_MARGIN_MS);
      return false;
    }
    // Skipped: a duplicate or stale delivery. Ended: cancelled, timed out or out of attempts before it ran.
    if (started.status !== "started") {
      d.ack();
      return false;
    }
    span?.setAttributes(jobAttributes(started.job));
    if (claimed) claimedStarts++;
    await runAttempt(d, started.job);
    return true;
  }

  async function runAttempt(d: Settle, job: StartedJob): Promise<void> {
    const ref: AttemptRef = { jobId: job.id, kind: job.kind, attempt: job.attempt, owner };
    const jobLog = lazyChild(log, { jobId: job.id, kind: job.kind, attempt: job.attempt });
    const kind = catalog.get(job.kind);
    const parsed = kind?.payload.safeParse(job.payload);
    if (!kind || !parsed?.success) {
      const violations = parsed?.error?.issues.map((i) => ({ field: i.path.join("."), description: i.message })) ?? [];
      const error = kind
        ? { code: "INVALID_ARGUMENT", message: `the payload does not fit the ${job.kind} job's schema`, details: { violations } }
        : { code: "UNIMPLEMENTED", message: `no handler for job kind ${job.kind}` };
      return commit(d, jobLog, () => ex.fail({ ...ref, error }), "term");
    }
    const control = createAttemptControl({ ex, ref, services, log: jobLog, deadlineInMs: job.deadlineInMs });
    active.add(control);
    const renewal = renewLease(d, control, ref, jobLog);
    let outcome: JobOutcome | undefined;
    let failure: Failure | undefined;
    try {
      outcome = await withSpan(`job.handle ${job.kind}`, { attributes: jobAttributes(job) }, () => kind.handle(control.ctx, parsed.data));
    } catch (err) {
      failure = classifyFailure(err, control, jobLog);
    } finally {
      clearInterval(renewal);
      control.dispose();
      active.delete(control);
    }
    if (outcome?.status === "succeeded") {
      return commit(d, jobLog, () => completions.submit({ ...ref, result: outcome.result, effects: outcome.effects, effectsGuarded: outcome.effectsGuarded }), "ack");
    }
    if (outcome?.status === "pending") {
      const { checkAfterMs, progressPercent, progressMessage } = outcome;
      return commit(d, jobLog, () => ex.pending({ ...ref, checkAfterMs, progressPercent, progressMessage }), "ack");
    }
    await settleFailure(d, job, kind, ref, failure ?? { type: "retryable", error: { code: "INTERNAL", message: "the handler returned no outcome" } }, jobLog);
  }

  async function settleFailure(d: Settle, job: StartedJob, kind: JobKind, ref: AttemptRef, failure: Failure, jobLog: typeof log): Promise<void> {
    switch (failure.type) {
      case "cancelled":
        return commit(d, jobLog, () => ex.cancel(ref), "ack");
      case "stopping":
        // Redelivered once the lease has surely expired, so that the next start takes the job over.
        return d.nak(leaseMs + 1_000);
      case "lease_lost":
        return d.ack();
      case "timed_out":
        return commit(d, jobLog, () => ex.fail({ ...ref, error: failure.error, eventType: "timed_out" }), "term");
      case "permanent":
        return commit(d, jobLog, () => ex.fail({ ...ref, error: failure.error }), "term");
      case "retryable": {
        if (job.attempt >= job.maxAttempts) return commit(d, jobLog, () => ex.fail({ ...ref, error: failure.error, deadLetter: true }), "term");
        const delayMs = JobCatalog.backoff(kind, job.attempt);
        return commit(d, jobLog, () => ex.scheduleRetry({ ...ref, error: failure.error, delayMs }), { nakMs: delayMs });
      }
    }
  }

  const commit = (d: Settle, jobLog: Logger, fn: () => Promise<boolean>, then: SettleAs): Promise<void> => commitThenSettle(d, jobLog, fn, then, leaseMs);

  /** Keeps the delivery and the lease alive while the handler runs; reads cancellation requests on the way. */
  function renewLease(d: Settle, control: AttemptControl, ref: AttemptRef, jobLog: typeof log): NodeJS.Timeout {
    let busy = false;
    return setInterval(() => {
      d.working();
      if (busy) return;
      busy = true;
      ex.renewLease(ref, leaseMs)
        .then((r) => {
          if (!r.held) control.abort(new LeaseLostError());
          else if (r.cancelRequested && !control.cancelRequested()) control.requestCancel();
        })
        .catch((err: unknown) => jobLog.warn({ err }, "could not renew the job's lease"))
        .finally(() => (busy = false));
    }, renewEveryMs);
  }

  // Children a parent running here releases into this worker's free slots, started in the release's transaction:
  // they hold their slots as deliveries and claimed jobs do, and stop() waits for them.
  const localStarts = createLocalStarts({ owner, leaseMs, catalog, slots, runAttempt, take: (job, settle) => takeClaimed(job, settle, false), log });
  const services: JobServices = { ...resources, localStarts };

  const consumption = await consume(jetstream(nats), { stream, durable, maxMessages: concurrency, onMessage, log });
  const claimAfterMs = config.jobs.claimAfterMs;
  // Started once the consumer is up, so that a delivery, if one comes, is seen first.
  if (claimAfterMs > 0) claimer = startClaimer({ sql: ex.deps.sql, kinds: catalog.names(), afterMs: claimAfterMs, freeSlots: () => slots.free, take: takeClaimed, startedSoFar: () => claimedStarts, log });
  log.info({ stream, durable, ackWaitMs, leaseMs, claimAfterMs }, "worker consuming jobs");

  return {
    owner,
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get active() {
      return active.size;
    },
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get claimed() {
      return claimedStarts;
    },
    async stop(graceMs) {
      localStarts.stop();
      slots.close();
      const stopped = Promise.all([consumption.stop(), claimer?.stop()]).then(() => localStarts.drained());
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      if ((await Promise.race([stopped.then(() => "done"), graceOver.then(() => "grace")])) === "grace") {
        log.warn({ running: active.size }, "grace period over; aborting running handlers");
        for (const c of active) c.abort(new RunnerStoppingError());
        await Promise.race([stopped, new Promise((r) => setTimeout(r, ABORT_WAIT_MS))]);
      }
      clearTimeout(timer);
    },
  };
}
