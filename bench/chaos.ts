// npm run chaos — the job guarantee under faults, with accounting. Private clusters (3 nats-servers with JetStream, 3
// MariaDB Galera nodes) and, as separate processes, 2 dispatchers, 2 workers, 2 monitors and KM spread over the nodes.
// A client creates CHAOS_JOBS diagnostic jobs with idempotency keys, CHAOS_IN_FLIGHT at a time, alternately through the
// two dispatchers (a retry through the other), spread over the schedule, and records each outcome. One fault every
// CHAOS_FAULT_GAP_S: SIGKILL of a worker; SIGSTOP of the other past its lease, then SIGCONT; SIGKILL of a dispatcher under load;
// of a monitor; of the nats-server leading the jobs stream; of a Galera node (each restarted); a network delay on worker
// B's link to its Galera node (a delaying proxy, CHAOS_DELAY_MS each way, healed after a while). Then quiescence and one
// JSON line: {"bench":"chaos", submitted, ok, unknown, succeeded, failed, stuck, lost, double_effects, unknown_created,
// internal, killed_worker_p99_s, stopped_worker_p99_s, nats_election_s, recovery_s: {fault: longest stretch without a
// job ending}}.
// Exit 0 when nothing was lost, stuck or run twice and no call answered INTERNAL; 1 otherwise.
// Options (env): CHAOS_JOBS (5000), CHAOS_IN_FLIGHT (32), CHAOS_JOB_MS (each job's run, 300), CHAOS_FAULT_GAP_S (15),
// CHAOS_LEASE_MS (jobs.leaseMs of the processes; default the configuration's), CHAOS_QUIESCE_S (180), CHAOS_DELAY_MS (200),
// CHAOS_KEEP_LOGS (keep the processes' logs of a passing run too).
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createDispatcherClients, type DispatcherClients } from "../src/client/index.js";
import { loadConfig } from "../src/config.js";
import { createProvisioningClient } from "../src/db/clients.js";
import { DATABASES } from "../src/db/databases.js";
import { migrate } from "../src/db/migrate.js";
import { createSqlPool, type SqlPool } from "../src/db/sql.js";
import { createApiKeyForEmail } from "../src/iam/api-keys/keys.js";
import { account, submitDiagnosticJobs, type Submission } from "../test/cluster/support.js";
import { Daemon, GiveUp, poll } from "../test/support/daemon.js";
import { startGaleraCluster, type GaleraCluster, type GaleraNode } from "../test/support/galera.js";
import { startNatsCluster, type NatsCluster } from "../test/support/nats-cluster.js";
import { DelayProxy } from "../test/support/delay-proxy.js";
import { freePorts } from "../test/support/net.js";
import { percentile, round, say } from "./support.js";

const JOBS = Number(process.env.CHAOS_JOBS ?? 5_000);
const IN_FLIGHT = Number(process.env.CHAOS_IN_FLIGHT ?? 32);
const JOB_MS = Number(process.env.CHAOS_JOB_MS ?? 300);
const QUIESCE_MS = Number(process.env.CHAOS_QUIESCE_S ?? 180) * 1_000;
const LEASE_MS = Number(process.env.CHAOS_LEASE_MS ?? loadConfig({}, "").jobs.leaseMs);
/** Time between faults: longer than a lease, so that each one's effect is seen alone. */
const FAULT_GAP_MS = Number(process.env.CHAOS_FAULT_GAP_S ?? 15) * 1_000;
/** The faults of the schedule below. */
const FAULTS = 7;
/** The network fault: added to each direction of worker B's database link, for DELAY_WINDOW_MS. */
const DELAY_MS = Number(process.env.CHAOS_DELAY_MS ?? 200);
const DELAY_WINDOW_MS = Math.max(3_000, FAULT_GAP_MS - 5_000);
const BIN = join(import.meta.dirname, "..", "bin", "dispatcher.js");
/** Galera's defaults take 5 s to suspect a silent node and 15 s to evict it; these are what a LAN deployment may use. */
const GALERA_EVICTION = "evs.suspect_timeout=PT2S;evs.inactive_timeout=PT4S;evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S";

/** One role process, restartable with the same arguments and environment. */
class Role {
  daemon: Daemon;
  constructor(
    readonly name: string,
    private readonly role: string,
    private readonly env: NodeJS.ProcessEnv,
    readonly logFile: string,
  ) {
    this.daemon = this.spawn();
  }
  private spawn(): Daemon {
    return new Daemon(this.name, process.execPath, [BIN, "serve", "--role", this.role], this.logFile, this.env);
  }
  /**
   * Starts it again; once its log shows `ready` (read from the restart on: the log file is appended to), `restarts`
   * gets how many seconds that took. A worker that takes long to start is a worker that is not consuming.
   */
  restart(ready?: RegExp, restarts?: Record<string, number | null>): void {
    if (this.daemon.running) throw new Error(`${this.name} still runs`);
    const from = existsSync(this.logFile) ? statSync(this.logFile).size : 0;
    const at = Date.now();
    this.daemon = this.spawn();
    if (!ready || !restarts) return;
    restarts[this.name] = null;
    void poll(
      async () => {
        if (!this.daemon.running) throw new GiveUp(`${this.name} exited`);
        return ready.test(readFileSync(this.logFile, "utf8").slice(from));
      },
      120_000,
      `${this.name} to log ${ready}`,
      200,
    )
      .then(() => (restarts[this.name] = round((Date.now() - at) / 1_000)))
      .catch(() => undefined);
  }
  async waitFor(pattern: RegExp, timeoutMs = 180_000): Promise<void> {
    await poll(
      async () => {
        if (pattern.test(this.daemon.tail(400))) return true;
        if (!this.daemon.running) throw new GiveUp(`${this.name} exited:\n${this.daemon.tail()}`);
        return false;
      },
      timeoutMs,
      `${this.name} to log ${pattern}`,
      200,
    );
  }
}

interface Fault {
  name: string;
  run(): Promise<void>;
}

interface Struck {
  name: string;
  atMs: number;
  /** Jobs the victim held when a worker was killed or stopped. */
  orphans?: string[];
  /** The process a fault slowed down. */
  victimPid?: number;
}

async function main(): Promise<void> {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), "dispatcher-chaos-"));
  say(`chaos: ${JOBS} jobs, ${IN_FLIGHT} in flight, ${JOB_MS} ms each; lease ${LEASE_MS} ms; state in ${dir}`);
  let nats: NatsCluster | undefined;
  let galera: GaleraCluster | undefined;
  const roles: Role[] = [];
  const clients: DispatcherClients[] = [];
  let sql: SqlPool | undefined;
  let slowLink: DelayProxy | undefined;
  try {
    [nats, galera] = await Promise.all([startNatsCluster({ label: "chaos" }), startGaleraCluster({ label: "chaos", providerOptions: GALERA_EVICTION })]);
    const node = (i: number): GaleraNode => (galera as GaleraCluster).nodes[i - 1] as GaleraNode;
    say(`  nats ${nats.urls}; galera nodes on ${galera.nodes.map((n) => n.port).join(", ")}`);
    const names = { provisioning: "chaos_provisioning", analytics: "chaos_analytics", credentials: "chaos_credentials" };
    for (const db of DATABASES) await migrate(node(1).url(names[db.name]), db.migrationsDir);
    const admin = createProvisioningClient(node(1).url(names.provisioning), 1);
    const key = await createApiKeyForEmail(admin, { email: "chaos@example.test", role: "admin", kind: "user", name: "chaos" });
    await admin.$disconnect();

    const [serverA, serverB, bridgeA, bridgeB, consoleA, consoleB, kmPort] = (await freePorts(7)) as [number, number, number, number, number, number, number];
    const base: NodeJS.ProcessEnv = { DISPATCHER_METRICS_ENABLED: "false" };
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("DISPATCHER_") && !k.startsWith("OTEL_")) base[k] = v;
    Object.assign(base, {
      // src/ through tsx unless the caller says its dist/ is current (the test run does).
      DISPATCHER_FROM_SOURCE: process.env.DISPATCHER_FROM_SOURCE ?? "1",
      DISPATCHER_MODE: "development",
      DISPATCHER_DATA_DIR: dir,
      DISPATCHER_LOGGING_DIR: "-",
      DISPATCHER_LOGGING_LEVEL: "info",
      DISPATCHER_SERVER_BIND: "127.0.0.1",
      DISPATCHER_BRIDGE_BIND: "127.0.0.1",
      DISPATCHER_CONSOLE_ENABLED: "false",
      DISPATCHER_LOCAL_CLOUD_ENABLED: "false",
      DISPATCHER_KM_PLAINTEXT: "true",
      DISPATCHER_ENCRYPTION_MASTER_KEYS: `1:${randomBytes(32).toString("base64")}`,
      DISPATCHER_KM_BIND: "127.0.0.1",
      DISPATCHER_KM_PORT: String(kmPort),
      DISPATCHER_KM_URL: `127.0.0.1:${kmPort}`,
      DISPATCHER_MQ_URL: nats.urls,
      DISPATCHER_MQ_JOBS_STREAM: "CHAOS",
      DISPATCHER_MQ_SUBJECT_PREFIX: "chaos",
      DISPATCHER_MQ_JOBS_STREAM_REPLICAS: "3",
      DISPATCHER_PROVISIONING_WSREP_SYNC_WAIT: "3",
      DISPATCHER_PROVISIONING_POOL_SIZE: "3",
      DISPATCHER_PROVISIONING_SQL_POOL_SIZE: "6",
      DISPATCHER_ANALYTICS_POOL_SIZE: "1",
      DISPATCHER_JOBS_WORKER_CONCURRENCY: "16",
      DISPATCHER_JOBS_LEASE_MS: String(LEASE_MS),
    });
    const on = (i: number, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
      ...base,
      DISPATCHER_PROVISIONING_URL: node(i).url(names.provisioning),
      DISPATCHER_ANALYTICS_URL: node(i).url(names.analytics),
      DISPATCHER_KM_DATABASE_URL: node(i).url(names.credentials),
      ...extra,
    });
    const role = (name: string, r: string, env: NodeJS.ProcessEnv): Role => {
      const p = new Role(name, r, env, join(dir, `${name}.log`));
      roles.push(p);
      return p;
    };
    const dispatcherA = role("dispatcher-a", "dispatcher", on(1, { DISPATCHER_SERVER_PORT: String(serverA), DISPATCHER_BRIDGE_PORT: String(bridgeA), DISPATCHER_CONSOLE_PORT: String(consoleA) }));
    // The first start makes the development keys in the shared data directory; the others then find them.
    await dispatcherA.waitFor(/"msg":"dispatcher started"/);
    const dispatcherB = role("dispatcher-b", "dispatcher", on(2, { DISPATCHER_SERVER_PORT: String(serverB), DISPATCHER_BRIDGE_PORT: String(bridgeB), DISPATCHER_CONSOLE_PORT: String(consoleB) }));
    const workerA = role("worker-a", "worker", on(1));
    // Worker B reaches its Galera node through a proxy that the network fault makes slow.
    slowLink = await DelayProxy.start(node(3).port);
    const proxied = (db: string): string => (slowLink as DelayProxy).rewrite(node(3).url(db), node(3).port);
    const workerB = role("worker-b", "worker", on(3, { DISPATCHER_PROVISIONING_URL: proxied(names.provisioning), DISPATCHER_ANALYTICS_URL: proxied(names.analytics) }));
    const monitorA = role("monitor-a", "monitor", on(1));
    const monitorB = role("monitor-b", "monitor", on(3));
    const km = role("km", "km", on(1));
    await Promise.all([dispatcherB.waitFor(/"msg":"dispatcher started"/), workerA.waitFor(/worker consuming jobs/), workerB.waitFor(/worker consuming jobs/), monitorA.waitFor(/monitor running/), monitorB.waitFor(/monitor running/), km.waitFor(/"msg":"KM serving"/)]);
    say(`  processes up after ${round((Date.now() - started) / 1_000)} s`);

    sql = createSqlPool(node(1).url(names.provisioning), 2, { wsrepSyncWait: 3 });
    const db = sql;
    for (const port of [serverA, serverB]) clients.push(createDispatcherClients({ address: `127.0.0.1:${port}`, token: key.secret, retry: false }));
    const runStarted = Date.now();
    const ratePerSecond = JOBS / (((FAULTS + 1) * FAULT_GAP_MS) / 1_000);
    say(`  submitting at ${round(ratePerSecond)} jobs/s; a fault every ${FAULT_GAP_MS / 1_000} s`);
    const { submission, finished } = submitDiagnosticJobs(clients, { count: JOBS, inFlight: IN_FLIGHT, keyPrefix: "chaos", sleepMs: JOB_MS, giveUpMs: 120_000, ratePerSecond });

    const struck: Struck[] = [];
    const elections: Promise<Record<string, number | null>>[] = [];
    /** Seconds from each restart to its process serving again (null: not yet). */
    const restarts: Record<string, number | null> = {};
    const healing: Promise<unknown>[] = [];
    const later = (ms: number, fn: () => Promise<void> | void): void => {
      healing.push(new Promise((r) => setTimeout(r, ms)).then(fn));
    };
    // Read once the worker is dead or stopped: what it holds then is what it left behind.
    const heldBy = async (pid: number) => (await db.query<{ id: string }>`SELECT id FROM jobs WHERE state = 'RUNNING' AND lease_owner LIKE ${`worker-${pid}-%`}`).map((r) => r.id);
    const streamLeader = async (): Promise<string | undefined> => {
      const nc = await connect({ servers: (nats as NatsCluster).urls.split(","), timeout: 5_000 });
      try {
        return (await (await jetstreamManager(nc)).streams.info("CHAOS")).cluster?.leader;
      } finally {
        await nc.close();
      }
    };
    const faults: Fault[] = [
      {
        name: "sigkill_worker",
        run: async () => {
          const pid = workerA.daemon.pid;
          await workerA.daemon.kill();
          struck.push({ name: "sigkill_worker", atMs: Date.now(), orphans: await heldBy(pid) });
          later(3_000, () => workerA.restart(/worker consuming jobs/, restarts));
        },
      },
      {
        name: "sigstop_worker_past_lease",
        run: async () => {
          // Stopping B while the A killed before is still starting would leave no worker at all, and measure that (a
          // run paused 8.2 s so); the fault is about work going on while a worker lives.
          const waitedMs = await waitUntil(() => restarts["worker-a"] !== null, 60_000);
          if (waitedMs > 0) say(`  waited ${round(waitedMs / 1_000)} s for worker-a to consume again`);
          workerB.daemon.signal("SIGSTOP");
          struck.push({ name: "sigstop_worker_past_lease", atMs: Date.now(), orphans: await heldBy(workerB.daemon.pid) });
          later(LEASE_MS + 3_000, () => workerB.daemon.signal("SIGCONT"));
        },
      },
      {
        name: "sigkill_dispatcher",
        run: async () => {
          await dispatcherA.daemon.kill();
          struck.push({ name: "sigkill_dispatcher", atMs: Date.now() });
          later(2_000, () => dispatcherA.restart(/"msg":"dispatcher started"/, restarts));
        },
      },
      {
        name: "sigkill_monitor",
        run: async () => {
          await monitorA.daemon.kill();
          struck.push({ name: "sigkill_monitor", atMs: Date.now() });
          later(2_000, () => monitorA.restart(/monitor running/, restarts));
        },
      },
      {
        name: "sigkill_nats_stream_leader",
        run: async () => {
          const leader = await streamLeader();
          const victim = (nats as NatsCluster).nodes.find((n) => n.name === leader) ?? (nats as NatsCluster).nodes[0];
          await victim?.kill();
          const atMs = Date.now();
          struck.push({ name: "sigkill_nats_stream_leader", atMs });
          elections.push(
            measureElection(nats as NatsCluster, victim?.name ?? "", atMs).catch((err: unknown) => {
              say(`  could not measure the election: ${String(err)}`);
              return { stream: null, consumer: null };
            }),
          );
          later(5_000, () => victim?.restart());
        },
      },
      {
        name: "sigkill_galera_node",
        run: async () => {
          await node(2).kill();
          struck.push({ name: "sigkill_galera_node", atMs: Date.now() });
          later(5_000, () => node(2).restart());
        },
      },
      {
        name: "network_delay_worker_db",
        run: async () => {
          slowLink?.delay(DELAY_MS);
          struck.push({ name: "network_delay_worker_db", atMs: Date.now(), victimPid: workerB.daemon.pid });
          later(DELAY_WINDOW_MS, () => slowLink?.delay(0));
        },
      },
    ];
    // One fault every FAULT_GAP_MS, the first after one gap of calm; the jobs are spread over the faults and a gap after.
    for (const [k, fault] of faults.entries()) {
      const due = runStarted + (k + 1) * FAULT_GAP_MS - Date.now();
      if (due > 0) await new Promise((r) => setTimeout(r, due));
      const running = await db.query<{ owner: string; n: bigint }>`SELECT lease_owner AS owner, COUNT(*) AS n FROM jobs WHERE state = 'RUNNING' GROUP BY lease_owner`;
      const held = running.map((r) => `${r.owner.replace(/^worker-(\d+)-.*/, "pid $1")}: ${Number(r.n)}`).join(", ");
      say(`  ${round((Date.now() - runStarted) / 1_000)} s: ${fault.name} (${submission.done} answered; running ${held || "none"}; workers ${workerA.daemon.pid}, ${workerB.daemon.pid}; still starting: ${Object.keys(restarts).filter((k) => restarts[k] === null).join(", ") || "none"})`);
      await fault.run();
    }
    await finished;
    await Promise.all(healing);
    const submittedS = (Date.now() - runStarted) / 1_000;
    say(`  all ${JOBS} answered after ${round(submittedS)} s; waiting for quiescence`);
    let open = -1;
    await poll(
      async () => (open = Number((await db.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM jobs WHERE state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')`)[0]?.n ?? 0)) === 0,
      QUIESCE_MS,
      "every job to end",
      1_000,
    ).catch(() => say(`  ${open} jobs still open after ${QUIESCE_MS / 1_000} s`));
    await galera.waitSynced(60_000).catch((err: unknown) => say(`  galera not synced again: ${String(err)}`));

    const line = {
      bench: "chaos",
      jobs: JOBS,
      in_flight: IN_FLIGHT,
      ...(await accounting(db, submission, struck)),
      nats_election_s: (await Promise.all(elections))[0] ?? null,
      restart_s: restarts,
      delay_ms: DELAY_MS,
      run_s: round(submittedS),
      load: loadavg().map((l) => round(l, 2)),
    };
    console.log(JSON.stringify(line));
    if (line.double_effects > 0 || line.stale_effects > 0) await explainDoubles(db);
    process.exitCode = line.lost === 0 && line.stuck === 0 && line.double_effects === 0 && line.internal === 0 && line.unknown_run_twice === 0 ? 0 : 1;
  } finally {
    for (const c of clients) c.close();
    await sql?.end();
    await Promise.allSettled(roles.map((r) => r.daemon.kill()));
    await slowLink?.stop();
    await Promise.allSettled([nats?.stop(), galera?.stop()]);
    if (process.exitCode === 0 && !process.env.CHAOS_KEEP_LOGS) rmSync(dir, { recursive: true, force: true });
    else say(`  logs kept in ${dir}`);
  }
}

async function accounting(sql: SqlPool, submission: Submission, struck: Struck[]) {
  const a = await account(sql, submission);
  const ends = (await sql.query<{ ms: number }>`SELECT UNIX_TIMESTAMP(ended_at) * 1000 AS ms FROM jobs WHERE ended_at IS NOT NULL ORDER BY ended_at`).map((r) => Number(r.ms));
  const recovery: Record<string, number> = {};
  // Each fault's window ends where the next one strikes.
  for (const s of struck) recovery[s.name] = round(longestStall(ends, s.atMs, FAULT_GAP_MS) / 1_000);
  const orphanP99 = async (name: string): Promise<number | null> => {
    const s = struck.find((x) => x.name === name);
    if (!s?.orphans?.length) return null;
    const rows = await sql.query<{ ms: number | null }>`SELECT UNIX_TIMESTAMP(ended_at) * 1000 AS ms FROM jobs WHERE id IN (${s.orphans})`;
    const after = rows.map((r) => (r.ms === null ? Infinity : Number(r.ms) - s.atMs)).sort((x, y) => x - y);
    return round(percentile(after, 99) / 1_000);
  };
  const [unknownTwice] = submission.unknown.length
    ? await sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM (SELECT e.job_id FROM diagnostic_effects e JOIN jobs j ON j.id = e.job_id WHERE j.idempotency_key IN (${submission.unknown}) GROUP BY e.job_id HAVING COUNT(*) > 1) t`
    : [{ n: 0n }];
  return {
    submitted: JOBS,
    ok: submission.ok.size,
    unknown: submission.unknown.length,
    succeeded: a.states.SUCCEEDED ?? 0,
    failed: a.states.FAILED ?? 0,
    stuck: a.stuck,
    lost: a.lost,
    double_effects: a.doubleEffects,
    missing_effects: a.missingEffects,
    stale_effects: a.staleEffects,
    unknown_created: a.unknownCreated,
    unknown_run_twice: Number(unknownTwice?.n ?? 0),
    internal: submission.errors.INTERNAL ?? 0,
    call_errors: submission.errors,
    killed_worker_orphans: struck.find((s) => s.name === "sigkill_worker")?.orphans?.length ?? 0,
    killed_worker_p99_s: await orphanP99("sigkill_worker"),
    stopped_worker_orphans: struck.find((s) => s.name === "sigstop_worker_past_lease")?.orphans?.length ?? 0,
    stopped_worker_p99_s: await orphanP99("sigstop_worker_past_lease"),
    recovery_s: recovery,
    delayed_worker: await delayedWorker(sql, struck.find((s) => s.name === "network_delay_worker_db")),
  };
}

/** For each job with an effect of another attempt than its last: its history and effects, so that a failing run says why. */
async function explainDoubles(sql: SqlPool): Promise<void> {
  const jobs = await sql.query<{ id: string }>`
    SELECT DISTINCT e.job_id AS id FROM diagnostic_effects e JOIN jobs j ON j.id = e.job_id WHERE e.attempt <> j.attempt LIMIT 10`;
  for (const { id } of jobs) {
    const events = await sql.query`SELECT sequence, type, attempt, actor, DATE_FORMAT(created_at, '%T.%f') AS at, message FROM job_events WHERE job_id = ${id} ORDER BY sequence`;
    const effects = await sql.query`SELECT attempt, DATE_FORMAT(created_at, '%T.%f') AS at FROM diagnostic_effects WHERE job_id = ${id} ORDER BY id`;
    say(`  job ${id}: events ${JSON.stringify(events)} effects ${JSON.stringify(effects)}`);
  }
}

/** Resolves once `ready()` holds (or after `timeoutMs`), with how long that took. */
async function waitUntil(ready: () => boolean, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (!ready() && Date.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 100));
  return Date.now() - t0;
}

/**
 * While worker B's database link was slow: the jobs it and the others completed in the window, and the leases lost
 * (jobs taken over after `lease_expired`) then or within a lease after it. A slow worker should do less, not lose work.
 */
async function delayedWorker(sql: SqlPool, s: Struck | undefined): Promise<{ ended_by_it: number; ended_by_others: number; leases_lost: number } | null> {
  if (!s?.victimPid) return null;
  const from = s.atMs / 1_000;
  const to = (s.atMs + DELAY_WINDOW_MS) / 1_000;
  const mine = `worker-${s.victimPid}-%`;
  const rows = await sql.query<{ mine: bigint; n: bigint }>`
    SELECT actor LIKE ${mine} AS mine, COUNT(*) AS n FROM job_events
    WHERE to_state = 'SUCCEEDED' AND created_at >= FROM_UNIXTIME(${from}) AND created_at < FROM_UNIXTIME(${to}) GROUP BY mine`;
  const [lost] = await sql.query<{ n: bigint }>`
    SELECT COUNT(*) AS n FROM job_events WHERE type = 'lease_expired' AND created_at >= FROM_UNIXTIME(${from}) AND created_at < FROM_UNIXTIME(${to + LEASE_MS / 1_000 + 2})`;
  const count = (m: boolean): number => Number(rows.find((r) => Boolean(Number(r.mine)) === m)?.n ?? 0);
  return { ended_by_it: count(true), ended_by_others: count(false), leases_lost: Number(lost?.n ?? 0) };
}

/**
 * How long after the kill of the stream leader's node the stream and the workers' consumer had a leader again (on
 * another node), asked every 100 ms from the surviving nodes: the part of the pause that is JetStream's own election.
 */
async function measureElection(nats: NatsCluster, victim: string, atMs: number): Promise<Record<string, number | null>> {
  const survivors = nats.nodes.filter((n) => n.name !== victim).map((n) => n.url);
  const nc = await connect({ servers: survivors, timeout: 5_000 });
  const found: Record<string, number | null> = { stream: null, consumer: null };
  try {
    // checkAPI off: its account-info request would itself wait out the election.
    const jsm = await jetstreamManager(nc, { timeout: 500, checkAPI: false });
    const leaderOf = async (what: "stream" | "consumer"): Promise<string | undefined> =>
      what === "stream" ? (await jsm.streams.info("CHAOS")).cluster?.leader : (await jsm.consumers.info("CHAOS", "workers")).cluster?.leader;
    while (Date.now() - atMs < 30_000 && (found.stream === null || found.consumer === null)) {
      for (const what of ["stream", "consumer"] as const) {
        if (found[what] !== null) continue;
        const leader = await leaderOf(what).catch(() => undefined);
        if (leader && leader !== victim) found[what] = round((Date.now() - atMs) / 1_000);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await nc.close();
  }
  return found;
}

/** The longest stretch in [from, from + windowMs] between job endings: how long work stopped after a fault. */
function longestStall(sortedEnds: number[], from: number, windowMs: number): number {
  let last = from;
  let longest = 0;
  for (const t of sortedEnds) {
    if (t <= from) continue;
    if (t > from + windowMs) break;
    longest = Math.max(longest, t - last);
    last = t;
  }
  // Nothing ending up to the window's end (or the run's last ending, if sooner) is a stop too.
  const end = Math.min(from + windowMs, sortedEnds.at(-1) ?? from);
  return Math.max(longest, end - last);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
