// Test support for the process-level job tests (faults*, trace*): read-only views of a TestEnv's provisioning
// database — a job's row, its event history, its effect rows and outbox rows — and of its JetStream stream, kept
// independent of the job code under test (plain SQL through a Prisma client of its own).
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createProvisioningClient, type ProvisioningClient } from "../../src/db/clients.js";
import type { TestEnv } from "../support/process.js";
import { until } from "../support/poll.js";

/**
 * Small connection pools for the processes of these tests: each process otherwise opens its pools in full (a worker
 * some 50 connections), and a few processes of concurrent test files would exhaust MariaDB's max_connections (151).
 */
export const SMALL_POOLS: Record<string, string> = {
  DISPATCHER_PROVISIONING_POOL_SIZE: "3",
  DISPATCHER_PROVISIONING_SQL_POOL_SIZE: "6",
  DISPATCHER_ANALYTICS_POOL_SIZE: "1",
  DISPATCHER_JOBS_WORKER_CONCURRENCY: "16",
};

export interface JobView {
  id: string;
  state: string;
  attempt: number;
  publishCount: number;
  publishedAt: Date | null;
  traceId: string;
  traceparent: string | null;
  result: unknown;
}

export interface JobsDb {
  db: ProvisioningClient;
  job(id: string): Promise<JobView>;
  /** Event types in order. */
  events(id: string): Promise<string[]>;
  /** The attempts of the job's diagnostic_effects rows, in insertion order. */
  effects(id: string): Promise<number[]>;
  /** The job's outbox rows: its publications not yet acknowledged by JetStream. */
  outbox(id: string): Promise<{ msgId: string }[]>;
  /** Jobs per state, e.g. { SUCCEEDED: 500 }. */
  countStates(): Promise<Record<string, number>>;
  waitForState(id: string, states: string[], timeoutMs: number): Promise<JobView>;
  close(): Promise<void>;
}

export function openJobsDb(env: TestEnv): JobsDb {
  const db = createProvisioningClient(env.urls.provisioning, 2);
  const job = async (id: string): Promise<JobView> => {
    const rows = await db.$queryRaw<JobView[]>`
      SELECT id, state, attempt, publish_count AS publishCount, published_at AS publishedAt, trace_id AS traceId, traceparent, result
        FROM jobs WHERE id = ${id}`;
    if (!rows[0]) throw new Error(`no job ${id}`);
    return rows[0];
  };
  return {
    db,
    job,
    async events(id) {
      const rows = await db.$queryRaw<{ type: string }[]>`SELECT type FROM job_events WHERE job_id = ${id} ORDER BY sequence`;
      return rows.map((r) => r.type);
    },
    async effects(id) {
      const rows = await db.$queryRaw<{ attempt: number }[]>`SELECT attempt FROM diagnostic_effects WHERE job_id = ${id} ORDER BY id`;
      return rows.map((r) => Number(r.attempt));
    },
    outbox: (id) => db.$queryRaw<{ msgId: string }[]>`SELECT msg_id AS msgId FROM outbox_entries WHERE job_id = ${id} ORDER BY id`,
    async countStates() {
      const rows = await db.$queryRaw<{ state: string; n: bigint }[]>`SELECT state, COUNT(*) AS n FROM jobs GROUP BY state`;
      return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
    },
    async waitForState(id, states, timeoutMs) {
      let last: JobView | undefined;
      const reached = async () => ((last = await job(id)), states.includes(last.state) ? last : undefined);
      return until(reached, timeoutMs, `job ${id} ${states.join("|")}`, () => `(still ${last?.state}, attempt ${last?.attempt})`);
    },
    close: () => db.$disconnect(),
  };
}

/** Messages stored in the env's jobs stream now (throws when the stream does not exist). */
export async function streamMessages(env: TestEnv): Promise<number> {
  const nc = await connect({ servers: env.natsUrl, timeout: 5_000 });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(env.stream)).state.messages;
  } finally {
    await nc.close();
  }
}
