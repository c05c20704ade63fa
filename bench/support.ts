// Shared by the benchmark scripts: percentiles, free ports, throwaway databases and streams, and dispatcher processes.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/config.js";
import { openConnection } from "../src/db/connect.js";
import { withDatabase } from "../src/db/url.js";
import { checkHealth } from "../src/client/index.js";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { freePort } from "../test/support/net.js";

export { freePort };

export const CORES = cpus().length;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

export function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Names and URLs unique to one benchmark run; drop() removes the databases. */
export interface BenchEnv {
  id: string;
  env: NodeJS.ProcessEnv;
  provisioningUrl: string;
  port: number;
  drop(): Promise<void>;
}

export async function benchEnvironment(label: string): Promise<BenchEnv> {
  const id = `${label}_${randomBytes(3).toString("hex")}`;
  const base = loadConfig(process.env, "");
  const provisioningUrl = withDatabase(base.provisioning.url, `bench_${id}_prov`);
  const analyticsUrl = withDatabase(base.analytics.url, `bench_${id}_anl`);
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DISPATCHER_PROVISIONING_URL: provisioningUrl,
    DISPATCHER_ANALYTICS_URL: analyticsUrl,
    DISPATCHER_SERVER_PORT: String(port),
    DISPATCHER_BRIDGE_PORT: String(await freePort()),
    DISPATCHER_CONSOLE_PORT: String(await freePort()),
    DISPATCHER_KM_PORT: String(await freePort()),
    DISPATCHER_MQ_JOBS_STREAM: `BENCH_${id}`,
    DISPATCHER_MQ_SUBJECT_PREFIX: `bench_${id}`,
    DISPATCHER_MQ_WORKER_DURABLE: `bench_${id}`,
    DISPATCHER_LOGGING_LEVEL: "warn",
    DISPATCHER_LOGGING_DIR: "-",
    // Metrics off unless a bench turns them on for its processes, each on a port of its own (defaults would collide).
    DISPATCHER_METRICS_ENABLED: "false",
    DISPATCHER_DATA_DIR: mkdtempSync(join(tmpdir(), "dispatcher-bench-")),
  };
  return {
    id,
    env,
    provisioningUrl,
    port,
    async drop() {
      const nc = await connect({ servers: base.mq.url });
      await (await jetstreamManager(nc)).streams.delete(`BENCH_${id}`).catch(() => false);
      await nc.close();
      const conn = await openConnection(provisioningUrl, false);
      try {
        await conn.query(`DROP DATABASE IF EXISTS \`bench_${id}_prov\``);
        await conn.query(`DROP DATABASE IF EXISTS \`bench_${id}_anl\``);
      } finally {
        await conn.end();
      }
    },
  };
}

/** Runs `dispatcher <args>` and resolves when it exits 0 (for migrate) — or rejects with its stderr. */
export function runDispatcher(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/dispatcher.js", ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`dispatcher ${args.join(" ")} exited ${code}: ${err}`))));
  });
}

/**
 * Starts `dispatcher serve --role <roles>` and waits until it serves (or, without the dispatcher role, a moment).
 * With BENCH_PROFILE_DIR set, the process writes a V8 CPU profile there when it exits (`node --cpu-prof`);
 * BENCH_NODE_FLAGS adds node flags.
 */
export async function startDispatcher(roles: string, env: NodeJS.ProcessEnv, port: number): Promise<ChildProcess> {
  const profileDir = process.env.BENCH_PROFILE_DIR;
  const profile = profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir, "--cpu-prof-name", `${roles.replace(/,/g, "+")}.${Date.now()}.cpuprofile`] : [];
  // BENCH_NODE_FLAGS: more node flags for the server processes (e.g. --trace-gc, which NODE_OPTIONS refuses).
  profile.push(...(process.env.BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean));
  // The service log (stdout, level DISPATCHER_LOGGING_LEVEL) goes to a file in the run's data directory.
  const logFile = join(env.DISPATCHER_DATA_DIR ?? tmpdir(), `${roles.replace(/,/g, "+")}.log`);
  const out = openSync(logFile, "a");
  const child = spawn(process.execPath, [...profile, "bin/dispatcher.js", "serve", "--role", roles], { env, stdio: ["ignore", out, "inherit"] });
  closeSync(out);
  say(`  ${roles}: pid ${child.pid}, log ${logFile}`);
  if (!roles.split(",").includes("dispatcher")) {
    await new Promise((r) => setTimeout(r, 2500));
    return child;
  }
  // Up to three minutes: a start on a machine busy with other work can take that long.
  for (const until = Date.now() + 180_000; Date.now() < until; ) {
    if ((await checkHealth(`127.0.0.1:${port}`, "", 1000).catch(() => "DOWN")) === "SERVING") return child;
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill("SIGKILL");
  throw new Error(`dispatcher (${roles}) did not start`);
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 20_000).unref();
  });
}

/** CPU seconds (user + system) a process has used so far, from /proc; 0 when it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15 (clock ticks).
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

const CLOCK_TICKS = 100;

/**
 * Read and write system calls a process has made so far, every thread's (/proc/<pid>/io: syscr, syscw); zeros when
 * unreadable. Each socket write is one, so they count what a job costs in wake-ups and packets, whatever else runs.
 */
export function syscalls(pid: number | undefined): { reads: number; writes: number } {
  if (!pid) return { reads: 0, writes: 0 };
  try {
    const io = readFileSync(`/proc/${pid}/io`, "utf8");
    const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, "m").exec(io)?.[1] ?? 0);
    return { reads: field("syscr"), writes: field("syscw") };
  } catch {
    return { reads: 0, writes: 0 };
  }
}

/**
 * The shared MariaDB and NATS servers' process ids (not private ones that tests start with their own data directory
 * or port), found by their command lines.
 */
export function servicePids(natsPort: number): { mariadb?: number; nats?: number } {
  const out: { mariadb?: number; nats?: number } = {};
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ");
    } catch {
      continue;
    }
    if (/\bmariadbd\b/.test(cmd) && !cmd.includes("--datadir") && out.mariadb === undefined) out.mariadb = Number(name);
    if (/\bnats-server\b/.test(cmd) && new RegExp(`-p ${natsPort}\\b`).test(cmd) && out.nats === undefined) out.nats = Number(name);
  }
  return out;
}

/** Busy and total CPU ticks of the whole machine so far (every process, the kernel's interrupt work included). */
export function machineTicks(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
  return { busy, total: busy + (idle ?? 0) + (iowait ?? 0) };
}
