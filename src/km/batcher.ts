// Group commit for KM's per-call work: items submitted while earlier batches are being written wait and go together
// in the next batch (one statement, one commit, one file write for all of them), and every caller awaits the batch
// that carries its item. Under load the batches grow by themselves; a lone call waits for nothing but its own batch.

export interface Batcher<I, O> {
  /** Resolves with the item's result once its batch is done; rejects with the batch's error when the batch fails. */
  submit(item: I): Promise<O>;
  /** Waits until every batch submitted so far has settled. */
  flush(): Promise<void>;
}

export interface BatcherOptions<I, O> {
  /** Writes one batch; resolves with one result per item, in order. A rejection fails every item of the batch. */
  run(items: readonly I[]): Promise<readonly O[]>;
  /** Batches under way at once (1: classic group commit, the next batch forms while one is written). */
  maxInFlight: number;
  /** Items in one batch at most (bounds the statement's size). */
  maxBatch: number;
}

interface Waiting<I, O> {
  item: I;
  resolve(result: O): void;
  reject(err: unknown): void;
}

export function createBatcher<I, O>(options: BatcherOptions<I, O>): Batcher<I, O> {
  const { run, maxInFlight, maxBatch } = options;
  let queue: Waiting<I, O>[] = [];
  let inFlight = 0;
  let scheduled = false;
  const running = new Set<Promise<void>>();

  const write = async (batch: Waiting<I, O>[]): Promise<void> => {
    try {
      const results = await run(batch.map((w) => w.item));
      if (results.length !== batch.length) throw new Error(`a batch of ${batch.length} items produced ${results.length} results`);
      batch.forEach((w, i) => w.resolve(results[i] as O));
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  };

  const start = (): void => {
    scheduled = false;
    while (queue.length > 0 && inFlight < maxInFlight) {
      const batch = queue.length <= maxBatch ? queue : queue.slice(0, maxBatch);
      queue = queue.length <= maxBatch ? [] : queue.slice(maxBatch);
      inFlight++;
      const done: Promise<void> = write(batch).finally(() => {
        inFlight--;
        running.delete(done);
        schedule();
      });
      running.add(done);
    }
  };

  // The batch forms until the event loop has run what is ready now (setImmediate), so calls that arrived together
  // share it even when nothing is in flight.
  const schedule = (): void => {
    if (scheduled || queue.length === 0 || inFlight >= maxInFlight) return;
    scheduled = true;
    setImmediate(start);
  };

  return {
    submit(item) {
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        schedule();
      });
    },
    async flush() {
      while (running.size > 0 || queue.length > 0) {
        await Promise.allSettled([...running]);
        if (running.size === 0 && queue.length > 0) await new Promise((r) => setImmediate(r));
      }
    },
  };
}
