// Jobs on a private 3-node JetStream cluster with real processes: a dispatcher and two workers whose mq.url names
// every node and whose mq.jobsStreamReplicas is 3. The stream was made earlier with one copy (as a single-server
// deployment leaves it): the first process to start brings it to three and says so. 1,000 diagnostic jobs are submitted
// with idempotency keys, 32 in flight; once some have run, the node that leads the stream is SIGKILLed. Every job
// succeeds, each with exactly one effect row; no call ever answers INTERNAL.
import { jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { createSqlPool, type SqlPool } from "../../src/db/sql.js";
import { ensureJobsStream } from "../../src/mq/jobs-stream.js";
import { SMALL_POOLS } from "../jobs/faults-support.js";
import { captureLogger } from "../mq/support.js";
import { startNatsCluster, type NatsCluster, type NatsNode } from "../support/nats-cluster.js";
import { until } from "../support/poll.js";
import { createTestApiKey, createTestEnv, killStrayDispatchers, spawnDispatcher, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";
import { account, submitDiagnosticJobs } from "./support.js";

const JOBS = 1_000;
const IN_FLIGHT = 32;
/** Jobs ended before the stream leader is killed. */
const KILL_AFTER = 250;

let cluster: NatsCluster;
let nc: NatsConnection;
let jsm: JetStreamManager;
let env: TestEnv;
let sql: SqlPool;
let client: DispatcherClients;
const procs: DispatcherProcess[] = [];

beforeAll(async () => {
  cluster = await startNatsCluster({ label: "jobs" });
  nc = await connect({ servers: cluster.urls.split(","), timeout: 5_000, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
  jsm = await jetstreamManager(nc, { timeout: 5_000 });
  env = await createTestEnv({
    label: "jscluster",
    natsUrl: cluster.urls,
    migrate: true,
    env: { ...SMALL_POOLS, DISPATCHER_MQ_JOBS_STREAM_REPLICAS: "3", DISPATCHER_LOGGING_LEVEL: "info" },
  });
  // The stream as a single-server deployment left it: one copy.
  await jsm.streams.add({ name: env.stream, subjects: [`${env.subjectPrefix}.>`], retention: RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: 1 });
  sql = createSqlPool(env.urls.provisioning, 2);
  const key = await createTestApiKey(env.urls.provisioning, { role: "admin" });
  procs.push(await startDispatcher(env, ["serve", "--role", "dispatcher"], { timeoutMs: 60_000 }));
  const workers = [spawnDispatcher(["serve", "--role", "worker"], env.env), spawnDispatcher(["serve", "--role", "worker"], env.env)];
  procs.push(...workers);
  await Promise.all(workers.map((w) => w.waitForOutput(/worker consuming jobs/, 60_000)));
  client = createDispatcherClients({ address: env.address, token: key.secret });
}, 120_000);

afterAll(async () => {
  client?.close();
  await killStrayDispatchers();
  await sql?.end();
  await nc?.close();
  await env?.cleanup();
  await cluster?.stop();
});

describe("jobs on a 3-node JetStream cluster", () => {
  it("the single-copy stream was brought to three copies at start, the change logged; the workers' consumer has three too", async () => {
    const info = await jsm.streams.info(env.stream);
    expect(info.config.num_replicas).toBe(3);
    expect(info.cluster?.replicas ?? []).toHaveLength(2);
    const logged = procs.flatMap((p) => p.logLines()).filter((l) => String(l.msg).startsWith(`jobs stream ${env.stream} reconciled`));
    expect(logged.length, procs.map((p) => p.output()).join("\n")).toBeGreaterThanOrEqual(1);
    expect(logged[0]?.changes).toEqual([{ setting: "replicas", from: 1, to: 3 }]);
    const consumer = await jsm.consumers.info(env.stream, "workers");
    expect(consumer.config.num_replicas).toBe(3);
    expect(consumer.cluster?.replicas ?? []).toHaveLength(2);
  });

  it("more copies than the cluster has servers are refused, saying what to do", async () => {
    await expect(ensureJobsStream(jsm, { stream: `${env.stream}_R5`, subjectPrefix: `${env.subjectPrefix}_r5`, replicas: 5 })).rejects.toMatchObject({
      reason: "JOBS_STREAM_REPLICAS",
      message: expect.stringMatching(/mq\.jobsStreamReplicas is 5.*cannot place them/),
    });
  });

  it("one copy on a cluster is kept but warned about", async () => {
    const { log, lines } = captureLogger("info");
    await ensureJobsStream(jsm, { stream: `${env.stream}_R1`, subjectPrefix: `${env.subjectPrefix}_r1`, replicas: 1, log });
    expect(lines.map((l) => l.level)).toEqual(["warn"]);
    expect(lines[0]?.msg).toMatch(/has one copy, on .* of NATS cluster .*losing that server stops all work.*mq\.jobsStreamReplicas to 3/);
    await jsm.streams.delete(`${env.stream}_R1`);
  });

  it("a worker configured for more copies than the cluster has exits 1 at start, saying what to set", async () => {
    const p = spawnDispatcher(["serve", "--role", "worker"], env.with({ DISPATCHER_MQ_JOBS_STREAM_REPLICAS: "5" }));
    const exit = await p.exited;
    expect(exit.code, p.output()).toBe(1);
    expect(p.stderr).toMatch(/dispatcher: mq\.jobsStreamReplicas is 5, but stream \S+ cannot have that many copies/);
    expect(p.stderr).not.toMatch(/unexpected error|\n\s+at /);
    expect((await jsm.streams.info(env.stream)).config.num_replicas).toBe(3);
  }, 60_000);

  it("1,000 jobs, the stream leader SIGKILLed mid-run: every job succeeds once, no INTERNAL", async () => {
    const started = Date.now();
    const { submission, finished } = submitDiagnosticJobs(client, { count: JOBS, inFlight: IN_FLIGHT, keyPrefix: "js", sleepMs: 20 });
    const ended = async () => Number((await sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM jobs WHERE state = 'SUCCEEDED'`)[0]?.n ?? 0);
    await until(async () => (await ended()) >= KILL_AFTER, 90_000, `${KILL_AFTER} jobs to succeed`, () => procs.map((p) => p.output()).join("\n"));
    const leaderName = (await jsm.streams.info(env.stream)).cluster?.leader;
    const leader = cluster.nodes.find((n) => n.name === leaderName) as NatsNode;
    expect(leader, `stream leader ${leaderName}`).toBeDefined();
    const endedAtKill = await ended();
    await leader.kill();
    const killedAt = Date.now();

    await finished;
    let last = 0;
    await until(async () => (last = await ended()) === JOBS, 120_000, "every job to succeed", () => `(${last} succeeded; ${JSON.stringify(submission.errors)})\n${procs.map((p) => p.output().slice(-3_000)).join("\n")}`);
    const recoveredS = (Date.now() - killedAt) / 1_000;

    const a = await account(sql, submission);
    expect(submission.unknown).toEqual([]);
    expect(submission.ok.size).toBe(JOBS);
    expect(a).toEqual({ states: { SUCCEEDED: JOBS }, lost: 0, stuck: 0, doubleEffects: 0, missingEffects: 0, staleEffects: 0, unknownCreated: 0 });
    expect(submission.errors.INTERNAL, submission.samples.INTERNAL).toBeUndefined();
    expect(endedAtKill).toBeLessThan(JOBS);
    // The new leader is one of the two others; the processes never exited.
    // Jobs go on through the election (claimed from the database), so it may still be under way: ask until it answers.
    const after = await until(() => jsm.streams.info(env.stream).catch(() => null), 30_000, "the stream's info after the election");
    expect(after.cluster?.leader).not.toBe(leaderName);
    for (const p of procs) expect(p.running, p.output()).toBe(true);
    console.info(
      `jetstream cluster: ${JOBS} jobs in ${((Date.now() - started) / 1_000).toFixed(1)} s; leader ${leaderName} killed after ${endedAtKill} ended; ` +
        `all succeeded ${recoveredS.toFixed(1)} s after the kill; call errors retried ${JSON.stringify(submission.errors)}`,
    );
  }, 300_000);
});
