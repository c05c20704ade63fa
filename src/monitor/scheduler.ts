// The scheduler: every pollMs, claims the accounts due under each schedule the domains declare (re-discovery, server
// sync) and starts their jobs as the service principal `monitor`. A claim is a compare-and-set on the account's due
// time, in the same transaction as the job, so several monitor replicas never start the same one twice.
import type { Sql, SqlFragment } from "../db/sql.js";
import type { Principal } from "../iam/principal.js";
import type { JobService } from "../jobs/service.js";
import { startLoop, type Loop } from "./loop.js";
import type { MonitorResources } from "./resources.js";

/** Who the scheduler's jobs are requested by. Operator: it may start any non-admin job, and nothing else. */
export const MONITOR_PRINCIPAL: Readonly<Principal> = Object.freeze({ id: "monitor", kind: "service", roles: ["operator"], displayName: "monitor" });

/**
 * A job started for each account on a schedule: which accounts are due, how a claim moves the due time, and the job's
 * kind (its payload is `{ accountId }`, its resource the account). Declared by the domain that owns the job.
 */
export interface AccountSchedule {
  /** Names the schedule in spans: `monitor.<name>.started`. */
  name: string;
  kind: string;
  intervalMs: number;
  due(sql: Sql, now: Date, limit: number): Promise<Array<{ id: string; dueAt: Date | null }>>;
  /** Moves the due time from `dueAt` to `next`; false when another monitor (or a discovery) moved it first. */
  claim(tx: Sql, id: string, dueAt: Date | null, next: Date): Promise<boolean>;
}

/**
 * A schedule kept in a due-time column of accounts: the accounts `eligible` selects are due when the column is NULL
 * (never scheduled: at once) or past; a claim moves the column by compare-and-set on the value read.
 */
export function accountsDueBy(o: { name: string; kind: string; intervalMs: number; dueColumn: SqlFragment; eligible: SqlFragment }): AccountSchedule {
  const { dueColumn: column } = o;
  return {
    name: o.name,
    kind: o.kind,
    intervalMs: o.intervalMs,
    due: (sql, now, limit) => sql.query`
      SELECT id, ${column} AS dueAt FROM accounts
       WHERE ${o.eligible} AND (${column} IS NULL OR ${column} <= ${now})
       ORDER BY ${column} LIMIT ${limit}`,
    claim: async (tx, id, dueAt, next) => (await tx.execute`UPDATE accounts SET ${column} = ${next} WHERE id = ${id} AND ${column} <=> ${dueAt}`) === 1,
  };
}

export interface SchedulerOptions {
  resources: Pick<MonitorResources, "sql" | "now" | "log" | "config">;
  jobs: Pick<JobService, "createJob">;
  schedules: readonly AccountSchedule[];
  /** Default config.discovery.pollMs. */
  pollMs?: number;
  /** Accounts claimed per schedule and iteration. Default 50. */
  batch?: number;
}

/** The idempotency key of a scheduled job: one job per account and due time, whoever claims it. */
export function scheduledJobKey(kind: string, accountId: string, dueAt: Date | null): string {
  return `${kind}:${accountId}:${dueAt ? dueAt.getTime() : "first"}`;
}

export function startScheduler(options: SchedulerOptions): Loop {
  const { resources, jobs, schedules } = options;
  const batch = options.batch ?? 50;
  const log = resources.log.child({ component: "discovery" });

  /** Claims one account's due time and starts its job in the same transaction; false when it was claimed already. */
  async function startOne(schedule: AccountSchedule, account: { id: string; dueAt: Date | null }, now: Date): Promise<boolean> {
    const next = new Date(now.getTime() + schedule.intervalMs);
    const created = await resources.sql.transaction(async (tx) => {
      if (!(await schedule.claim(tx, account.id, account.dueAt, next))) return null;
      return jobs.createJob(
        { kind: schedule.kind, payload: { accountId: account.id }, requester: MONITOR_PRINCIPAL, resource: { type: "account", id: account.id }, idempotencyKey: scheduledJobKey(schedule.kind, account.id, account.dueAt) },
        tx,
      );
    });
    created?.afterCommit();
    return created !== null;
  }

  return startLoop({
    name: "discovery",
    intervalMs: options.pollMs ?? resources.config.discovery.pollMs,
    log,
    async run(span) {
      let more = false;
      for (const schedule of schedules) {
        const now = resources.now();
        const due = await schedule.due(resources.sql, now, batch);
        let started = 0;
        for (const account of due) {
          try {
            if (await startOne(schedule, account, now)) started++;
          } catch (err) {
            // The due time did not move (the transaction rolled back): the account is tried again next poll.
            log.error({ err, accountId: account.id, kind: schedule.kind }, "could not start a scheduled job");
          }
        }
        span.setAttribute(`monitor.${schedule.name}.started`, started);
        if (started > 0) log.debug({ kind: schedule.kind, started }, "scheduled jobs started");
        more ||= due.length === batch;
      }
      return more;
    },
  });
}
