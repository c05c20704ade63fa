// Group commit in the process (leader and followers): a call that finds no batch committing starts one at once (at
// the end of the current tick, so calls made together go together); calls that arrive while batches commit wait and
// go together in the next one. A lone call costs no extra latency, and under load one commit serves many calls.
// A batch runs in the trace context of its first call: a batch of one is traced exactly as the call alone would be.
import { context, type Context } from "@opentelemetry/api";

export interface BatcherOptions<I, O> {
  /**
   * Commits a batch; resolves with one outcome per item, in order (an item may fail alone). A rejection rejects every
   * item of the batch.
   */
  run(items: I[]): Promise<PromiseSettledResult<O>[]>;
  /** Items per batch at most. */
  maxBatch: number;
  /** Batches committing at once at most (default 1); more calls queue meanwhile and form bigger batches. */
  maxConcurrent?: number;
}

export interface Batcher<I, O> {
  submit(item: I): Promise<O>;
  /** Batches committed so far and the items they held (for logs and benchmarks). */
  stats(): { batches: number; items: number };
}

interface Pending<I, O> {
  item: I;
  context: Context;
  resolve(value: O): void;
  reject(reason: unknown): void;
}

export function createBatcher<I, O>(options: BatcherOptions<I, O>): Batcher<I, O> {
  const maxConcurrent = Math.max(1, options.maxConcurrent ?? 1);
  const queue: Pending<I, O>[] = [];
  let running = 0;
  let scheduled = false;
  let batches = 0;
  let items = 0;

  const settle = (batch: Pending<I, O>[], out: PromiseSettledResult<O>[]): void => {
    batch.forEach((p, i) => {
      const r = out[i];
      if (r?.status === "fulfilled") p.resolve(r.value);
      else p.reject(r ? r.reason : new Error("the batch returned no outcome for this call"));
    });
  };

  const flush = (): void => {
    scheduled = false;
    while (running < maxConcurrent && queue.length > 0) {
      const batch = queue.splice(0, options.maxBatch);
      running++;
      batches++;
      items += batch.length;
      context
        .with((batch[0] as Pending<I, O>).context, () => options.run(batch.map((p) => p.item)))
        .then(
          (out) => settle(batch, out),
          (err: unknown) => batch.forEach((p) => p.reject(err)),
        )
        .finally(() => {
          running--;
          if (queue.length > 0) schedule();
        });
    }
  };

  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    process.nextTick(flush);
  };

  return {
    submit(item) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, context: context.active(), resolve, reject });
        if (running < maxConcurrent) schedule();
      });
    },
    stats: () => ({ batches, items }),
  };
}
