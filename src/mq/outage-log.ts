// Logging a dependency's outage once, not once per failed try: a warning when it starts, a summary at most every
// `everyMs` while it lasts, and one line when it ends — with the count of failed tries and how long it lasted.
import type { Logger } from "../log.js";

export interface OutageLog {
  /** A try failed: the first failure of an outage warns at once; later ones add to the next summary. */
  failed(err: unknown, detail?: Record<string, unknown>): void;
  /** A try succeeded: ends the outage (logged once), if there was one. */
  succeeded(): void;
  /** Whether the last try failed. */
  readonly down: boolean;
  /** Failed tries in a row (0 when up). */
  readonly failures: number;
}

export function createOutageLog(log: Logger, what: string, everyMs = 30_000, now: () => number = Date.now): OutageLog {
  let since: number | undefined;
  let failures = 0;
  let lastLine = 0;
  let sinceLine = 0;
  return {
    failed(err, detail = {}) {
      failures++;
      sinceLine++;
      const t = now();
      if (since === undefined) {
        since = t;
        lastLine = t;
        sinceLine = 0;
        log.warn({ err, ...detail }, `${what} failed; backing off, and logging this outage at most every ${Math.round(everyMs / 1000)} s`);
      } else if (t - lastLine >= everyMs) {
        log.warn({ err, ...detail, failures, failuresSinceLastLine: sinceLine, forMs: t - since }, `${what} still failing`);
        lastLine = t;
        sinceLine = 0;
      }
    },
    succeeded() {
      if (since === undefined) return;
      log.info({ failures, forMs: now() - since }, `${what} works again`);
      since = undefined;
      failures = 0;
    },
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get down() {
      return since !== undefined;
    },
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get failures() {
      return failures;
    },
  };
}
