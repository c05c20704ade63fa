// The queues service: how work flows from the database to the workers (outbox backlog, the workers' consumer, dead
// letters) and replaying a dead letter. Dead letters follow their jobs' object scope; a replay is a retry of the job,
// with the job service's rules and permissions. No proto types here; handlers map.
import type { Page } from "../db/page.js";
import type { SqlPool } from "../db/sql.js";
import { FailedPreconditionError, NotFoundError, UnavailableError } from "../errors.js";
import type { Principal } from "../iam/principal.js";
import { scopeOf } from "../iam/scope.js";
import type { Job } from "../jobs/model.js";
import * as repo from "../jobs/queue-repository.js";
import type { ConsumerStats } from "../mq/consumer-stats.js";

export type { DeadLetter, OutboxBacklog } from "../jobs/queue-repository.js";
export type { ConsumerStats } from "../mq/consumer-stats.js";

export interface QueueStats {
  outbox: repo.OutboxBacklog;
  consumer: ConsumerStats;
  /** Dead letters not yet replayed, of every job. */
  deadLetters: number;
  readAt: Date;
}

export interface DeadLetterQuery {
  includeReplayed: boolean;
  kind?: string | undefined;
  pageSize: number;
  afterId?: string | undefined;
}

export interface QueueServiceOptions {
  sql: SqlPool;
  /** The workers' consumer figures (src/mq/consumer-stats.ts over the process's NATS connection). */
  consumerStats: () => Promise<ConsumerStats>;
  /** The job service's scoped read and retry: a replay obeys the same rules as RetryJob. */
  jobs: {
    getJob(principal: Readonly<Principal>, id: string): Promise<Job>;
    retryJob(principal: Readonly<Principal>, id: string, idempotencyKey?: string | null): Promise<Job>;
  };
  now?: () => Date;
}

export interface QueueService {
  stats(): Promise<QueueStats>;
  listDeadLetters(principal: Readonly<Principal>, query: DeadLetterQuery): Promise<Page<repo.DeadLetter>>;
  replayDeadLetter(principal: Readonly<Principal>, id: string, idempotencyKey: string | null): Promise<{ deadLetter: repo.DeadLetter; job: Job }>;
}

export function createQueueService(options: QueueServiceOptions): QueueService {
  const { sql, jobs } = options;
  const now = options.now ?? (() => new Date());

  const consumer = async (): Promise<ConsumerStats> => {
    try {
      return await options.consumerStats();
    } catch (err) {
      throw new UnavailableError("JetStream did not answer for the jobs consumer; retry later", "NATS_UNAVAILABLE", { cause: err });
    }
  };

  /** The dead letter if the principal may see its job; NOT_FOUND otherwise, like the job itself. */
  const visibleDeadLetter = async (principal: Readonly<Principal>, id: string): Promise<repo.DeadLetter> => {
    const deadLetter = await repo.findDeadLetter(sql, id);
    if (!deadLetter) throw new NotFoundError("dead letter", id);
    await jobs.getJob(principal, deadLetter.jobId).catch((err: unknown) => {
      throw err instanceof NotFoundError ? new NotFoundError("dead letter", id) : err;
    });
    return deadLetter;
  };

  return {
    async stats() {
      const [outbox, deadLetters, consumerStats] = await Promise.all([repo.outboxBacklog(sql), repo.countWaitingDeadLetters(sql), consumer()]);
      return { outbox, consumer: consumerStats, deadLetters, readAt: now() };
    },

    async listDeadLetters(principal, query) {
      const scope = scopeOf(principal);
      return repo.listDeadLetters(
        sql,
        { includeReplayed: query.includeReplayed, kind: query.kind, visibleTo: scope.all ? undefined : { userId: principal.id, accountIds: scope.accountIds } },
        query.afterId,
        query.pageSize,
      );
    },

    async replayDeadLetter(principal, id, idempotencyKey) {
      const deadLetter = await visibleDeadLetter(principal, id);
      // Replayed already (here or by RetryJob): only the replay's own key may ask again, and gets the same job back.
      if (deadLetter.replayedAt && !idempotencyKey) {
        throw new FailedPreconditionError(`dead letter ${id} was replayed at ${deadLetter.replayedAt.toISOString()}`, "DEAD_LETTER_REPLAYED", [], { deadLetterId: id, jobId: deadLetter.jobId });
      }
      const job = await jobs.retryJob(principal, deadLetter.jobId, idempotencyKey);
      return { deadLetter: (await repo.findDeadLetter(sql, id)) ?? deadLetter, job };
    },
  };
}
