// Jobs on a private 3-node MariaDB Galera cluster with real processes spread over its nodes: dispatcher A and the
// monitor on node 1, dispatcher B on node 2, the worker on node 3, every session with wsrep_sync_wait = 3. 1,000
// diagnostic jobs are submitted with idempotency keys, 32 in flight, alternately to A and B (a retry goes to the other
// one, as a caller behind a load balancer would); once some have run, node 2 is SIGKILLed. Every job succeeds with
// exactly one effect row, no call ever answers INTERNAL. Before that, a transaction that loses certification to a commit
// on another node is shown to be retried (or to reach a caller as ABORTED). The nodes refuse a table without a primary key
// (innodb_force_primary_key), so the migrations applying at all proves every table has one; the test checks it too.
import { status as Code } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { DATABASES } from "../../src/db/databases.js";
import { isTransientConflict } from "../../src/db/errors.js";
import { migrate } from "../../src/db/migrate.js";
import { createSqlPool, type SqlPool } from "../../src/db/sql.js";
import { toRpcStatus } from "../../src/rpc/status.js";
import { SMALL_POOLS } from "../jobs/faults-support.js";
import { newTestDatabaseName } from "../support/db.js";
import { galeraUnavailable, startGaleraCluster, type GaleraCluster, type GaleraNode } from "../support/galera.js";
import { until } from "../support/poll.js";
import { createTestApiKey, createTestEnv, freePort, killStrayDispatchers, spawnDispatcher, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";
import { account, submitDiagnosticJobs } from "./support.js";

const JOBS = 1_000;
const IN_FLIGHT = 32;
/** Jobs ended before node 2 is killed. */
const KILL_AFTER = 250;

let cluster: GaleraCluster;
let env: TestEnv;
let sql: SqlPool;
const clients: DispatcherClients[] = [];
const procs: Record<string, DispatcherProcess> = {};
const names = { provisioning: newTestDatabaseName("galera", "prov"), analytics: newTestDatabaseName("galera", "anl"), credentials: newTestDatabaseName("galera", "cred") };
const node = (i: number): GaleraNode => cluster.nodes[i - 1] as GaleraNode;

/** The environment of a process whose databases are on node `i`. */
function onNode(i: number, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return env.with({
    DISPATCHER_PROVISIONING_URL: node(i).url(names.provisioning),
    DISPATCHER_ANALYTICS_URL: node(i).url(names.analytics),
    DISPATCHER_KM_DATABASE_URL: node(i).url(names.credentials),
    ...extra,
  });
}

const unavailable = galeraUnavailable();

beforeAll(async () => {
  if (unavailable) return;
  // Galera's defaults take 5 s to suspect a silent node and 15 s to evict it; shorter ones keep the test short.
  cluster = await startGaleraCluster({
    label: "jobs",
    providerOptions: "evs.suspect_timeout=PT2S;evs.inactive_timeout=PT4S;evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S",
    args: ["--innodb-force-primary-key=1"],
  });
  for (const db of DATABASES) await migrate(node(1).url(names[db.name]), db.migrationsDir);
  env = await createTestEnv({
    label: "galera",
    env: { ...SMALL_POOLS, DISPATCHER_PROVISIONING_WSREP_SYNC_WAIT: "3", DISPATCHER_LOGGING_LEVEL: "info" },
  });
  sql = createSqlPool(node(1).url(names.provisioning), 2, { wsrepSyncWait: 3 });
  const key = await createTestApiKey(node(1).url(names.provisioning), { role: "admin" });
  const [serverB, bridgeB, consoleB] = [await freePort(), await freePort(), await freePort()];
  const envB = onNode(2, { DISPATCHER_SERVER_PORT: String(serverB), DISPATCHER_BRIDGE_PORT: String(bridgeB), DISPATCHER_CONSOLE_PORT: String(consoleB) });
  const [a, b] = await Promise.all([
    startDispatcher(env, ["serve", "--role", "dispatcher"], { env: onNode(1), timeoutMs: 90_000 }),
    startDispatcher({ ...env, address: `127.0.0.1:${serverB}` }, ["serve", "--role", "dispatcher"], { env: envB, timeoutMs: 90_000 }),
  ]);
  procs.dispatcherA = a;
  procs.dispatcherB = b;
  procs.worker = spawnDispatcher(["serve", "--role", "worker"], onNode(3));
  procs.monitor = spawnDispatcher(["serve", "--role", "monitor"], onNode(1));
  await Promise.all([procs.worker.waitForOutput(/worker consuming jobs/, 90_000), procs.monitor.waitForOutput(/monitor running/, 90_000)]);
  for (const address of [env.address, `127.0.0.1:${serverB}`]) clients.push(createDispatcherClients({ address, token: key.secret, retry: false }));
}, 240_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await killStrayDispatchers();
  await sql?.end();
  await env?.cleanup();
  await cluster?.stop();
});

describe.skipIf(unavailable)("jobs on a 3-node Galera cluster", () => {
  it("every table of the three databases has a primary key", async () => {
    const rows = await sql.query<{ db: string; t: string }>`
      SELECT t.table_schema AS db, t.table_name AS t FROM information_schema.tables t
       WHERE t.table_schema IN (${Object.values(names)}) AND t.table_type = 'BASE TABLE'
         AND NOT EXISTS (SELECT 1 FROM information_schema.table_constraints c
                          WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name AND c.constraint_type = 'PRIMARY KEY')`;
    expect(rows).toEqual([]);
    const [tables] = await sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema IN (${Object.values(names)})`;
    expect(Number(tables?.n)).toBeGreaterThan(20);
  });

  it("a certification conflict with a commit on another node is a deadlock (1213): tried again, or ABORTED to a caller", async () => {
    await sql.execute`CREATE TABLE IF NOT EXISTS conflict_probe (id INT PRIMARY KEY, v INT NOT NULL)`;
    await sql.execute`INSERT INTO conflict_probe (id, v) VALUES (1, 0)`;
    const far = createSqlPool(node(3).url(names.provisioning), 1, { wsrepSyncWait: 3 });
    try {
      // Row locks are local to a node: node 3's UPDATE commits while node 1's transaction holds the row, and wins.
      const race = (tries: number) => {
        let runs = 0;
        const done = sql.transaction(
          async (tx) => {
            runs++;
            await tx.query`SELECT v FROM conflict_probe WHERE id = 1 FOR UPDATE`;
            if (runs === 1) await far.execute`UPDATE conflict_probe SET v = v + 100 WHERE id = 1`;
            await tx.execute`UPDATE conflict_probe SET v = v + 1 WHERE id = 1`;
          },
          { tries },
        );
        return { done, runs: () => runs };
      };
      const retried = race(3);
      await retried.done;
      expect(retried.runs()).toBe(2);
      expect(await sql.query<{ v: number }>`SELECT v FROM conflict_probe WHERE id = 1`).toEqual([{ v: 101 }]);

      const once = race(1);
      const err = await once.done.catch((e: unknown) => e);
      expect(isTransientConflict(err), String(err)).toBe(true);
      expect(toRpcStatus(err).code).toBe(Code.ABORTED);
      expect(await sql.query<{ v: number }>`SELECT v FROM conflict_probe WHERE id = 1`).toEqual([{ v: 201 }]);
    } finally {
      await far.end();
    }
  });

  it("1,000 jobs through two dispatchers on different nodes, one node SIGKILLed mid-run: every job succeeds once, no INTERNAL", async () => {
    const started = Date.now();
    const { submission, finished } = submitDiagnosticJobs(clients, { count: JOBS, inFlight: IN_FLIGHT, keyPrefix: "gal", sleepMs: 20, giveUpMs: 90_000 });
    const ended = async () => Number((await sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM jobs WHERE state = 'SUCCEEDED'`)[0]?.n ?? 0);
    const output = () => Object.entries(procs).map(([n, p]) => `=== ${n}\n${p.output().slice(-4_000)}`).join("\n");
    await until(async () => (await ended()) >= KILL_AFTER, 120_000, `${KILL_AFTER} jobs to succeed`, output);
    const endedAtKill = await ended();
    await node(2).kill();
    const killedAt = Date.now();

    await finished;
    let last = 0;
    await until(async () => (last = await ended()) === JOBS, 120_000, "every job to succeed", () => `(${last} succeeded; ${JSON.stringify(submission.errors)})\n${output()}`);
    const recoveredS = (Date.now() - killedAt) / 1_000;

    const a = await account(sql, submission);
    expect(submission.errors.INTERNAL, submission.samples.INTERNAL).toBeUndefined();
    expect(submission.unknown, JSON.stringify(submission.samples)).toEqual([]);
    expect(submission.ok.size).toBe(JOBS);
    expect(a).toEqual({ states: { SUCCEEDED: JOBS }, lost: 0, stuck: 0, doubleEffects: 0, missingEffects: 0, staleEffects: 0, unknownCreated: 0 });
    expect(endedAtKill).toBeLessThan(JOBS);
    expect(await node(1).status()).toMatchObject({ size: 2, primary: true, ready: true });
    for (const name of ["dispatcherA", "worker", "monitor"]) expect(procs[name]?.running, procs[name]?.output()).toBe(true);
    console.info(
      `galera cluster: ${JOBS} jobs in ${((Date.now() - started) / 1_000).toFixed(1)} s; node 2 killed after ${endedAtKill} ended; ` +
        `all succeeded ${recoveredS.toFixed(1)} s after the kill; call errors retried ${JSON.stringify(submission.errorsByClient)} ${JSON.stringify(submission.samples)}`,
    );
  }, 300_000);
});
