// Watching one job: the doorbell subscription comes first, then the job and its history are read, so no transition
// committed after the first read can be missed; later reads (on each doorbell, and every interval as a safety net)
// return the events after the last one sent, in order.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Sql, SqlPool } from "../db/sql.js";
import { NotFoundError } from "../errors.js";
import { jobDoorbellSubject, listEvents } from "./events.js";
import { isTerminal, type Job, type JobEvent } from "./model.js";
import { findJob } from "./repository.js";

export interface JobUpdate {
  job: Job;
  /** The transition reported; absent in the first update (the job as it stands when watching begins). */
  event?: JobEvent;
}

export interface WatchDeps {
  sql: SqlPool;
  nats?: NatsConnection | undefined;
  intervalMs: number;
  /** Adds what a job's read leaves out (a parent's children counts), in the snapshot's transaction. */
  withChildren?: (sql: Sql, job: Job) => Promise<Job>;
}

/** Whether an event ends a watch: it moved the job into a terminal state. */
export function endsWatch(event: JobEvent): boolean {
  return isTerminal(event.toState) && (event.fromState === null || !isTerminal(event.fromState));
}

/** A wake-up signal: doorbells ring it; `wait` resolves on the next ring (or one that came since the last wait). */
export class Bell {
  private rung = false;
  private wake: (() => void) | undefined;

  ring(): void {
    this.rung = true;
    this.wake?.();
  }

  async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (!this.rung && !signal.aborted) {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => this.wake?.();
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        timer = setTimeout(resolve, ms);
        signal.addEventListener("abort", onAbort, { once: true });
      });
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      this.wake = undefined;
    }
    this.rung = false;
  }
}

/** Reads the job and the events after `after` as one consistent snapshot (the events that produced that job state). */
async function snapshot(deps: WatchDeps, id: string, after: number): Promise<{ job: Job | null; events: JobEvent[] }> {
  return deps.sql.transaction(
    async (tx) => {
      const events = await listEvents(tx, id, after);
      const job = await findJob(tx, id);
      return { job: job && deps.withChildren ? await deps.withChildren(tx, job) : job, events };
    },
    { isolation: "REPEATABLE READ" },
  );
}

export async function* watchJob(deps: WatchDeps, id: string, signal: AbortSignal): AsyncGenerator<JobUpdate> {
  const bell = new Bell();
  let sub: Subscription | undefined;
  if (deps.nats && !deps.nats.isClosed()) {
    sub = deps.nats.subscribe(jobDoorbellSubject(id), { callback: () => bell.ring() });
    // The subscription must be registered with the server before the first read, or a doorbell could slip between.
    await deps.nats.flush().catch(() => undefined);
  }
  try {
    let { job, events } = await snapshot(deps, id, 0);
    if (!job) throw new NotFoundError("job", id);
    let last = events.at(-1)?.sequence ?? 0;
    yield { job };
    if (isTerminal(job.state)) return;
    while (!signal.aborted) {
      await bell.wait(deps.intervalMs, signal);
      if (signal.aborted) return;
      // Events come in pages of 1000: drain them before waiting again.
      for (;;) {
        ({ job, events } = await snapshot(deps, id, last));
        if (!job) return;
        for (const event of events) {
          last = event.sequence;
          yield { job, event };
          if (endsWatch(event)) return;
        }
        if (events.length < 1000) break;
      }
      // Every event is sent; a job that ended without a terminal event (it should not happen) ends the watch too.
      if (isTerminal(job.state)) return;
    }
  } finally {
    sub?.unsubscribe();
  }
}
