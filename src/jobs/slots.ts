// A worker's job slots, shared by JetStream's deliveries and the jobs it claims from the database: never more jobs in
// hand than the worker's concurrency, whichever way they came.
/** How often a delivery waiting for a slot tells JetStream it is being worked on (well inside any ack wait). */
export const SLOT_WAIT_WORKING_MS = 5_000;

export interface JobSlots {
  /** Slots in use, including those handed to a waiting delivery. */
  readonly taken: number;
  /** Slots free now (what the claimer may fill). */
  readonly free: number;
  /** Deliveries waiting for a slot. */
  readonly waiting: number;
  /** Takes a free slot at once; false when none is free (or the slots are closed). */
  tryTake(): boolean;
  /**
   * Takes a slot, waiting for one if none is free (the consumer pulls no more than the concurrency, but claimed jobs
   * may hold slots when deliveries resume). `keepAlive` runs every SLOT_WAIT_WORKING_MS while it waits. Resolves false
   * when the slots close first (the worker is stopping): the caller has no slot then.
   */
  take(keepAlive: () => void): Promise<boolean>;
  /** Gives a slot back: to the longest-waiting delivery if there is one. */
  release(): void;
  /** No more slots: waiting deliveries resolve false, and later takes too. */
  close(): void;
}

export function createJobSlots(concurrency: number): JobSlots {
  let taken = 0;
  let closed = false;
  const waiters: ((got: boolean) => void)[] = [];
  return {
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get taken() {
      return taken;
    },
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get free() {
      return closed ? 0 : Math.max(0, concurrency - taken);
    },
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get waiting() {
      return waiters.length;
    },
    tryTake() {
      if (closed || taken >= concurrency) return false;
      taken++;
      return true;
    },
    async take(keepAlive) {
      if (this.tryTake()) return true;
      if (closed) return false;
      const timer = setInterval(keepAlive, SLOT_WAIT_WORKING_MS);
      try {
        return await new Promise<boolean>((resolve) => waiters.push(resolve));
      } finally {
        clearInterval(timer);
      }
    },
    release() {
      // Handed over, not freed: the claimer must not see it free in between.
      const next = closed ? undefined : waiters.shift();
      if (next) next(true);
      else taken = Math.max(0, taken - 1);
    },
    close() {
      closed = true;
      for (const w of waiters.splice(0)) w(false);
    },
  };
}
