// The discovery scheduler: every discovery.pollMs, claims the accounts due for re-discovery (and the active ones due
// for a server sync) and starts their jobs as the service principal `monitor`. A claim is a compare-and-set on the
// account's due time, in the same transaction as the job, so several monitor replicas never start the same one twice.
import type { Resources } from "../app/resources.js";
import type { Sql } from "../db/sql.js";
import type { JobCatalog } from "../jobs/catalog.js";
import type { JobService } from "../jobs/service.js";
import type { Principal } from "../iam/principal.js";
import { ACCOUNT_DISCOVER_KIND } from "../provisioning/discovery-kind.js";
import { SERVERS_SYNC_KIND } from "../servers/kinds/names.js";
import { startLoop, type Loop } from "./loop.js";

export { SERVERS_SYNC_KIND };

/** Who the scheduler's jobs are requested by. Operator: it may start any non-admin job, and nothing else. */
export const MONITOR_PRINCIPAL: Readonly<Principal> = Object.freeze({ id: "monitor", kind: "service", roles: ["operator"], displayName: "monitor" });

export interface DiscoverySchedulerOptions {
  resources: Resources;
  jobs: Pick<JobService, "createJob">;
  catalog: JobCatalog;
  /** Default config.discovery.pollMs. */
  pollMs?: number;
  /** Accounts claimed per schedule and iteration. Default 50. */
  batch?: number;
}

/** What one kind of schedule reads and moves: the due column, which accounts qualify, and the job it starts. */
interface Schedule {
  name: "discovery" | "server_sync";
  kind: string;
  intervalMs: number;
  due(sql: Sql, now: Date, limit: number): Promise<Array<{ id: string; dueAt: Date | null }>>;
  /** Moves the due time from `dueAt` to `next`; false when another monitor (or a discovery) moved it first. */
  claim(tx: Sql, id: string, dueAt: Date | null, next: Date): Promise<boolean>;
}

const DISCOVERY: Omit<Schedule, "intervalMs"> = {
  name: "discovery",
  kind: ACCOUNT_DISCOVER_KIND,
  // Never-scheduled accounts (NULL) are due at once; disabled ones never.
  due: (sql, now, limit) => sql.query`
    SELECT id, next_discovery_at AS dueAt FROM accounts
     WHERE status <> 'DISABLED' AND (next_discovery_at IS NULL OR next_discovery_at <= ${now})
     ORDER BY next_discovery_at LIMIT ${limit}`,
  claim: async (tx, id, dueAt, next) => (await tx.execute`UPDATE accounts SET next_discovery_at = ${next} WHERE id = ${id} AND next_discovery_at <=> ${dueAt}`) === 1,
};

const SERVER_SYNC: Omit<Schedule, "intervalMs"> = {
  name: "server_sync",
  kind: SERVERS_SYNC_KIND,
  due: (sql, now, limit) => sql.query`
    SELECT id, next_server_sync_at AS dueAt FROM accounts
     WHERE status = 'ACTIVE' AND (next_server_sync_at IS NULL OR next_server_sync_at <= ${now})
     ORDER BY next_server_sync_at LIMIT ${limit}`,
  claim: async (tx, id, dueAt, next) => (await tx.execute`UPDATE accounts SET next_server_sync_at = ${next} WHERE id = ${id} AND next_server_sync_at <=> ${dueAt}`) === 1,
};

/** The idempotency key of a scheduled job: one job per account and due time, whoever claims it. */
export function scheduledJobKey(kind: string, accountId: string, dueAt: Date | null): string {
  return `${kind}:${accountId}:${dueAt ? dueAt.getTime() : "first"}`;
}

export function startDiscoveryScheduler(options: DiscoverySchedulerOptions): Loop {
  const { resources, jobs, catalog } = options;
  const { config } = resources;
  const batch = options.batch ?? 50;
  const log = resources.log.child({ component: "discovery" });
  const schedules: Schedule[] = [{ ...DISCOVERY, intervalMs: config.discovery.intervalMs }];
  if (catalog.get(SERVERS_SYNC_KIND)) schedules.push({ ...SERVER_SYNC, intervalMs: config.discovery.serverSyncIntervalMs });
  else log.info(`no ${SERVERS_SYNC_KIND} job kind in this build: servers are not synced on a schedule`);

  /** Claims one account's due time and starts its job in the same transaction; false when it was claimed already. */
  async function startOne(schedule: Schedule, account: { id: string; dueAt: Date | null }, now: Date): Promise<boolean> {
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
    intervalMs: options.pollMs ?? config.discovery.pollMs,
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
