// Group commit in the process (leader and followers), for the job paths and KM alike: a call that finds fewer batches
// under way than allowed starts one (once the calls made together have gathered); calls that arrive while batches
// commit wait and go together in the next one. A lone call costs no extra latency, and under load one commit (one
// statement, one file write) serves many calls. A batch runs in the trace context of its first call, so a batch of one
// is traced exactly as the call alone would be.
import { context, type Context } from "@opentelemetry/api";
import { SlotSet } from "../runtime/slot-table.js";

export interface BatcherOptions<I, O> {
  /**
   * Commits a batch; resolves with one outcome per item, in order (an item may fail alone: `fulfilled(values)` when
   * none can). A rejection, or a wrong number of outcomes, rejects every item of the batch.
   */
  run(items: I[]): Promise<PromiseSettledResult<O>[]>;
  /** Items per batch at most (bounds the statement's size). */
  maxBatch: number;
  /** Batches under way at once at most (default 1: the next batch forms while one commits). */
  maxInFlight?: number;
  /**
   * How long a batch gathers when nothing holds it back: "tick" (default) until the current tick's synchronous code
   * and microtasks have run, so calls made together go together at no latency; "turn" until the event loop has run
   * the I/O callbacks that are ready now (setImmediate), so calls arriving in one turn share it even with nothing in
   * flight.
   */
  gather?: "tick" | "turn";
}

export interface Batcher<I, O> {
  /** Resolves with the item's outcome once its batch is done; rejects with the batch's error when the batch fails. */
  submit(item: I): Promise<O>;
  /** Waits until every item submitted so far has been answered. */
  flush(): Promise<void>;
  /** Batches committed so far and the items they held (for logs and benchmarks). */
  stats(): { batches: number; items: number };
}

/** The outcomes of a batch in which every item succeeded. */
export function fulfilled<O>(values: readonly O[]): PromiseSettledResult<O>[] {
  return values.map((value) => ({ status: "fulfilled", value }));
}

interface Waiting<I, O> {
  item: I;
  context: Context;
  resolve(value: O): void;
  reject(reason: unknown): void;
}

export function createBatcher<I, O>(options: BatcherOptions<I, O>): Batcher<I, O> {
  const maxInFlight = Math.max(1, options.maxInFlight ?? 1);
  const defer = options.gather === "turn" ? (fn: () => void) => void setImmediate(fn) : (fn: () => void) => process.nextTick(fn);
  let queue: Waiting<I, O>[] = [];
  let inFlight = 0;
  let scheduled = false;
  let batches = 0;
  let items = 0;
  const running = new SlotSet<Promise<void>>(); // an entry per batch: ../runtime/slot-table.ts

  const write = async (batch: Waiting<I, O>[]): Promise<void> => {
    try {
      const out = await context.with((batch[0] as Waiting<I, O>).context, () => options.run(batch.map((w) => w.item)));
      if (out.length !== batch.length) throw new Error(`a batch of ${batch.length} items produced ${out.length} results`);
      batch.forEach((w, i) => {
        const r = out[i] as PromiseSettledResult<O>;
        if (r.status === "fulfilled") w.resolve(r.value);
        else w.reject(r.reason);
      });
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  };

  const start = (): void => {
    scheduled = false;
    while (queue.length > 0 && inFlight < maxInFlight) {
      const batch = queue.slice(0, options.maxBatch);
      queue = queue.slice(batch.length);
      inFlight++;
      batches++;
      items += batch.length;
      const done: Promise<void> = write(batch).finally(() => {
        inFlight--;
        running.delete(done);
        schedule();
      });
      running.add(done);
    }
  };

  const schedule = (): void => {
    if (scheduled || queue.length === 0 || inFlight >= maxInFlight) return;
    scheduled = true;
    defer(start);
  };

  return {
    submit(item) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, context: context.active(), resolve, reject });
        schedule();
      });
    },
    async flush() {
      while (running.size > 0 || queue.length > 0) {
        await Promise.allSettled([...running]);
        if (running.size === 0 && queue.length > 0) await new Promise((r) => setImmediate(r));
      }
    },
    stats: () => ({ batches, items }),
  };
}
