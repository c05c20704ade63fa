// Settling an attempt: its outcome's commit, tried again briefly, and then its message — a delivery's ack, nak or term,
// or nothing for a job claimed from the database (claimer.ts).
import type { Logger } from "../log.js";
import type { Delivery } from "../mq/consumer.js";

/** How an attempt is settled: a delivery's message, or nothing for a claimed job (claimer.ts claimedSettle). */
export type Settle = Pick<Delivery, "ack" | "nak" | "term" | "working">;

/** What to do with the message once the outcome applied. */
export type SettleAs = "ack" | "term" | { nakMs: number };

/** Pauses between tries of an outcome's commit before giving the attempt up to a later one. */
const COMMIT_RETRIES_MS = [200, 1_000];

/**
 * Commits an outcome, then settles the message: as asked when the outcome applied, ack when it was rejected as stale.
 * A commit that keeps failing (database down) leaves the job RUNNING and the message unacknowledged: it comes back
 * after the lease, and a new attempt runs (effects are only ever applied with a winning completion).
 */
export async function commitThenSettle(d: Settle, jobLog: Logger, fn: () => Promise<boolean>, then: SettleAs, leaseMs: number): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      const applied = await fn();
      if (!applied) return d.ack();
      if (then === "ack") return d.ack();
      if (then === "term") return d.term();
      return d.nak(then.nakMs);
    } catch (err) {
      const pause = COMMIT_RETRIES_MS[i];
      if (pause === undefined) {
        jobLog.error({ err }, "could not commit the job's outcome; the job runs again after its lease");
        return d.nak(leaseMs + 1_000);
      }
      jobLog.warn({ err }, "could not commit the job's outcome; trying again");
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}
