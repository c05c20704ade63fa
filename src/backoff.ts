// Exponential backoff with full jitter, and the retry loop built on it, for everything that waits for a store or a
// server to come back.

export interface Backoff {
  initialMs: number;
  maxMs: number;
  /** Growth per attempt (default 2). */
  multiplier?: number;
}

/**
 * The pause before try `attempt + 1` after `attempt` failures: a random time up to initialMs × multiplier^(attempt-1),
 * capped at maxMs. Full jitter spreads out the processes that lost a server together, so they do not return together.
 */
export function backoffDelay(attempt: number, b: Backoff): number {
  const ceiling = Math.min(b.maxMs, b.initialMs * (b.multiplier ?? 2) ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface RetryOptions {
  backoff: Backoff;
  /** Whether waiting can cure the error; any other error is thrown at once. */
  retryable(err: unknown): boolean;
  /** Once this long has passed since the first try the last error stands (absent or 0: wait as long as it takes). */
  giveUpAfterMs?: number | undefined;
  /** Before each pause: say what is waited for. */
  onRetry(err: unknown, attempt: number, retryInMs: number): void;
  /** After a try succeeded that followed failures. */
  onRecovered?(attempts: number): void;
}

/** Runs `fn` until it succeeds, pausing with backoff after each failure that waiting can cure. */
export async function retrying<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  const until = options.giveUpAfterMs ? Date.now() + options.giveUpAfterMs : Number.POSITIVE_INFINITY;
  for (let attempt = 1; ; attempt++) {
    try {
      const value = await fn();
      if (attempt > 1) options.onRecovered?.(attempt);
      return value;
    } catch (err) {
      if (!options.retryable(err) || Date.now() >= until) throw err;
      const retryInMs = backoffDelay(attempt, options.backoff);
      options.onRetry(err, attempt, retryInMs);
      await sleep(retryInMs);
    }
  }
}
