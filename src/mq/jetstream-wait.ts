// Start-up against a JetStream that is not answering yet: a cluster electing its meta leader, a server still
// recovering its streams. Setting up the jobs stream or a consumer then times out or finds no responder; a role waits
// and says so, with backoff, instead of exiting — as it does for MariaDB and for NATS itself.
import { JetStreamApiError } from "@nats-io/jetstream";
import { retrying, type Backoff } from "../backoff.js";
import type { Logger } from "../log.js";

/** JetStream's "temporarily unavailable" (no meta leader yet). */
const JETSTREAM_NOT_READY = 10008;
const WAIT: Backoff = { initialMs: 250, maxMs: 5_000 };

/** Errors that waiting can cure: no answer in time, nobody to answer, or JetStream saying it is not ready. */
export function isJetStreamStarting(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.code === JETSTREAM_NOT_READY || err.status === 503;
  if (!(err instanceof Error)) return false;
  if (err.name === "TimeoutError" || err.name === "NoResponders") return true;
  return err.name === "RequestError" && err.cause instanceof Error && (err.cause.name === "NoResponders" || err.cause.name === "TimeoutError");
}

/**
 * Runs `fn` (an idempotent set-up), again with backoff while JetStream is starting; past `giveUpAfterMs` (the
 * process's startup.waitForStoresMs; 0: as long as it takes) the error stands.
 */
export async function whileJetStreamStarts<T>(log: Logger, what: string, fn: () => Promise<T>, giveUpAfterMs: number): Promise<T> {
  return retrying(fn, {
    backoff: WAIT,
    giveUpAfterMs,
    retryable: isJetStreamStarting,
    onRetry: (err, attempt, retryInMs) => log.warn({ attempt, retryInMs }, `waiting for JetStream to ${what}: ${(err as Error).message}`),
  });
}
