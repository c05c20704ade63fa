// A worker's free slots as a parent job running in it uses them (LocalStarts, src/jobs/catalog.ts): slots reserved
// before a release round, and the children the round started run here, each in its slot, without a message; a
// retry's nak takes the child up here again after its delay, as a redelivery would.
import type { Logger } from "../log.js";
import { recordJob } from "../telemetry/metrics.js";
import { contextFromTraceparent } from "../telemetry/propagation.js";
import { jobAttributes, SpanKind, withSpan } from "../telemetry/spans.js";
import type { StartedJob } from "./attempt.js";
import type { JobCatalog, LocalStarts } from "./catalog.js";
import type { ClaimedJob } from "./claimer.js";
import type { Settle } from "./settle.js";
import type { JobSlots } from "./slots.js";

export interface WorkerLocalStarts extends LocalStarts {
  /** The worker stops: nothing is taken up again here (the reconciler publishes what is left). */
  stop(): void;
  /** Resolves once every child run here has ended (the worker is stopping: its slots are closed, no more start). */
  drained(): Promise<void>;
}

export interface LocalStartsOptions {
  owner: string;
  leaseMs: number;
  catalog: JobCatalog;
  slots: JobSlots;
  /** Runs a started job to its settled outcome. */
  runAttempt(settle: Settle, job: StartedJob): Promise<void>;
  /** Starts (compare-and-set) and runs a queued job as a claimed one, in a slot it waits for. */
  take(job: ClaimedJob, settle: Settle): Promise<boolean>;
  log: Logger;
}

export function createLocalStarts(options: LocalStartsOptions): WorkerLocalStarts {
  const { catalog, slots, log } = options;
  const runs = new Set<Promise<void>>();
  let stopping = false;

  /**
   * How a job that came with no message is settled: a nak takes it up here again after its delay, as JetStream would
   * redeliver it (a retry's backoff, a commit that kept failing); an ack or a term has nothing to do.
   */
  const settleOf = (job: ClaimedJob): Settle => {
    const settle: Settle = {
      ack() {},
      term() {},
      working() {},
      nak(delayMs) {
        if (stopping) return;
        const again = (): void => {
          if (stopping) return;
          options.take(job, settle).catch((err: unknown) => log.warn({ err, jobId: job.jobId }, "could not run the job again"));
        };
        setTimeout(again, delayMs ?? 0).unref();
      },
    };
    return settle;
  };

  return {
    owner: options.owner,
    leaseMs: options.leaseMs,
    runs(kind) {
      const k = catalog.get(kind);
      return k !== undefined && k.parent !== true;
    },
    reserve(max) {
      let n = 0;
      while (n < max && slots.tryTake()) n++;
      return n;
    },
    unreserve(n) {
      for (let i = 0; i < n; i++) slots.release();
    },
    run(job) {
      recordJob("started", job.kind);
      const span = { kind: SpanKind.CONSUMER, parent: contextFromTraceparent(job.traceparent), attributes: jobAttributes(job) };
      const run = withSpan(`run ${job.kind}`, span, () => options.runAttempt(settleOf({ jobId: job.id, kind: job.kind, traceparent: job.traceparent }), job))
        .catch((err: unknown) => log.warn({ err, jobId: job.id }, "a child started on release failed to run"))
        .finally(() => {
          slots.release();
          runs.delete(run);
        });
      runs.add(run);
    },
    stop() {
      stopping = true;
    },
    async drained() {
      while (runs.size > 0) await Promise.allSettled([...runs]);
    },
  };
}
