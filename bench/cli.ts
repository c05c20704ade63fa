// npm run bench:cli — what the command line costs an operator: wall time, CPU and peak memory of `dispatcher --help`
// and `dispatcher users ls` (median of BENCH_RUNS, default 3), and of `dispatcher start`: the time from process start
// to SERVING and its resident memory once idle. Measures this checkout's bin/dispatcher.js (the compiled dist/:
// `npm run build` first) and, with `-- --before <dir>`, another install's in the same run (e.g. an export of an older
// commit sharing this node_modules), one after the other. Prints a table and one JSON line.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { checkHealth } from "../src/client/index.js";
import { withDatabase } from "../src/db/url.js";
import { openConnection } from "../src/db/connect.js";
import { benchEnvironment, CORES, round, say, stopProcess, type BenchEnv } from "./support.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 5_000);
const beforeFlag = process.argv.indexOf("--before");
const beforeDir = beforeFlag > 0 ? process.argv[beforeFlag + 1] : undefined;

interface Run {
  wallS: number;
  cpuS: number;
  maxRssMiB: number;
  code: number;
}

interface FormResult {
  form: string;
  help: Run;
  usersLs: Run;
  startToServingS: number;
  idleRssMiB: number;
}

/** Runs `node <bin> <args>` under /usr/bin/time: wall seconds, user + system CPU seconds, peak RSS. */
function timed(bin: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn("/usr/bin/time", ["-f", "TIME %e %U %S %M", process.execPath, bin, ...args], { cwd: join(bin, "..", ".."), env, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => {
      const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(err);
      if (!m) return reject(new Error(`no timing from /usr/bin/time: ${err}`));
      resolvePromise({ wallS: Number(m[1]), cpuS: round(Number(m[2]) + Number(m[3]), 2), maxRssMiB: round(Number(m[4]) / 1024), code: code ?? -1 });
    });
  });
}

const median = (runs: Run[]): Run => [...runs].sort((a, b) => a.wallS - b.wallS)[Math.floor(runs.length / 2)] as Run;

async function medianOf(bin: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  const runs: Run[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await timed(bin, args, env));
  const failed = runs.find((r) => r.code !== 0);
  if (failed) throw new Error(`dispatcher ${args.join(" ")} exited ${failed.code}`);
  return median(runs);
}

function rssMiB(pid: number | undefined): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return round(Number(m?.[1] ?? 0) / 1024);
}

/** `dispatcher start` on this run's databases, ports and stream: seconds until SERVING, and the admin key it prints. */
async function start(bin: string, bench: BenchEnv, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; seconds: number; token: string }> {
  const started = performance.now();
  const child = spawn(process.execPath, [bin, "start"], { cwd: join(bin, "..", ".."), env, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  for (;;) {
    if (child.exitCode !== null) throw new Error(`dispatcher start exited ${child.exitCode}: ${err}`);
    if ((await checkHealth(`127.0.0.1:${bench.port}`, "", 1000).catch(() => "DOWN")) === "SERVING") break;
    if (performance.now() - started > 120_000) throw new Error(`dispatcher start did not serve in 120 s: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const seconds = round((performance.now() - started) / 1000, 2);
  const token = /DISPATCHER_CLIENT_TOKEN=(\S+)/.exec(err)?.[1];
  if (!token) throw new Error(`dispatcher start printed no admin key: ${err}`);
  return { child, seconds, token };
}

async function measure(form: string, root: string): Promise<FormResult> {
  const bin = join(root, "bin", "dispatcher.js");
  const bench = await benchEnvironment("cli");
  const credentialsUrl = withDatabase(bench.provisioningUrl, `bench_${bench.id}_cred`);
  const kmPort = bench.env.DISPATCHER_KM_PORT as string;
  const env: NodeJS.ProcessEnv = {
    ...bench.env,
    DISPATCHER_KM_DATABASE_URL: credentialsUrl,
    DISPATCHER_KM_URL: `127.0.0.1:${kmPort}`,
    DISPATCHER_CLIENT_ADDRESS: `127.0.0.1:${bench.port}`,
    DISPATCHER_SERVER_BIND: "127.0.0.1",
    DISPATCHER_BRIDGE_BIND: "127.0.0.1",
    DISPATCHER_CONSOLE_BIND: "127.0.0.1",
  };
  delete env.DISPATCHER_FROM_SOURCE;
  let child: ChildProcess | undefined;
  try {
    say(`${form}: ${bin}`);
    const s = await start(bin, bench, env);
    child = s.child;
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const idleRssMiB = rssMiB(child.pid);
    const help = await medianOf(bin, ["--help"], env);
    const usersLs = await medianOf(bin, ["users", "ls"], { ...env, DISPATCHER_CLIENT_TOKEN: s.token });
    return { form, help, usersLs, startToServingS: s.seconds, idleRssMiB };
  } finally {
    if (child) await stopProcess(child);
    // KM's database first: bench.drop() removes the one this connection opens.
    const conn = await openConnection(bench.provisioningUrl, false);
    await conn.query(`DROP DATABASE IF EXISTS \`bench_${bench.id}_cred\``).finally(() => conn.end());
    await bench.drop();
    rmSync(bench.env.DISPATCHER_DATA_DIR as string, { recursive: true, force: true });
  }
}

const here = resolve(import.meta.dirname, "..");
if (!existsSync(join(here, "dist", "cli.js"))) throw new Error("no dist/: run `npm run build` first");
if (beforeDir && !existsSync(join(beforeDir, "bin", "dispatcher.js"))) throw new Error(`${beforeDir}: no bin/dispatcher.js`);
say(`bench:cli on ${CORES} cores — median of ${RUNS}; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
const results: FormResult[] = [];
if (beforeDir) results.push(await measure("before", resolve(beforeDir)));
results.push(await measure("after", here));

const row = (r: FormResult): string =>
  [r.form.padEnd(7), `${r.help.wallS.toFixed(2)} s (cpu ${r.help.cpuS.toFixed(2)} s, ${r.help.maxRssMiB} MiB)`.padEnd(34), `${r.usersLs.wallS.toFixed(2)} s (cpu ${r.usersLs.cpuS.toFixed(2)} s, ${r.usersLs.maxRssMiB} MiB)`.padEnd(34), `${r.startToServingS.toFixed(2)} s`.padEnd(10), `${r.idleRssMiB} MiB`].join(" ");
process.stdout.write(`${["form".padEnd(7), "--help".padEnd(34), "users ls".padEnd(34), "SERVING".padEnd(10), "idle RSS"].join(" ")}\n`);
for (const r of results) process.stdout.write(`${row(r)}\n`);
say(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
process.stdout.write(`${JSON.stringify({ bench: "cli", cores: CORES, runs: RUNS, loadAverage: loadavg().map((l) => round(l, 2)), results })}\n`);
