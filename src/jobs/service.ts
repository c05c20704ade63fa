// JobService: the rules of jobs for every caller — creating one (catalog validation, idempotency, trace context,
// outbox), object scope on reads, cancel, retry, history and watching. No proto types here; handlers map.
import type { NatsConnection } from "@nats-io/transport-node";
import { createBatcher, fulfilled } from "../db/batcher.js";
import { isDatabaseUnavailable, isUniqueViolation } from "../db/errors.js";
import { newId } from "../db/ids.js";
import type { Tx } from "../db/clients.js";
import { isSql, sqlOfPrisma, type Sql, type SqlPool } from "../db/sql.js";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError, type FieldViolation } from "../errors.js";
import type { Principal } from "../iam/principal.js";
import { inScope, scopeOf } from "../iam/scope.js";
import type { Logger } from "../log.js";
import { isAllowed } from "../iam/permissions.js";
import { storedTraceContext } from "../telemetry/propagation.js";
import { ATTR_JOB_ID, currentTraceId, jobAttributes, withSpan } from "../telemetry/spans.js";
import type { JobCatalog, JobKind } from "./catalog.js";
import { childCounts, NO_CHILDREN } from "./children.js";
import { appendEvent, listEvents, ringDoorbell } from "./events.js";
import type { Job, JobEvent, JobState, ResourceRef } from "./model.js";
import type { OutboxRef } from "./outbox.js";
import type { OutboxPublisher } from "./relay.js";
import * as repo from "./repository.js";
import { watchJob, type JobUpdate } from "./watch.js";
import { recordJob } from "../telemetry/metrics.js";

export type { JobCursor } from "./repository.js";
export type { JobUpdate } from "./watch.js";

/** Creates committed together at most (src/db/batcher.ts: one group commit at a time). */
const CREATE_BATCH = 64;

/** A job written, with its outbox row; or found by its idempotency key (outbox null). */
type Inserted = { job: Job; outbox: OutboxRef | null };


export interface CreateJobInput {
  kind: string;
  /** Validated (and normalised) by the kind's payload schema. */
  payload: unknown;
  requester: Readonly<Principal>;
  resource?: ResourceRef | null;
  /** The same requester and key return the job first created with it. */
  idempotencyKey?: string | null;
  /**
   * The action's own rows, written in the job's transaction right after the job row — and only when the job is new
   * (a repeated idempotency key runs nothing). Used when createJob opens the transaction; an action that writes its
   * rows with Prisma opens the transaction itself and passes it to createJob instead.
   */
  effects?: (tx: Sql, job: Job) => Promise<void>;
  /**
   * Lines for the new job's history, each a "progress" event after the effects (e.g. a warning the requester should
   * find where they look for the job's fate). Like the effects, written only when the job is new.
   */
  notes?: readonly string[];
}

export interface CreatedJob {
  job: Job;
  /** False when an earlier request with the same idempotency key created it. */
  created: boolean;
  /**
   * Hands the publication to the relay and rings the job's doorbell. createJob calls it itself when it opened the
   * transaction; a caller that passed its own transaction calls it once that commits. Safe to call twice.
   */
  afterCommit(): void;
}

export interface ListJobsQuery {
  state?: JobState | undefined;
  kind?: string | undefined;
  resource?: { type: string; id?: string | undefined } | undefined;
  requestedBy?: string | undefined;
  accountId?: string | undefined;
  /** Children of this job. */
  parentId?: string | undefined;
  createdAfter?: Date | undefined;
  createdBefore?: Date | undefined;
  pageSize: number;
  cursor?: repo.JobCursor | null | undefined;
}

export interface JobServiceOptions {
  /** The provisioning database: creating, reading, listing, cancelling, retrying and watching jobs. */
  sql: SqlPool;
  catalog: JobCatalog;
  /** config.mq.subjectPrefix */
  subjectPrefix: string;
  log: Logger;
  /** The in-process relay (fast path); without one, its poll loop publishes within a few seconds. */
  relay?: OutboxPublisher | undefined;
  /** For the after-commit doorbell and WatchJob; watchers fall back to their periodic read without it. */
  nats?: NatsConnection | undefined;
  now?: () => Date;
  /** WatchJob's safety-net read interval (default 2000 ms). */
  watchIntervalMs?: number;
}

export interface JobService {
  /** With `tx` (a Prisma transaction or an `Sql` one), the job joins the caller's transaction; else it opens its own. */
  createJob(input: CreateJobInput, tx?: Tx | Sql): Promise<CreatedJob>;
  getJob(principal: Readonly<Principal>, id: string): Promise<Job>;
  /** The job `requester` created with this idempotency key, or null when the key is new. */
  findByIdempotencyKey(requester: Readonly<Principal>, key: string): Promise<Job | null>;
  listJobs(principal: Readonly<Principal>, query: ListJobsQuery): Promise<{ jobs: Job[]; next: repo.JobCursor | null }>;
  listEvents(principal: Readonly<Principal>, id: string): Promise<JobEvent[]>;
  cancelJob(principal: Readonly<Principal>, id: string, reason?: string): Promise<Job>;
  retryJob(principal: Readonly<Principal>, id: string, idempotencyKey?: string | null): Promise<Job>;
  /** The job now, then each transition in order with the job as it stands; ends after the terminal one or on abort. */
  watchJob(principal: Readonly<Principal>, id: string, signal: AbortSignal): AsyncIterable<JobUpdate>;
}

export function createJobService(options: JobServiceOptions): JobService {
  const { sql, catalog, log, subjectPrefix } = options;
  const now = options.now ?? (() => new Date());

  const afterCommitOf = (job: Job, outbox: OutboxRef | null): (() => void) => {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (outbox) options.relay?.submit(outbox);
      if (outbox) recordJob("created", job.kind);
      ringDoorbell(options.nats, job.id);
    };
  };

  /**
   * Whether the principal may see the job: admins every one; everyone else the jobs they requested and those of the
   * accounts their groups may use (a job whose resource is such an account, or a server or resource of one) — jobs
   * follow their account, like servers. The same rule as ListJobs' scope (account_id on the job).
   */
  const maySee = async (principal: Readonly<Principal>, job: Job): Promise<boolean> => {
    const scope = scopeOf(principal);
    if (scope.all || job.requestedBy === principal.id) return true;
    if (scope.accountIds.length === 0 || !job.resource) return false;
    if (job.resource.type === "account") return inScope(scope, job.resource.id);
    // Only someone else's jobs on an account's servers and resources cost a second query.
    const accountId = await repo.accountOfJob(sql, job.id);
    return accountId !== null && inScope(scope, accountId);
  };

  /** The job if this principal may see it; NOT_FOUND otherwise (a job out of scope does not exist for them). */
  const visibleJob = async (principal: Readonly<Principal>, id: string): Promise<Job> => {
    const job = await repo.findJob(sql, id);
    if (!job || !(await maySee(principal, job))) throw new NotFoundError("job", id);
    return job;
  };

  /** The job with its children's counts when its kind creates children. */
  const withChildren = async (db: Sql, job: Job): Promise<Job> => {
    if (!catalog.get(job.kind)?.parent) return job;
    return { ...job, children: (await childCounts(db, [job.id])).get(job.id) ?? { ...NO_CHILDREN } };
  };

  const kindOf = (name: string): JobKind => {
    const kind = catalog.get(name);
    if (!kind) throw InvalidArgumentError.field("kind", `unknown job kind ${JSON.stringify(name)} (known: ${catalog.names().join(", ") || "none"})`);
    return kind;
  };

  /** The row of a new job; made inside its "job.create" span, whose trace the job keeps. */
  const newJob = (input: CreateJobInput, kind: JobKind, payload: unknown): repo.NewJob => {
    const at = now();
    const trace = storedTraceContext();
    return {
      id: newId(at.getTime()),
      kind: kind.kind,
      payload,
      maxAttempts: kind.maxAttempts,
      requestedBy: input.requester.id,
      resource: input.resource ?? null,
      idempotencyKey: input.idempotencyKey || null,
      traceId: currentTraceId() ?? "",
      traceparent: trace?.traceparent ?? null,
      tracestate: trace?.tracestate ?? null,
      now: at,
      deadlineAt: kind.timeoutMs > 0 ? new Date(at.getTime() + kind.timeoutMs) : null,
      actor: input.requester.id,
      subjectPrefix,
    };
  };

  /** The action's effects, then its notes: what a new job writes besides itself, in its transaction. */
  const writeEffects = async (tx: Sql, input: CreateJobInput, job: Job): Promise<void> => {
    if (input.effects) await input.effects(tx, job);
    for (const message of input.notes ?? []) {
      await appendEvent(tx, { jobId: job.id, type: "progress", fromState: "QUEUED", toState: "QUEUED", attempt: 0, actor: input.requester.id, message });
    }
  };

  /**
   * Inserts the job (and writes the action's effects) in `tx`, or finds the one an earlier request with its key created.
   * `own`: createJob opened `tx`, so that any error here rolls it back — then a job without a key is written pipelined.
   */
  const insertOrFind = async (tx: Sql, input: CreateJobInput, row: repo.NewJob, own = false): Promise<Inserted> => {
    try {
      const [created] = await repo.insertJobs(tx, [row], { pipelined: own && !row.idempotencyKey });
      if (!created) throw new Error(`job ${row.id} was not written`);
      await writeEffects(tx, input, created.job);
      return created;
    } catch (err) {
      if (!row.idempotencyKey || !isUniqueViolation(err)) throw err;
      const existing = await repo.findJobByIdempotencyKey(tx, row.requestedBy, row.idempotencyKey, true);
      if (!existing) throw err;
      return { job: existing, outbox: null };
    }
  };

  /**
   * Group commit of the creates that open their own transaction: those that arrive while earlier ones commit share one
   * transaction (three inserts and one commit for all). When anything in it fails — a repeated idempotency key, an
   * effect — it rolls back and each create runs in a transaction of its own, with its own outcome.
   */
  const creates = createBatcher<{ input: CreateJobInput; row: repo.NewJob }, Inserted>({
    maxBatch: CREATE_BATCH,
    run: async (items) => {
      // A create with an idempotency key may run again after a lost connection or a Galera node leaving: if its first
      // COMMIT applied, the second finds the job by its key. One without a key may not (it would make a second job).
      const keyed = (list: typeof items) => list.every((i) => i.row.idempotencyKey);
      const alone = (item: (typeof items)[number]) => sql.transaction((t) => insertOrFind(t, item.input, item.row, true), { idempotent: keyed([item]) });
      if (items.length === 1) return Promise.allSettled(items.map(alone));
      try {
        return await sql.transaction(async (t) => {
          // Any failure rolls the batch back (and its creates go alone): the inserts may go pipelined.
          const created = await repo.insertJobs(t, items.map((i) => i.row), { pipelined: true });
          for (const [n, item] of items.entries()) await writeEffects(t, item.input, (created[n] as Inserted).job);
          return fulfilled(created);
        }, { idempotent: keyed(items) });
      } catch (err) {
        // A batch whose COMMIT may have applied must not run again as single creates unless each has its key.
        if (isDatabaseUnavailable(err) && !keyed(items)) return items.map((): PromiseRejectedResult => ({ status: "rejected", reason: err }));
        return Promise.allSettled(items.map(alone));
      }
    },
  });

  return {
    async createJob(input, tx) {
      const kind = kindOf(input.kind);
      if (!isAllowed(input.requester, kind.permission)) throw new PermissionDeniedError(`permission ${kind.permission} required to start ${kind.kind} jobs`, "PERMISSION_DENIED", { permission: kind.permission });
      const parsed = kind.payload.safeParse(input.payload);
      if (!parsed.success) throw new InvalidArgumentError(parsed.error.issues.map((i): FieldViolation => ({ field: ["payload", ...i.path.map(String)].join("."), description: i.message })));
      const result = await withSpan("job.create", { attributes: jobAttributes({ id: "", kind: kind.kind }) }, async (span) => {
        // A pool with no free connection in time throws UnavailableError (DATABASE_BUSY): nothing ran, retry is safe.
        const row = newJob(input, kind, parsed.data);
        const out = tx ? await insertOrFind(isSql(tx) ? tx : sqlOfPrisma(tx), input, row) : await creates.submit({ input, row });
        span.setAttribute(ATTR_JOB_ID, out.job.id);
        if (!out.outbox) span.setAttribute("job.idempotent_replay", true);
        return out;
      });
      if (!result.outbox && result.job.kind !== kind.kind) {
        throw new FailedPreconditionError(`idempotency key ${JSON.stringify(input.idempotencyKey)} was used for a ${result.job.kind} job (${result.job.id})`, "IDEMPOTENCY_KEY_REUSED", [], { jobId: result.job.id });
      }
      const created: CreatedJob = { job: result.job, created: result.outbox !== null, afterCommit: afterCommitOf(result.job, result.outbox) };
      if (!tx) created.afterCommit();
      if (created.created) log.debug({ jobId: result.job.id, kind: kind.kind }, "job created");
      return created;
    },

    async getJob(principal, id) {
      return withChildren(sql, await visibleJob(principal, id));
    },

    findByIdempotencyKey: (requester, key) => repo.findJobByIdempotencyKey(sql, requester.id, key),

    async listJobs(principal, query) {
      const scope = scopeOf(principal);
      return repo.listJobs(
        sql,
        {
          state: query.state,
          kind: query.kind,
          resourceType: query.resource?.type,
          resourceId: query.resource?.id,
          requestedBy: query.requestedBy,
          accountId: query.accountId,
          parentId: query.parentId,
          createdAfter: query.createdAfter,
          createdBefore: query.createdBefore,
          visibleTo: scope.all ? undefined : { userId: principal.id, accountIds: scope.accountIds },
        },
        query.cursor ?? null,
        query.pageSize,
      );
    },

    async listEvents(principal, id) {
      await visibleJob(principal, id);
      const events: JobEvent[] = [];
      for (;;) {
        const page = await listEvents(sql, id, events.at(-1)?.sequence ?? 0);
        events.push(...page);
        if (page.length < 1000) return events;
      }
    },

    async cancelJob(principal, id, reason = "") {
      await visibleJob(principal, id);
      const r = await repo.cancelJob(sql, id, principal.id, reason);
      if (r.outcome === "not_found") throw new NotFoundError("job", id);
      if (r.outcome === "finished") throw new FailedPreconditionError(`job ${id} already finished (${r.job.state}); nothing to cancel`, "JOB_FINISHED", [], { jobId: id, state: r.job.state });
      if (r.outcome !== "already_requested") ringDoorbell(options.nats, id);
      return r.job;
    },

    async retryJob(principal, id, idempotencyKey) {
      const job = await visibleJob(principal, id);
      const kind = catalog.get(job.kind);
      if (!kind) throw new FailedPreconditionError(`job kind ${job.kind} is no longer supported; the job cannot be retried`, "JOB_KIND_UNKNOWN", [], { jobId: id, kind: job.kind });
      if (!isAllowed(principal, kind.permission)) throw new PermissionDeniedError(`permission ${kind.permission} required to retry ${kind.kind} jobs`, "PERMISSION_DENIED", { permission: kind.permission });
      const r = await repo.retryJob(sql, {
        id,
        actor: principal.id,
        addAttempts: kind.maxAttempts,
        deadlineAt: new Date(now().getTime() + kind.timeoutMs),
        idempotencyKey: idempotencyKey || null,
        subjectPrefix,
      });
      if (r.outcome === "not_found") throw new NotFoundError("job", id);
      if (r.outcome === "not_retryable") throw new FailedPreconditionError(`job ${id} is ${r.job.state}; only FAILED or CANCELLED jobs can be retried`, "JOB_NOT_RETRYABLE", [], { jobId: id, state: r.job.state });
      if (r.outcome === "retried") afterCommitOf(r.job, r.outbox)();
      return r.job;
    },

    async *watchJob(principal, id, signal) {
      await visibleJob(principal, id);
      yield* watchJob({ sql, nats: options.nats, intervalMs: options.watchIntervalMs ?? 2_000, withChildren }, id, signal);
    },
  };
}
