// Test support for the job API and relay: a migrated database, a JetStream stream of this run, a catalog with a
// diagnostic-like kind, the job service with its relay, a real gRPC server, and helpers that drive transitions by SQL
// (what a worker would commit) so these tests do not depend on the worker runtime.
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { z } from "zod";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import type { ProvisioningClient } from "../../src/db/clients.js";
import { createSqlPool, type SqlPool } from "../../src/db/sql.js";
import type { JobCatalog, JobKind } from "../../src/jobs/catalog.js";
import { buildCatalog } from "../../src/app/catalog.js";
import { appendEvent, ringDoorbell } from "../../src/jobs/events.js";
import { jobHandlers } from "../../src/jobs/handlers.js";
import type { JobEventType, JobState } from "../../src/jobs/model.js";
import { createOutboxRelay, type OutboxRelay } from "../../src/jobs/relay.js";
import { createJobService, type JobService } from "../../src/jobs/service.js";
import { createLogger } from "../../src/log.js";
import { ensureJobsStream } from "../../src/mq/jobs-stream.js";
import type { Authenticate, Principal } from "../../src/iam/principal.js";
import { createTestDatabases, type TestDatabases } from "../support/db.js";
import { deleteStream, sharedNatsUrl, testStreamName } from "../mq/support.js";
import { startTestServer, type TestServer } from "../rpc/fixtures.js";

export const PRINCIPALS: Record<string, Principal> = {
  "admin-token": { id: "u-admin", kind: "user", roles: ["admin"], displayName: "Ada Admin" },
  "operator-token": { id: "u-oper", kind: "user", roles: ["operator"], displayName: "Otto Operator" },
  "reader-token": { id: "u-read", kind: "user", roles: ["reader"], displayName: "Rita Reader" },
  "reader2-token": { id: "u-read2", kind: "user", roles: ["reader"], displayName: "Rob Reader" },
};
export const principal = (token: string): Principal => PRINCIPALS[token] as Principal;
export const authenticate: Authenticate = async (token) => PRINCIPALS[token] ?? null;

const quiet = () => createLogger({ level: "silent" });

/** A kind anyone who may read jobs may start: lets tests create jobs for readers. */
export const noteKind: JobKind = {
  kind: "note",
  payload: z.object({ text: z.string().max(64) }) as z.ZodType<unknown>,
  handle: async () => ({ status: "succeeded" }),
  ackWaitMs: 30_000,
  maxAttempts: 2,
  backoffMs: [100],
  timeoutMs: 60_000,
  permission: "jobs.read",
};

/** The real catalog (with the diagnostic kind) plus the note kind. */
export function testCatalog(): JobCatalog {
  const catalog = buildCatalog();
  catalog.register(noteKind);
  return catalog;
}

export interface JobsHarness {
  dbs: TestDatabases;
  db: ProvisioningClient;
  sql: SqlPool;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  stream: string;
  subjectPrefix: string;
  relay: OutboxRelay | undefined;
  jobs: JobService;
  server: TestServer | undefined;
  client(token: string): DispatcherClients;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Start a relay (fast path + poll loop); default true. */
  relay?: boolean;
  pollIntervalMs?: number;
  /** Start a gRPC server; default true. */
  server?: boolean;
  watchIntervalMs?: number;
}

export async function openHarness(label: string, options: HarnessOptions = {}): Promise<JobsHarness> {
  const dbs = await createTestDatabases(label);
  const nc = await connect({ servers: sharedNatsUrl(), timeout: 5_000 });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const stream = testStreamName(label);
  const subjectPrefix = `t${stream.toLowerCase()}`;
  await ensureJobsStream(jsm, { stream, subjectPrefix });
  const sql = createSqlPool(dbs.urls.provisioning, 8);
  const relay = options.relay === false ? undefined : createOutboxRelay({ sql, js, log: quiet(), pollIntervalMs: options.pollIntervalMs ?? 200 });
  relay?.start();
  const jobs = createJobService({ sql, catalog: testCatalog(), subjectPrefix, log: quiet(), relay, nats: nc, watchIntervalMs: options.watchIntervalMs });
  const server = options.server === false ? undefined : await startTestServer({ services: [jobHandlers(jobs)], authenticate });
  const clients: DispatcherClients[] = [];
  return {
    dbs,
    db: dbs.provisioning,
    sql,
    nc,
    js,
    jsm,
    stream,
    subjectPrefix,
    relay,
    jobs,
    server,
    client(token) {
      if (!server) throw new Error("harness started without a server");
      const c = createDispatcherClients({ address: server.address, token, retry: false });
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.close();
      await server?.stop(500);
      await relay?.stop(2_000);
      await sql.end();
      await deleteStream(jsm, stream);
      await nc.close();
      await dbs.drop();
    },
  };
}

/**
 * Commits a transition the way a worker would (CAS-free, for tests): the job's state and its event, then the doorbell.
 * Through the job path's own pool (READ COMMITTED, a deadlock tried again), as the relay may be marking the job's
 * publication at the same moment.
 */
export async function transition(h: Pick<JobsHarness, "sql" | "nc">, jobId: string, type: JobEventType, from: JobState, to: JobState, attempt = 1): Promise<void> {
  await h.sql.transaction(async (tx) => {
    const ended = to === "SUCCEEDED" || to === "FAILED" || to === "CANCELLED";
    await tx.execute`
      UPDATE jobs SET state = ${to}, attempt = ${attempt}, updated_at = NOW(3),
             started_at = COALESCE(started_at, IF(${to} = 'RUNNING', NOW(3), NULL)),
             ended_at = IF(${ended ? 1 : 0} = 1, NOW(3), NULL),
             error_code = IF(${to} = 'FAILED', 'UNAVAILABLE', NULL), error_message = IF(${to} = 'FAILED', 'test failure', NULL)
       WHERE id = ${jobId}`;
    await appendEvent(tx, { jobId, type, fromState: from, toState: to, attempt, actor: "test-worker" });
  });
  ringDoorbell(h.nc, jobId);
}

/** Every message of the stream (without consuming it), in stream order. */
export async function streamMessages(jsm: JetStreamManager, stream: string): Promise<Array<{ seq: number; msgId: string; data: string; traceparent: string }>> {
  const info = await jsm.streams.info(stream);
  const out = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (!m) continue;
    out.push({ seq, msgId: m.header?.get("Nats-Msg-Id") ?? "", data: new TextDecoder().decode(m.data), traceparent: m.header?.get("traceparent") ?? "" });
  }
  return out;
}
