// npm run bench:limits — one principal floods a server with per-principal limits while a second makes its ordinary
// calls; server, flooder and measured caller are three processes, so the flood's own client work never runs in the
// measured caller's process. Prints how many of the flood's calls were refused RESOURCE_EXHAUSTED (with RetryInfo),
// the measured caller's p99 in a quiet run and during the flood, their ratio (the promise: within 1.5×) and the load
// average; the last line is the result as JSON.
// Two floods: "hostile" ignores RetryInfo and calls again at once; "polite" waits the RetryInfo delay it was given.
// Options (env): BENCH_SECONDS (per phase, default 10), BENCH_FLOOD_IN_FLIGHT (64), BENCH_RATE (each principal's
// limit, 100/s), BENCH_FLOOD_MODES ("hostile,polite"), BENCH_FLOOD_NICE (0: the flooder process's niceness; on a
// machine where server and clients share the cores, a positive value stands for a flooder whose own client work runs
// elsewhere, as in production, while its calls still reach the server), BENCH_HOLD_MS (server.rateLimitHoldMs, default
// the configuration's; 0 answers every refusal at once), BENCH_SERVER_CPU_PROF (a directory: the server process writes
// a V8 CPU profile there on exit).
// Under other work on the machine latency is noise; the server's CPU per flood call (from /proc) is the steady figure.
import { spawn, type ChildProcess } from "node:child_process";
import { loadavg, setPriority } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { CORES, cpuSeconds, machineTicks, percentile, round, say } from "./support.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const FLOOD = Number(process.env.BENCH_FLOOD_IN_FLIGHT ?? 64);
const RATE = Number(process.env.BENCH_RATE ?? 100);
const MODES = (process.env.BENCH_FLOOD_MODES ?? "hostile,polite").split(",").filter((m): m is Mode => m === "hostile" || m === "polite");
// The measured caller stays under its own limit: 2 loops, each call 20 ms after the last answer (< 100/s).
const QUIET_IN_FLIGHT = 2;
const FLOOD_NICE = Number(process.env.BENCH_FLOOD_NICE ?? 0);
const QUIET_PAUSE_MS = 20;
const HOLD_MS = process.env.BENCH_HOLD_MS === undefined ? undefined : Number(process.env.BENCH_HOLD_MS);
const CPU_PROF = process.env.BENCH_SERVER_CPU_PROF;
const TARGET_RATIO = 1.5;
const METHOD = "/dispatcher.v1.SystemService/WhoAmI";
type Mode = "hostile" | "polite";

const load = (): string => loadavg().map((l) => l.toFixed(2)).join(" ");
const passthrough = (b: Buffer): Buffer => b;

/** The server process: per-principal limits at RATE, fixed tokens "flooder" and "steady"; prints its port. */
async function serve(): Promise<void> {
  const [{ loadConfig }, { createLogger }, { createRpcServer }, { createSystemService }, { systemHandlers }] = await Promise.all([
    import("../src/config.js"),
    import("../src/log.js"),
    import("../src/rpc/server.js"),
    import("../src/system/service.js"),
    import("../src/system/handlers.js"),
  ]);
  const base = loadConfig({}, "");
  const config = { ...base, server: { ...base.server, bind: "127.0.0.1", port: 0, reflection: false, rateLimitPerSecond: RATE, rateLimitBurst: RATE, rateLimitHoldMs: HOLD_MS ?? base.server.rateLimitHoldMs } };
  const principals = { flooder: { id: "flooder", kind: "user" as const, roles: ["reader"], displayName: "flooder" }, steady: { id: "steady", kind: "user" as const, roles: ["reader"], displayName: "steady" } };
  const server = createRpcServer({ config, log: createLogger({ level: "error" }), authenticate: async (token) => principals[token as keyof typeof principals] ?? null, services: [systemHandlers(createSystemService({ roles: ["dispatcher"] }))] });
  process.stdout.write(`${await server.start()}\n`);
  process.on("SIGTERM", () => void server.stop(1_000).then(() => process.exit(0)));
}

/** Runs `inFlight` loops of calls until `until`; latencies of served calls, refusals and how many had RetryInfo. */
async function drive(port: number, token: string, inFlight: number, until: number, options: { pauseMs?: number; honourRetryInfo?: boolean } = {}) {
  const [{ decodeStatusDetails }] = await Promise.all([import("../src/rpc/status.js")]);
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  const once = (): Promise<ServiceError | null> => new Promise((resolve) => client.makeUnaryRequest(METHOD, passthrough, passthrough, Buffer.alloc(0), md, { deadline: Date.now() + 10_000 }, (err) => resolve(err)));
  const latencies: number[] = [];
  let refused = 0;
  let withRetryInfo = 0;
  let other = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (Date.now() < until) {
        const t = performance.now();
        const err = await once();
        let wait = options.pauseMs ?? 0;
        if (!err) latencies.push(performance.now() - t);
        else if (err.code === status.RESOURCE_EXHAUSTED) {
          refused++;
          const delay = decodeStatusDetails(err.metadata)?.retryDelayMs ?? 0;
          if (delay > 0) withRetryInfo++;
          if (options.honourRetryInfo) wait = Math.max(wait, delay);
        } else other++;
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    }),
  );
  client.close();
  return { latencies, refused, withRetryInfo, other };
}

/**
 * The flooder process: loads and connects, says "ready", waits for "go <ms>" on stdin, floods that long, then prints
 * its counts as JSON (so its start-up costs nothing to the measured phases).
 */
async function flood(port: number, mode: Mode): Promise<void> {
  await drive(port, "flooder", 1, Date.now() + 200);
  process.stdout.write("ready\n");
  const go = await new Promise<string>((resolve) => createInterface({ input: process.stdin }).once("line", resolve));
  const r = await drive(port, "flooder", FLOOD, Date.now() + Number(go.split(" ")[1]), { honourRetryInfo: mode === "polite" });
  process.stdout.write(`${JSON.stringify({ calls: r.latencies.length + r.refused + r.other, served: r.latencies.length, refused: r.refused, withRetryInfo: r.withRetryInfo, other: r.other })}\n`);
}

function child(args: string[], nodeFlags: string[] = []): { proc: ChildProcess; nextLine: () => Promise<string> } {
  const proc = spawn(process.execPath, [...nodeFlags, "--import", "tsx", fileURLToPath(import.meta.url), ...args], { stdio: ["pipe", "pipe", "inherit"] });
  const queue: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on("line", (line) => (waiting.shift() ?? ((l: string) => void queue.push(l)))(line));
  const exited = new Promise<never>((_, reject) => proc.once("exit", (code) => reject(new Error(`bench child ${args[0]} exited with ${code}`))));
  exited.catch(() => undefined);
  const nextLine = (): Promise<string> => Promise.race([queue.length > 0 ? Promise.resolve(queue.shift() as string) : new Promise<string>((resolve) => waiting.push(resolve)), exited]);
  return { proc, nextLine };
}

const p99 = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 99);

/**
 * Runs `phase` and says how busy the whole machine was meanwhile (0–1: above ~0.7 latency is queueing for a core) and
 * how many CPU seconds the server process spent.
 */
async function measured<T>(serverPid: number | undefined, phase: () => Promise<T>): Promise<{ result: T; busy: number; serverCpu: number; seconds: number }> {
  const a = machineTicks();
  const cpu = cpuSeconds(serverPid);
  const t = performance.now();
  const result = await phase();
  const b = machineTicks();
  return { result, busy: round((b.busy - a.busy) / Math.max(1, b.total - a.total), 2), serverCpu: cpuSeconds(serverPid) - cpu, seconds: (performance.now() - t) / 1000 };
}

async function main(): Promise<void> {
  const server = child(["serve"], CPU_PROF ? ["--cpu-prof", "--cpu-prof-dir", CPU_PROF] : []);
  const port = Number(await server.nextLine());
  const flooders = MODES.map((mode) => ({ mode, ...child(["flood", String(port), mode]) }));
  for (const f of flooders) if (FLOOD_NICE !== 0 && f.proc.pid) setPriority(f.proc.pid, FLOOD_NICE);
  for (const f of flooders) await f.nextLine();
  const loadBefore = load();
  say(`bench:limits on ${CORES} cores — server, flooder and measured caller in three processes; each principal limited to ${RATE}/s; flooder ${FLOOD} in flight (nice ${FLOOD_NICE}), refusals held up to ${HOLD_MS ?? "the default"} ms, measured caller ${QUIET_IN_FLIGHT} in flight ${QUIET_PAUSE_MS} ms apart; ${SECONDS} s per phase; load average ${loadBefore}`);
  try {
    await drive(port, "steady", QUIET_IN_FLIGHT, Date.now() + 1_000, { pauseMs: QUIET_PAUSE_MS });
    const { result: quiet, busy: quietBusy, serverCpu: quietCpu, seconds: quietSeconds } = await measured(server.proc.pid, () => drive(port, "steady", QUIET_IN_FLIGHT, Date.now() + SECONDS * 1000, { pauseMs: QUIET_PAUSE_MS }));
    const quietP99 = p99(quiet.latencies);
    const quietCpuRate = quietCpu / quietSeconds;
    say(`quiet: ${quiet.latencies.length} calls, p99 ${round(quietP99, 2)} ms; server ${Math.round(quietCpuRate * 100)} % of a core; machine ${Math.round(quietBusy * 100)} % busy`);
    const verdicts: string[] = [];
    const floods: Record<string, unknown> = {};
    for (const { mode, proc, nextLine } of flooders) {
      const rampMs = 500;
      const floodStart = { cpu: cpuSeconds(server.proc.pid), at: performance.now() };
      proc.stdin?.write(`go ${rampMs + SECONDS * 1000}\n`);
      await new Promise((r) => setTimeout(r, rampMs));
      const { result: loaded, busy, serverCpu, seconds } = await measured(server.proc.pid, () => drive(port, "steady", QUIET_IN_FLIGHT, Date.now() + SECONDS * 1000, { pauseMs: QUIET_PAUSE_MS }));
      const f = JSON.parse(await nextLine()) as { calls: number; served: number; refused: number; withRetryInfo: number; other: number };
      const floodCpu = cpuSeconds(server.proc.pid) - floodStart.cpu;
      const floodSeconds = (performance.now() - floodStart.at) / 1000;
      const loadedP99 = p99(loaded.latencies);
      const ratio = round(loadedP99 / quietP99, 2);
      // The flood's share of the server's CPU, per flood call: what the server spent from "go" to the flood's last
      // answer beyond the quiet phase's rate (the measured caller's own calls).
      const floodCpuUs = round((Math.max(0, floodCpu - quietCpuRate * floodSeconds) / Math.max(1, f.calls)) * 1e6, 1);
      const floodCoreShare = round(Math.max(0, floodCpu / floodSeconds - quietCpuRate), 2);
      say(`${mode} flood: ${f.calls} calls (${round(f.calls / SECONDS, 0)}/s), ${f.served} served, ${f.refused} RESOURCE_EXHAUSTED (${f.withRetryInfo} with RetryInfo); server ${Math.round((serverCpu / seconds) * 100)} % of a core (the flood's share ${Math.round(floodCoreShare * 100)} %, ${floodCpuUs} µs per flood call); measured caller: ${loaded.latencies.length} calls, ${loaded.refused} refused, p99 ${round(loadedP99, 2)} ms (${ratio}× quiet); machine ${Math.round(busy * 100)} % busy; load average ${load()}`);
      verdicts.push(`${mode} ${ratio}× ${ratio <= TARGET_RATIO && loaded.refused === 0 && f.withRetryInfo === f.refused ? "holds" : "does not hold"}`);
      floods[mode] = { floodCalls: f.calls, floodServed: f.served, floodRefused: f.refused, floodRefusedWithRetryInfo: f.withRetryInfo, steadyCalls: loaded.latencies.length, steadyRefused: loaded.refused, steadyP99Ms: round(loadedP99, 2), ratio, machineBusy: busy, serverCoreShare: round(serverCpu / seconds, 2), floodCoreShare, serverCpuPerFloodCallUs: floodCpuUs };
    }
    say(`target: measured caller's p99 within ${TARGET_RATIO}× of quiet, never refused, every flood refusal with RetryInfo — ${verdicts.join("; ")}`);
    console.log(JSON.stringify({ cores: CORES, holdMs: HOLD_MS ?? null, seconds: SECONDS, rate: RATE, floodInFlight: FLOOD, floodNice: FLOOD_NICE, loadAverage: loadBefore, steadyQuietCalls: quiet.latencies.length, steadyP99QuietMs: round(quietP99, 2), quietMachineBusy: quietBusy, quietServerCoreShare: round(quietCpuRate, 2), floods, loadAverageAfter: load() }));
  } finally {
    for (const f of flooders) f.proc.kill("SIGTERM");
    server.proc.kill("SIGTERM");
  }
}

const [role, ...rest] = process.argv.slice(2);
if (role === "serve") await serve();
else if (role === "flood") await flood(Number(rest[0]), rest[1] === "polite" ? "polite" : "hostile");
else await main();
