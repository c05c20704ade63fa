// A retention by age: rows older than a number of days leave a table in batches (one short transaction each, done by
// the table's owner), the loop resting between full batches so that a backlog leaves the database room for other work.
import type { Logger } from "../log.js";
import { startLoop, type Loop } from "./loop.js";

export interface AgeRetentionOptions {
  /** The loop's name (span `monitor.<name>`, its lag gauge). */
  name: string;
  log: Logger;
  /** Rows older than this many days go; 0 keeps every row (the loop does not start). */
  retentionDays: number;
  now: () => Date;
  /** Rows per batch. */
  batch: number;
  /** Share of the time (0–1] a backlog's deletes may take (src/monitor/loop.ts). */
  share: number;
  /** How often to look again once nothing is due. */
  intervalMs: number;
  /** Deletes up to `limit` rows older than `before`, oldest first; answers how many went. */
  purge(before: Date, limit: number): Promise<number>;
  /** The log line when rows went (with `records`, `before` and `retentionDays`). */
  message: string;
  /** The span attribute that carries each batch's count. */
  attribute: string;
}

export function startAgeRetention(options: AgeRetentionOptions): Loop {
  if (options.retentionDays <= 0) return { stop: async () => undefined };
  const { log, batch } = options;
  return startLoop({
    name: options.name,
    intervalMs: options.intervalMs,
    log,
    share: options.share,
    async run(span) {
      const before = new Date(options.now().getTime() - options.retentionDays * 86_400_000);
      const deleted = await options.purge(before, batch);
      span.setAttribute(options.attribute, deleted);
      if (deleted > 0) log.info({ records: deleted, before: before.toISOString(), retentionDays: options.retentionDays }, options.message);
      return deleted >= batch;
    },
  });
}
