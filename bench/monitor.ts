// npm run bench:monitor — what a fleet costs at rest: an AWS account (the project's EC2 endpoint fake, in this process)
// holding BENCH_MONITOR_SERVERS running instances (default 10,000) is connected through the API; discovery adopts them,
// then for BENCH_MONITOR_WINDOW_S seconds (default 180) nothing happens but the steady work: the monitor schedules a
// server sync of the account every discovery.serverSyncIntervalMs (60 s here; a worker lists every instance and
// compares), the accrual loop prices every running server each analytics.accrualIntervalMs (60 s), and the completion,
// reconcile and retention loops run idle. Roles run as three processes (dispatcher + KM, monitor, worker) so each
// one's CPU is its own. Prints CPU per 1,000 servers per minute for each process and MariaDB, the sync's duration,
// the monitor loops' largest lag behind their schedule (sampled from the monitor's /metrics), and one JSON line.
// Every server also has an agent, simulated by one gRPC server in this process (test/agent/fleet-farm.ts: each agent at
// the loopback address its instance reports, so each ping connects to its own agent as in a real fleet), which the
// monitor pings every agent.pingIntervalMs (BENCH_MONITOR_PING_MS, default 30 s, the default setting) over the
// plaintext channel with each agent's derived credential; the bench prints how many pings the agents answered against
// how many were due. BENCH_MONITOR_AGENTS=0 leaves agents out.
import type { ChildProcess } from "node:child_process";
import { loadavg } from "node:os";
import { createDispatcherClients } from "../src/client/index.js";
import { loadConfig } from "../src/config.js";
import { randomBytes, createHash } from "node:crypto";
import { deriveAgentCredential } from "../src/agent/secrets.js";
import { openConnection } from "../src/db/connect.js";
import { createProvisioningClient } from "../src/db/clients.js";
import { newId } from "../src/db/ids.js";
import { withDatabase } from "../src/db/url.js";
import { createApiKeyForEmail } from "../src/iam/api-keys/keys.js";
import { ensureDevCerts } from "../src/km/dev-files.js";
import { generateKeyText } from "../src/km/keys.js";
import { loopbackAddress, startAgentFarm } from "../test/agent/fleet-farm.js";
import { FakeEc2 } from "../test/clouds/aws/fake-ec2.js";
import { scrape } from "../test/telemetry/metrics-scrape.js";
import { benchEnvironment, CORES, cpuSeconds, freePort, machineTicks, round, runDispatcher, say, servicePids, startDispatcher, stopProcess } from "./support.js";

const SERVERS = Number(process.env.BENCH_MONITOR_SERVERS ?? 10_000);
const WINDOW_S = Number(process.env.BENCH_MONITOR_WINDOW_S ?? 180);
const SYNC_INTERVAL_MS = Number(process.env.BENCH_MONITOR_SYNC_MS ?? 60_000);
const AGENTS = process.env.BENCH_MONITOR_AGENTS === "0" ? 0 : SERVERS;
const PING_MS = Number(process.env.BENCH_MONITOR_PING_MS ?? 30_000);
const ACCESS_KEY = "AKIAMONITORBENCH0001";
const SECRET = "monitorBenchSecretKey/K7MDENG/bPxRfiCYEX";

const fake = new FakeEc2({ accessKeyIds: [ACCESS_KEY], maxInstances: SERVERS + 10, pageSize: 1000 });
for (let i = 0; i < SERVERS; i++) {
  const id = `i-${i.toString(16).padStart(17, "0")}`;
  fake.instances.set(id, {
    instanceId: id,
    reservationId: `r-${i.toString(16).padStart(17, "0")}`,
    imageId: "ami-0123456789abcdef0",
    instanceType: "t3.micro",
    availabilityZone: "us-east-1a",
    state: "running",
    launchTime: new Date(Date.now() - 86_400_000),
    clientToken: "",
    tags: new Map([["Name", `fleet-${i}`]]),
    groupIds: [],
    keyName: null,
    userData: "",
    // A loopback address of its own, where the farm answers as the instance's agent.
    privateIp: loopbackAddress(i),
    publicIp: null,
  });
}
const endpoint = await fake.start();

const bench = await benchEnvironment("monitor");
const agentKey = randomBytes(32);
const farm = AGENTS > 0 ? await startAgentFarm(agentKey, { bind: "0.0.0.0" }) : undefined;
const kmPort = await freePort();
const metricsPort = await freePort();
const env: NodeJS.ProcessEnv = {
  ...bench.env,
  DISPATCHER_KM_PORT: String(kmPort),
  DISPATCHER_KM_URL: `127.0.0.1:${kmPort}`,
  DISPATCHER_KM_BIND: "127.0.0.1",
  DISPATCHER_KM_DATABASE_URL: withDatabase(bench.provisioningUrl, `bench_${bench.id}_cred`),
  DISPATCHER_ENCRYPTION_MASTER_KEYS: generateKeyText(1),
  DISPATCHER_PROVISIONING_ALLOW_INSECURE_ENDPOINTS: "true",
  DISPATCHER_DISCOVERY_SERVER_SYNC_INTERVAL_MS: String(SYNC_INTERVAL_MS),
  DISPATCHER_ANALYTICS_ACCRUAL_INTERVAL_MS: "60000",
  DISPATCHER_LOCAL_CLOUD_ENABLED: "false",
  DISPATCHER_AGENT_PLAINTEXT: "true",
  DISPATCHER_AGENT_CREDENTIAL_KEY: agentKey.toString("base64"),
  DISPATCHER_AGENT_PING_INTERVAL_MS: String(PING_MS),
  // A monitor sized for its fleet keeps a channel to each agent it pings (docs/operations.md).
  DISPATCHER_AGENT_MAX_CHANNELS: String(Math.max(1_000, AGENTS + 100)),
};
ensureDevCerts(env.DISPATCHER_DATA_DIR as string);
say(`bench:monitor on ${CORES} cores — ${SERVERS.toLocaleString("en")} servers, ${WINDOW_S} s at rest, a server sync every ${SYNC_INTERVAL_MS / 1000} s; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
say("migrating throwaway databases");
await runDispatcher(["migrate"], env);
const prisma = createProvisioningClient(bench.provisioningUrl, 2);
const { secret } = await createApiKeyForEmail(prisma, { email: "bench@local", role: "admin", kind: "service", name: "bench" });
const db = await openConnection(bench.provisioningUrl);
const services = servicePids(Number(new URL(loadConfig(process.env, "").mq.url).port || 4222));

const processes: Record<string, ChildProcess> = {};
const count = async (sql: string): Promise<number> => Number(((await db.query(sql)) as { n: bigint }[])[0]?.n ?? 0);

/** The monitor's loop lag now (seconds behind schedule, a gauge per loop) from its /metrics, in milliseconds. */
async function loopLagNow(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const sample of await scrape(metricsPort)) {
    const loop = sample.labels.loop;
    if (loop && /^dispatcher_monitor_loop_lag(_seconds)?$/.test(sample.name)) out[loop] = sample.value * 1000;
  }
  return out;
}

/**
 * An agent for each of the account's servers, at the address its instance reports, answering at the farm's port with
 * a credential derived from agentKey; first pings spread evenly over one interval, as a running fleet's would be.
 */
async function insertAgents(accountId: string): Promise<void> {
  const servers = (await db.query(`SELECT id, JSON_UNQUOTE(JSON_EXTRACT(addresses, '$.private[0]')) AS address FROM servers WHERE account_id = ? ORDER BY id`, [accountId])) as { id: string; address: string }[];
  const agents = new Map<string, string>();
  for (let i = 0; i < servers.length; i += 500) {
    const rows = servers.slice(i, i + 500).map((srv, j) => {
      const agentId = newId();
      agents.set(agentId, srv.id);
      const hash = createHash("sha256").update(deriveAgentCredential(agentKey, agentId)).digest("hex");
      const firstPingMs = Math.round(((i + j) * PING_MS) / servers.length);
      return [agentId, srv.id, hash, srv.address, farm?.port ?? 0, firstPingMs];
    });
    await db.batch(
      `INSERT INTO agents (id, server_id, credential_hash, version, hostname, address, port, state, next_ping_at, registered_at, updated_at)
       VALUES (?, ?, ?, 'farm', 'farm', ?, ?, 'CONNECTED', NOW(3) + INTERVAL ? * 1000 MICROSECOND, NOW(3), NOW(3))`,
      rows,
    );
    await db.query(`UPDATE servers SET agent_state = 'CONNECTED' WHERE id IN (?)`, [rows.map((r) => r[1])]);
  }
  farm?.add(agents);
}

try {
  processes.dispatcher = await startDispatcher("dispatcher,km", env, bench.port);
  processes.worker = await startDispatcher("worker", env, bench.port);
  processes.monitor = await startDispatcher("monitor", { ...env, DISPATCHER_METRICS_ENABLED: "true", DISPATCHER_METRICS_BIND: "127.0.0.1", DISPATCHER_METRICS_PORT: String(metricsPort) }, bench.port);
  const clients = createDispatcherClients({ address: `127.0.0.1:${bench.port}`, token: secret });
  const cloudId = (await clients.clouds.createCloud({ name: "bench-aws", driver: "aws", endpoint })).cloud?.id ?? "";
  const t0 = Date.now();
  const created = await clients.accounts.createAccount({ name: "fleet", cloudId, credentials: { type: "aws", fields: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET } } });
  const accountId = created.account?.id ?? "";
  say(`account ${accountId} connected; waiting for discovery to adopt ${SERVERS.toLocaleString("en")} servers`);
  for (let last = -1; ; ) {
    const n = await count(`SELECT COUNT(*) AS n FROM servers WHERE account_id = '${accountId}'`);
    if (n >= SERVERS) break;
    if (n !== last) say(`  ${n.toLocaleString("en")} adopted after ${round((Date.now() - t0) / 1000)} s`);
    last = n;
    if (Date.now() - t0 > 600_000) throw new Error(`only ${n} of ${SERVERS} servers adopted in 10 minutes`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  const adoptS = round((Date.now() - t0) / 1000);
  say(`  all adopted ${adoptS} s after the account was connected`);
  if (farm) {
    await insertAgents(accountId);
    say(`  ${AGENTS.toLocaleString("en")} agents registered, first pings spread over one interval (${PING_MS / 1000} s)`);
  }
  // Let the adoption's own work (its events, the first accruals) settle before the window, and every agent be pinged
  // once: the window is a running fleet's, whose monitor is already connected to its agents.
  await new Promise((r) => setTimeout(r, 5_000 + (farm ? PING_MS : 0)));

  const cpu = (): Record<string, number> => ({
    dispatcher: cpuSeconds(processes.dispatcher?.pid),
    monitor: cpuSeconds(processes.monitor?.pid),
    worker: cpuSeconds(processes.worker?.pid),
    mariadb: cpuSeconds(services.mariadb),
  });
  const pingsBefore = farm?.statusCalls ?? 0;
  const syncsBefore = await count(`SELECT COUNT(*) AS n FROM jobs WHERE kind = 'servers.sync' AND state = 'SUCCEEDED'`);
  const cpu0 = cpu();
  const ticks0 = machineTicks();
  say(`at rest for ${WINDOW_S} s`);
  // The loops' lag, sampled every 2 s: the most each one fell behind its schedule during the window.
  const lag: Record<string, number> = {};
  for (const end = Date.now() + WINDOW_S * 1000; Date.now() < end; ) {
    await new Promise((r) => setTimeout(r, 2_000));
    for (const [loop, ms] of Object.entries(await loopLagNow().catch(() => ({})))) lag[loop] = Math.max(lag[loop] ?? 0, round(ms, 0));
  }
  const cpu1 = cpu();
  const ticks1 = machineTicks();
  const syncs = await db.query(
    `SELECT TIMESTAMPDIFF(MICROSECOND, started_at, ended_at) AS us FROM jobs WHERE kind = 'servers.sync' AND state = 'SUCCEEDED' ORDER BY created_at DESC LIMIT 5`,
  ) as { us: bigint }[];
  const syncsInWindow = (await count(`SELECT COUNT(*) AS n FROM jobs WHERE kind = 'servers.sync' AND state = 'SUCCEEDED'`)) - syncsBefore;
  const syncMs = syncs.map((s) => round(Number(s.us) / 1000, 0));
  const minutes = WINDOW_S / 60;
  const pings = (farm?.statusCalls ?? 0) - pingsBefore;
  const pingsDue = Math.round((AGENTS * WINDOW_S * 1000) / PING_MS);
  const unreachable = AGENTS > 0 ? await count(`SELECT COUNT(*) AS n FROM agents WHERE state <> 'CONNECTED'`) : 0;
  const perThousandPerMinute = Object.fromEntries(Object.entries(cpu1).map(([k, v]) => [k, round(((v - (cpu0[k] ?? 0)) * 1000) / minutes / (SERVERS / 1000), 1)]));
  const pctOfCore = Object.fromEntries(Object.entries(cpu1).map(([k, v]) => [k, round(((v - (cpu0[k] ?? 0)) * 100) / WINDOW_S, 1)]));
  const busy = round((100 * (ticks1.busy - ticks0.busy)) / Math.max(1, ticks1.total - ticks0.total));
  say(`CPU per 1,000 servers per minute (ms): ${Object.entries(perThousandPerMinute).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  say(`share of one core (idle loops included): ${Object.entries(pctOfCore).map(([k, v]) => `${k} ${v} %`).join(", ")}`);
  say(`server syncs in the window: ${syncsInWindow}; the last ones took ${syncMs.join(", ")} ms`);
  say(`monitor loops' largest lag behind schedule: ${Object.entries(lag).map(([k, v]) => `${k} ${v} ms`).join(", ") || "no series"}`);
  if (farm) say(`agent pings answered in the window: ${pings.toLocaleString("en")} of ${pingsDue.toLocaleString("en")} due (${round((100 * pings) / Math.max(1, pingsDue))} %); agents not CONNECTED at the end: ${unreachable}`);
  say(`machine ${busy} % busy during the window`);
  clients.close();
  process.stdout.write(
    `${JSON.stringify({
      bench: "monitor",
      cores: CORES,
      load_avg_1m: round(loadavg()[0] ?? 0, 2),
      servers: SERVERS,
      window_s: WINDOW_S,
      sync_interval_s: SYNC_INTERVAL_MS / 1000,
      adopt_s: adoptS,
      syncs_in_window: syncsInWindow,
      agents: AGENTS,
      ping_interval_s: PING_MS / 1000,
      pings_answered: pings,
      pings_due: pingsDue,
      agents_not_connected: unreachable,
      sync_ms: syncMs,
      cpu_ms_per_1000_servers_per_min: perThousandPerMinute,
      cpu_pct_of_core: pctOfCore,
      loop_lag_max_ms: lag,
      machine_busy_pct: busy,
    })}\n`,
  );
} finally {
  await Promise.all(Object.values(processes).map((p) => stopProcess(p)));
  await db.end();
  await prisma.$disconnect();
  await fake.stop();
  await farm?.stop();
  await bench.drop();
  const conn = await openConnection(bench.provisioningUrl, false);
  await conn.query(`DROP DATABASE IF EXISTS \`bench_${bench.id}_cred\``).finally(() => conn.end());
}
