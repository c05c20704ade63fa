// Test support for job execution (worker, monitor): a migrated database, a JetStream stream of this run, the
// Resources a role receives, jobs inserted by SQL and published in the wire format, and readers of a job's row,
// events, effects and dead letters.
import { createAnalyticsSql } from "../../src/analytics/db.js";
import { createDriverRegistry } from "../../src/clouds/registry.js";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Resources } from "../../src/app/resources.js";
import { loadConfig, type Config } from "../../src/config.js";
import { createProvisioningClient, type ProvisioningClient } from "../../src/db/clients.js";
import { newId } from "../../src/db/ids.js";
import { createSqlPool, type SqlPool } from "../../src/db/sql.js";
import type { JobCatalog } from "../../src/jobs/catalog.js";
import { appendEvent, listEvents } from "../../src/jobs/events.js";
import { insertHeldChildren } from "../../src/jobs/children.js";
import { JobExecution, micros } from "../../src/jobs/execution.js";
import type { NewJob } from "../../src/jobs/new-job.js";
import { buildCatalog } from "../../src/app/catalog.js";
import type { JobEvent, JobState } from "../../src/jobs/model.js";
import { encodeJobMessage, jobMsgId, jobSubject } from "../../src/jobs/outbox.js";
import type { Logger } from "../../src/log.js";
import { ensureJobsStream, publishJob } from "../../src/mq/jobs-stream.js";
import { createTestDatabases, type TestDatabases } from "../support/db.js";
import type { TestEnv } from "../support/process.js";
import { captureLogger, deleteStream, sharedNatsUrl, testStreamName, type LogLine } from "../mq/support.js";
import { until } from "../support/poll.js";

export interface JobRow {
  id: string;
  kind: string;
  state: JobState;
  attempt: number;
  maxAttempts: number;
  leaseOwner: string | null;
  leaseExpiresAt: Date | null;
  progressPercent: number;
  errorCode: string | null;
  errorMessage: string | null;
  errorDetails: unknown;
  result: unknown;
  payload: unknown;
  cancelRequested: number;
  nextCheckAt: Date | null;
  checks: number;
  publishedAt: Date | null;
  publishCount: number;
  endedAt: Date | null;
}

export interface NewTestJob {
  kind?: string;
  payload: unknown;
  maxAttempts?: number;
  /** Deadline this far from now (database clock). */
  deadlineMs?: number;
  traceparent?: string | null;
}

export interface ExecHarness {
  dbs: TestDatabases;
  db: ProvisioningClient;
  /** The job pool over the same database (what roles get as resources.sql). */
  sql: SqlPool;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  config: Config;
  log: Logger;
  lines: LogLine[];
  catalog: JobCatalog;
  ex: JobExecution;
  /** Resources for a worker or monitor, with their own instance id. */
  resources(instanceId?: string): Resources;
  insertJob(job: NewTestJob): Promise<string>;
  /** Publishes publication `n` of a job as the relay would. */
  publish(jobId: string, kind?: string, n?: number): Promise<void>;
  job(id: string): Promise<JobRow>;
  events(id: string): Promise<JobEvent[]>;
  effects(id: string): Promise<{ attempt: number }[]>;
  deadLetters(id: string): Promise<{ attempt: number; kind: string; payload: unknown; lastError: string | null }[]>;
  /** Waits until the job is in one of `states`; returns its row. */
  waitForState(id: string, states: JobState[], timeoutMs?: number): Promise<JobRow>;
  close(): Promise<void>;
}

export interface ExecHarnessOptions {
  /** Needs NATS (a stream of its own); default true. */
  nats?: boolean;
  leaseMs?: number;
  /** Work on the databases and stream of a process-level test environment instead of new ones (its cleanup drops them). */
  env?: TestEnv;
}

export const diagnostic = (p: Record<string, unknown> = {}) => ({ sleepMs: 0, outcome: "succeed", failAttempts: 0, pendingChecks: 0, note: "", ...p });

export async function openExecHarness(label: string, options: ExecHarnessOptions = {}): Promise<ExecHarness> {
  const env = options.env;
  const dbs = env ? adoptDatabases(env) : await createTestDatabases(label);
  const db = dbs.provisioning;
  const config = loadConfig(env?.env ?? process.env, "");
  const stream = env?.stream ?? testStreamName(label);
  config.mq.jobsStream = stream;
  config.mq.subjectPrefix = env?.subjectPrefix ?? `t${stream.toLowerCase()}`;
  config.mq.workerDurable = "workers";
  config.jobs.leaseMs = options.leaseMs ?? 1_500;
  config.jobs.workerConcurrency = 8;
  // Local state of its own (development agent CA and keys among it): test files side by side in a fresh clone would
  // otherwise create ./var's keys at once and find each other's.
  if (!env) config.dataDir = mkdtempSync(join(tmpdir(), "dispatcher-exec-"));
  const nc = options.nats === false ? undefined : await connect({ servers: env?.natsUrl ?? sharedNatsUrl(), timeout: 5_000 });
  const jsm = nc ? await jetstreamManager(nc) : undefined;
  if (jsm) await ensureJobsStream(jsm, { stream, subjectPrefix: config.mq.subjectPrefix });
  const { log, lines } = captureLogger("warn");
  const sql = createSqlPool(dbs.urls.provisioning, 16);
  const ex = new JobExecution({ sql, nc });
  const catalog = buildCatalog();
  const job = async (id: string): Promise<JobRow> => {
    const rows = await db.$queryRaw<JobRow[]>`
      SELECT id, kind, state, attempt, max_attempts AS maxAttempts, lease_owner AS leaseOwner, lease_expires_at AS leaseExpiresAt,
             progress_percent AS progressPercent, error_code AS errorCode, error_message AS errorMessage, error_details AS errorDetails,
             result, payload, cancel_requested AS cancelRequested, next_check_at AS nextCheckAt, checks, published_at AS publishedAt,
             publish_count AS publishCount, ended_at AS endedAt
        FROM jobs WHERE id = ${id}`;
    if (!rows[0]) throw new Error(`no job ${id}`);
    return rows[0];
  };
  return {
    dbs,
    db,
    sql,
    get nc() {
      if (!nc) throw new Error("harness without NATS");
      return nc;
    },
    get js() {
      if (!nc) throw new Error("harness without NATS");
      return jetstream(nc);
    },
    get jsm() {
      if (!jsm) throw new Error("harness without NATS");
      return jsm;
    },
    config,
    log,
    lines,
    catalog,
    ex,
    resources(instanceId = randomBytes(4).toString("hex")) {
      if (!nc) throw new Error("harness without NATS");
      const km = () => {
        throw new Error("this harness has no KM");
      };
      return { config, log, provisioning: db, sql, analyticsSql: createAnalyticsSql(dbs.urls.analytics, 2), nats: nc, drivers: createDriverRegistry([]), km, closeKm: () => undefined, roles: ["worker", "monitor"], instanceId, startedAt: new Date(), now: () => new Date() };
    },
    async insertJob(j) {
      const id = newId();
      const kind = j.kind ?? "diagnostic";
      const hasDeadline = j.deadlineMs !== undefined ? 1 : 0;
      await sql.transaction(async (tx) => {
        await tx.execute`
          INSERT INTO jobs (id, kind, state, attempt, max_attempts, payload, requested_by, trace_id, traceparent, deadline_at,
                            publish_count, created_at, updated_at)
          VALUES (${id}, ${kind}, 'QUEUED', 0, ${j.maxAttempts ?? 5}, ${JSON.stringify(j.payload)}, 'u-test', ${"0".repeat(32)},
                  ${j.traceparent ?? null}, IF(${hasDeadline} = 1, NOW(3) + INTERVAL ${micros(j.deadlineMs ?? 0)} MICROSECOND, NULL),
                  1, NOW(3), NOW(3))`;
        await appendEvent(tx, { jobId: id, type: "created", fromState: null, toState: "QUEUED", attempt: 0, actor: "u-test" });
      });
      return id;
    },
    async publish(jobId, kind = "diagnostic", n = 1) {
      if (!nc) throw new Error("harness without NATS");
      const payload = encodeJobMessage({ jobId, kind, publication: n });
      await publishJob(jetstream(nc), { subject: jobSubject(config.mq.subjectPrefix, kind), msgId: jobMsgId(jobId, n), payload });
    },
    job,
    events: (id) => listEvents(sql, id),
    effects: (id) => db.$queryRaw<{ attempt: number }[]>`SELECT attempt FROM diagnostic_effects WHERE job_id = ${id} ORDER BY id`,
    deadLetters: (id) =>
      db.$queryRaw<{ attempt: number; kind: string; payload: unknown; lastError: string | null }[]>`
        SELECT attempt, kind, payload, last_error AS lastError FROM dead_letters WHERE job_id = ${id}`,
    async waitForState(id, states, timeoutMs = 15_000) {
      let last: JobRow | undefined;
      const reached = async () => ((last = await job(id)), states.includes(last.state) ? last : undefined);
      return until(reached, timeoutMs, `job ${id} ${states.join("|")}`, () => `(still ${last?.state}, attempt ${last?.attempt})`);
    },
    async close() {
      try {
        if (jsm && !env) await deleteStream(jsm, stream);
        await nc?.close();
        await sql.end();
        await dbs.drop();
      } finally {
        if (!env) rmSync(config.dataDir, { recursive: true, force: true, maxRetries: 5 });
      }
    },
  };
}

/** The databases of a TestEnv, with clients; drop() only disconnects (TestEnv.cleanup drops them). */
function adoptDatabases(env: TestEnv): TestDatabases {
  const provisioning = createProvisioningClient(env.urls.provisioning, 4);
  return {
    urls: { provisioning: env.urls.provisioning, analytics: env.urls.analytics },
    provisioning,
    async drop() {
      await provisioning.$disconnect();
    },
  };
}

/** The event types of a job's history, in order. */
export const types = (events: JobEvent[]): string[] => events.map((e) => e.type);

/** A RUNNING fleet parent with `n` held diagnostic children (ids in creation order), written as the fleet command does. */
export async function insertParentWithChildren(h: ExecHarness, n: number, payload: Record<string, unknown> = {}): Promise<{ parent: string; children: string[] }> {
  const parent = await h.insertJob({ kind: "agent.fleet_run", payload: {} });
  await h.sql.execute`UPDATE jobs SET state = 'RUNNING', attempt = 1 WHERE id = ${parent}`;
  const now = new Date();
  const children = Array.from({ length: n }, () => newId(now.getTime())).sort();
  const rows = children.map(
    (id): NewJob => ({ id, kind: "diagnostic", payload, maxAttempts: 3, requestedBy: "u-test", resource: null, idempotencyKey: null, traceId: "0".repeat(32), traceparent: null, now, deadlineAt: null, actor: "u-test", subjectPrefix: "" }),
  );
  await h.sql.transaction((tx) => insertHeldChildren(tx, parent, rows));
  return { parent, children };
}
