// A worker's free slots as a parent job running in it uses them (LocalStarts, src/jobs/catalog.ts): slots reserved
// before a release round, and the children the round started run here, each in its slot, without a message.
import type { Logger } from "../log.js";
import { recordJob } from "../telemetry/metrics.js";
import { contextFromTraceparent } from "../telemetry/propagation.js";
import { jobAttributes, SpanKind, withSpan } from "../telemetry/spans.js";
import type { StartedJob } from "./attempt.js";
import type { JobCatalog, LocalStarts } from "./catalog.js";
import type { JobSlots } from "./slots.js";

export interface WorkerLocalStarts extends LocalStarts {
  /** Resolves once every child run here has ended (the worker is stopping: its slots are closed, no more start). */
  drained(): Promise<void>;
}

/** `runAttempt` runs a started job to its settled outcome, as for a claimed job (nothing to acknowledge). */
export function createLocalStarts(options: { owner: string; leaseMs: number; catalog: JobCatalog; slots: JobSlots; runAttempt: (job: StartedJob) => Promise<void>; log: Logger }): WorkerLocalStarts {
  const { catalog, slots, log } = options;
  const runs = new Set<Promise<void>>();
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
      const run = withSpan(`run ${job.kind}`, span, () => options.runAttempt(job))
        .catch((err: unknown) => log.warn({ err, jobId: job.id }, "a child started on release failed to run"))
        .finally(() => {
          slots.release();
          runs.delete(run);
        });
      runs.add(run);
    },
    async drained() {
      while (runs.size > 0) await Promise.allSettled([...runs]);
    },
  };
}
