// A retention by age: rows older than a number of days leave a table in batches (one short transaction each, done by
// the table's owner), the loop resting between full batches so that a backlog leaves the database room for other work.
import type { Logger } from "../log.js";
import { startLoop, type Loop } from "./loop.js";

/** How a table's retention is set; its owner adds the database handles its purge needs. */
export interface RetentionSettings {
  log: Logger;
  /** Rows older than this many days go; 0 keeps every row (the loop does not start). */
  retentionDays: number;
  now: () => Date;
  /** Rows per batch (default: the table's). */
  batch?: number;
  /** Share of the time (0–1] a backlog's deletes may take (src/monitor/loop.ts; default: the table's). */
  share?: number;
  /** How often to look again once nothing is due (default: the table's). */
  intervalMs?: number;
}

/** One table's retention, as its owner declares it. */
export interface AgeRetention {
  /** The loop's name (span `monitor.<name>`, its lag gauge) and its log lines' component. */
  name: string;
  defaults: { batch: number; share: number; intervalMs: number };
  /** Deletes up to `limit` rows older than `before`, oldest first; answers how many went. */
  purge(before: Date, limit: number): Promise<number>;
  /** The log line when rows went (with `records`, `before` and `retentionDays`). */
  message: string;
  /** The span attribute that carries each batch's count. */
  attribute: string;
}

export function startAgeRetention(settings: RetentionSettings, table: AgeRetention): Loop {
  const { retentionDays } = settings;
  if (retentionDays <= 0) return { stop: async () => undefined };
  const log = settings.log.child({ component: table.name });
  const batch = settings.batch ?? table.defaults.batch;
  return startLoop({
    name: table.name,
    intervalMs: settings.intervalMs ?? table.defaults.intervalMs,
    log,
    share: settings.share ?? table.defaults.share,
    async run(span) {
      const before = new Date(settings.now().getTime() - retentionDays * 86_400_000);
      const deleted = await table.purge(before, batch);
      span.setAttribute(table.attribute, deleted);
      if (deleted > 0) log.info({ records: deleted, before: before.toISOString(), retentionDays }, table.message);
      return deleted >= batch;
    },
  });
}
