// The outbox relay: publishes committed outbox rows to JetStream. Fast path: the service hands over a row right after
// its transaction commits and the relay publishes it at once. Poll loop: rows left unpublished for more than a second
// (a crash between commit and publish, NATS down) are claimed with FOR UPDATE SKIP LOCKED, so several relays share
// the work. Published rows are marked in batches, so marking costs a fraction of a commit per job. While JetStream
// refuses publications the poll loop backs off and the outage is logged once (then summarised), not per row.
import type { SqlPool } from "../db/sql.js";
import type { Logger } from "../log.js";
import { backoffDelay } from "../backoff.js";
import { publishJob, type JetStreamPublish } from "../mq/jobs-stream.js";
import { createOutageLog } from "../mq/outage-log.js";
import { contextFromTraceparent } from "../telemetry/propagation.js";
import { jobAttributes, withSpan } from "../telemetry/spans.js";
import { claimStaleOutboxRows, countFailedTries, encodeJobMessage, markOutboxPublished, type OutboxRef } from "./outbox.js";
import { SlotSet } from "../runtime/slot-table.js";

/** What the job service needs from a relay: take a committed row for immediate publication. */
export interface OutboxPublisher {
  submit(entry: OutboxRef): void;
}

export interface OutboxRelayOptions {
  /** The provisioning database's pool (src/db/sql.ts). */
  sql: SqlPool;
  /** A JetStream client, or an acked publisher over the process's connection (src/mq/acked-publisher.ts). */
  js: JetStreamPublish;
  log: Logger;
  /** How often the poll loop looks for rows left behind (default 1000 ms). */
  pollIntervalMs?: number;
  /** Rows unpublished for longer than this belong to the poll loop (default 1000 ms). */
  staleAfterMs?: number;
  /** Rows claimed per poll transaction (default 256). */
  batchSize?: number;
  /** Fast-path publications awaiting JetStream's ack at once (default 256); more wait in a queue. */
  maxInFlight?: number;
  /** Fast-path rows waiting beyond maxInFlight at most (default 10,000); more are left to the poll loop. */
  maxQueued?: number;
  /** Wait for JetStream's ack per try (default 5000 ms). */
  publishTimeoutMs?: number;
  /** Fast-path tries before a row is left to the poll loop (default 3), with the same msg id each time. */
  maxTries?: number;
  /** Published rows are marked at most this long after their ack, in one statement per batch (default 50 ms). */
  markDelayMs?: number;
  /** Whether the poll loop runs (default true); the fast path always does. */
  poll?: boolean;
  /** While JetStream refuses publications, the poll loop waits up to this long between passes (default 10 s). */
  maxBackoffMs?: number;
  /** While JetStream refuses publications, one log line at most this often (default 30 s). */
  outageLogEveryMs?: number;
}

export interface RelayStats {
  published: number;
  duplicates: number;
  failedTries: number;
  /** Rows the poll loop published (left behind by a crash or a failed fast path). */
  recovered: number;
  marked: number;
  markStatements: number;
  queued: number;
  inFlight: number;
}

export interface OutboxRelay extends OutboxPublisher {
  /** Starts the poll loop (when enabled). */
  start(): void;
  /** Stops taking rows, waits up to `flushMs` (default 5 s) for publications under way, marks what was published. */
  stop(flushMs?: number): Promise<void>;
  /** Runs one poll pass now; resolves with the number of rows published. For tests and the monitor. */
  pollOnce(): Promise<number>;
  stats(): RelayStats;
}

const MARK_BATCH = 500;
const STATS_EVERY_MS = 10_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { sql, js, log } = options;
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const staleAfterMs = options.staleAfterMs ?? 1_000;
  const batchSize = options.batchSize ?? 256;
  const maxInFlight = options.maxInFlight ?? 256;
  const maxQueued = options.maxQueued ?? 10_000;
  const publishTimeoutMs = options.publishTimeoutMs ?? 5_000;
  const maxTries = Math.max(1, options.maxTries ?? 3);
  const markDelayMs = options.markDelayMs ?? 50;
  const backoff = { initialMs: pollIntervalMs, maxMs: Math.max(pollIntervalMs, options.maxBackoffMs ?? 10_000) };
  /** Poll passes in a row that JetStream refused rows of. */
  let failedPasses = 0;
  // One outage, one warning (and a summary now and then), however many rows fail on the fast path and the poll loop.
  const outage = createOutageLog(log, "publishing job messages to JetStream", options.outageLogEveryMs ?? 30_000);

  const stats: RelayStats = { published: 0, duplicates: 0, failedTries: 0, recovered: 0, marked: 0, markStatements: 0, queued: 0, inFlight: 0 };
  const queue: OutboxRef[] = [];
  const toMark: OutboxRef[] = [];
  const working = new SlotSet<Promise<void>>(); // an entry per publication: ../runtime/slot-table.ts
  let inFlight = 0;
  let stopped = false;
  let pollTimer: NodeJS.Timeout | undefined;
  let statsTimer: NodeJS.Timeout | undefined;
  let markTimer: NodeJS.Timeout | undefined;
  let polling: Promise<number> | undefined;
  let marking: Promise<void> = Promise.resolve();
  let lastStats = "";

  const track = (p: Promise<void>): void => {
    working.add(p);
    void p.finally(() => working.delete(p));
  };

  /** One publication inside an "outbox.publish" span continuing the job's stored trace. */
  const publish = (ref: Pick<OutboxRef, "id" | "jobId" | "kind" | "msgId" | "subject" | "headers" | "payload">, path: "fast" | "poll", tries: number) =>
    withSpan(
      "outbox.publish",
      {
        parent: contextFromTraceparent(ref.headers.traceparent, ref.headers.tracestate),
        attributes: { ...jobAttributes({ id: ref.jobId, kind: ref.kind }), "messaging.message.id": ref.msgId, "outbox.id": String(ref.id), "outbox.path": path },
      },
      async (span) => {
        for (let attempt = 1; ; attempt++) {
          try {
            const ack = await publishJob(js, { subject: ref.subject, msgId: ref.msgId, payload: encodeJobMessage(ref.payload), timeoutMs: publishTimeoutMs, attributes: jobAttributes({ id: ref.jobId, kind: ref.kind }) });
            outage.succeeded();
            span.setAttribute("outbox.tries", attempt);
            stats.published++;
            if (ack.duplicate) stats.duplicates++;
            return;
          } catch (err) {
            stats.failedTries++;
            // In an outage the poll loop owns the rows: no more fast tries, which would only repeat the failure.
            if (attempt >= tries || stopped || outage.down) throw err;
            log.debug({ err, jobId: ref.jobId, msgId: ref.msgId, attempt }, "outbox publish failed; retrying with the same msg id");
            await sleep(100 * 2 ** (attempt - 1));
          }
        }
      },
    );

  const scheduleMark = (): void => {
    if (toMark.length >= MARK_BATCH) {
      void flushMarks();
      return;
    }
    markTimer ??= setTimeout(() => {
      markTimer = undefined;
      void flushMarks();
    }, markDelayMs);
  };

  /** Marks published rows, one transaction per batch, one batch at a time. */
  const flushMarks = (): Promise<void> => {
    clearTimeout(markTimer);
    markTimer = undefined;
    marking = marking.then(async () => {
      // Rows acked while this runs wait for their own timer: one commit per window, not one per ack.
      const pending = toMark.splice(0, toMark.length);
      while (pending.length > 0) {
        const batch = pending.splice(0, MARK_BATCH);
        try {
          await markOutboxPublished(sql, batch);
          stats.marked += batch.length;
          stats.markStatements++;
        } catch (err) {
          // Left unmarked, the rows go to the poll loop, whose republish JetStream dedupes (same msg id).
          log.warn({ err, rows: batch.length }, "could not mark outbox rows published; the poll loop will take them");
        }
      }
    });
    return marking;
  };

  const pump = (): void => {
    while (inFlight < maxInFlight && queue.length > 0) {
      const ref = queue.shift() as OutboxRef;
      inFlight++;
      track(
        publish(ref, "fast", maxTries)
          .then(
            () => {
              toMark.push(ref);
              scheduleMark();
            },
            (err: unknown) => {
              log.debug({ err, jobId: ref.jobId, msgId: ref.msgId }, "outbox publish failed; the poll loop will retry");
              outage.failed(err, { path: "fast" });
            },
          )
          .finally(() => {
            inFlight--;
            pump();
          }),
      );
    }
  };

  const pollPass = async (): Promise<number> => {
    let total = 0;
    for (;;) {
      const n = await claimAndPublish();
      total += n.published;
      // A pass that could not publish everything it claimed stops here: the next one comes after a backoff.
      if (n.claimed < batchSize || n.published < n.claimed || stopped) break;
    }
    return total;
  };

  const claimAndPublish = async (): Promise<{ claimed: number; published: number }> =>
    sql.transaction(
      async (tx) => {
        // READ COMMITTED (below): no gap locks, so claiming never blocks the inserts of new jobs.
        const rows = await claimStaleOutboxRows(tx, staleAfterMs, batchSize);
        if (rows.length === 0) return { claimed: 0, published: 0 };
        const done: OutboxRef[] = [];
        const failed: bigint[] = [];
        let lastError: unknown;
        await Promise.all(
          rows.map(async (ref) => {
            try {
              await publish(ref, "poll", 1);
              done.push(ref);
            } catch (err) {
              failed.push(ref.id);
              lastError = err;
              log.debug({ err, jobId: ref.jobId, msgId: ref.msgId }, "outbox poll: publish failed");
            }
          }),
        );
        if (done.length > 0) await markOutboxPublished(tx, done);
        if (failed.length > 0) await countFailedTries(tx, failed);
        stats.recovered += done.length;
        if (done.length > 0) log.info({ published: done.length, failed: failed.length }, "outbox poll: published rows left behind");
        if (failed.length > 0) outage.failed(lastError, { path: "poll", rows: failed.length });
        failedPasses = failed.length > 0 ? failedPasses + 1 : 0;
        return { claimed: rows.length, published: done.length };
      },
      // A deadlock is not retried here: the next poll takes the rows again.
      { isolation: "READ COMMITTED", tries: 1 },
    );

  const runPoll = (): Promise<number> => {
    polling ??= pollPass()
      .catch((err: unknown) => {
        log.warn({ err }, "outbox poll failed; will try again");
        return 0;
      })
      .finally(() => {
        polling = undefined;
      });
    return polling;
  };

  const schedulePoll = (): void => {
    if (stopped || options.poll === false) return;
    // While JetStream refuses publications, passes come further and further apart (up to maxBackoffMs).
    const delay = outage.down && failedPasses > 0 ? backoffDelay(failedPasses, backoff) : pollIntervalMs;
    pollTimer = setTimeout(() => {
      void runPoll().finally(schedulePoll);
    }, delay);
  };

  const logStats = (): void => {
    const s = { ...stats, queued: queue.length, inFlight };
    const line = JSON.stringify(s);
    if (line !== lastStats) log.debug(s, "outbox relay");
    lastStats = line;
  };

  return {
    submit(entry) {
      // Committed already: a row not taken here is published by a poll loop (here or in another process).
      if (stopped || queue.length >= maxQueued) return;
      queue.push(entry);
      pump();
    },

    start() {
      if (stopped || pollTimer) return;
      schedulePoll();
      statsTimer = setInterval(logStats, STATS_EVERY_MS);
      statsTimer.unref();
    },

    async stop(flushMs = 5_000) {
      if (stopped) return;
      stopped = true;
      clearTimeout(pollTimer);
      clearInterval(statsTimer);
      // Queued and in-flight publications get one try each (no retries once stopping) within flushMs.
      const until = Date.now() + flushMs;
      while ((queue.length > 0 || working.size > 0 || polling) && Date.now() < until) {
        await settleWithin(Promise.allSettled([...working, polling]), until - Date.now());
      }
      if (queue.length > 0) log.warn({ left: queue.length }, "outbox relay stopped with rows unpublished; a poll loop will publish them");
      queue.length = 0;
      await flushMarks();
      logStats();
    },

    pollOnce: runPoll,

    stats: () => ({ ...stats, queued: queue.length, inFlight }),
  };
}

/** Resolves when `p` settles or `ms` passes, whichever is first, without leaving a timer behind. */
async function settleWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, ms))))]);
  clearTimeout(timer);
}

