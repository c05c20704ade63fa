// Exponential backoff with full jitter, for everything that waits for a store or a server to come back.

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
