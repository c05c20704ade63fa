// Process-level test support: real `dispatcher` processes (bin/dispatcher.js) with an environment of their own —
// fresh database names, a JetStream stream and subject prefix of this run, free ports, a temporary data and log
// directory — whose output is captured and which a test stops with a signal or kills with SIGKILL; plus a private
// nats-server and API keys in the test database. For acceptance, kill -9 and restart tests.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { inject } from "vitest";
import { checkHealth, type DispatcherClients } from "../../src/client/index.js";
import { JobState, type Job } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { createProvisioningClient } from "../../src/db/clients.js";
import { DATABASES } from "../../src/db/databases.js";
import { migrate } from "../../src/db/migrate.js";
import { createApiKeyForEmail } from "../../src/iam/api-keys/keys.js";
import { sharedNatsUrl, startPrivateNats, type PrivateNats } from "../mq/support.js";
import { dropDatabases, newTestDatabaseName, testDatabaseUrl } from "./db.js";
import { freePort, freePorts } from "./net.js";
import { until } from "./poll.js";

export { freePort, startPrivateNats, type PrivateNats };

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const BIN = join(ROOT, "bin", "dispatcher.js");

export interface TestEnvOptions {
  /** Names the databases, stream and temporary directory (letters and digits). */
  label: string;
  /** NATS server (default: the shared one of the configuration), e.g. a PrivateNats's url. */
  natsUrl?: string;
  /**
   * Create and migrate every database in DATABASES now (KM's credentials database too), for `serve` without
   * --migrate or for createTestApiKey before the first start. Default false: `start` and `migrate` create the
   * dispatcher's databases, and the KM role its own.
   */
  migrate?: boolean;
  /** Set DISPATCHER_TELEMETRY_FILE to a file in the temporary directory (spans as JSON lines). */
  telemetryFile?: boolean;
  /** Serve metrics on a free port (ports.metrics); off otherwise, so processes side by side never contend for one. */
  metrics?: boolean;
  /** More variables; they win over everything above. */
  env?: Record<string, string>;
}

/** Everything one test dispatcher (or several sharing its databases) runs with. */
export interface TestEnv {
  /** The complete environment of a child: the caller's without DISPATCHER_* and OTEL_*, plus this test's. */
  env: NodeJS.ProcessEnv;
  ports: { server: number; bridge: number; km: number; console: number; metrics: number };
  /** 127.0.0.1:<server port> */
  address: string;
  urls: { provisioning: string; analytics: string; credentials: string };
  natsUrl: string;
  stream: string;
  subjectPrefix: string;
  /** Temporary data directory (DISPATCHER_DATA_DIR); the request log goes to logDir inside it. */
  dir: string;
  logDir: string;
  telemetryFile?: string;
  /** This environment with some variables replaced (undefined removes one). */
  with(extra: Record<string, string | undefined>): NodeJS.ProcessEnv;
  /** Drops the databases, deletes the stream, removes the directory. Stop the processes first. */
  cleanup(): Promise<void>;
}

/**
 * The caller's environment without any DISPATCHER_* or OTEL_* variable, so the developer's settings never leak in;
 * bin/ runs the compiled dist/ when it is the build of this tree and src/ through tsx otherwise
 * (DISPATCHER_FROM_SOURCE, decided once per run by test/global-setup.ts), so a test never runs code older than what
 * it tests; metrics are off unless `extra` turns them on (their default ports would collide between processes side by
 * side).
 */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { DISPATCHER_METRICS_ENABLED: "false" };
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("DISPATCHER_") && !k.startsWith("OTEL_")) env[k] = v;
  env.DISPATCHER_FROM_SOURCE = inject("fromSource") ? "1" : "0";
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export async function createTestEnv(options: TestEnvOptions): Promise<TestEnv> {
  const label = options.label.replace(/[^A-Za-z0-9]/g, "").slice(0, 20) || "t";
  const rand = randomBytes(3).toString("hex");
  const runId = inject("runId");
  const [server, bridge, km, consolePort, metricsPort] = (await freePorts(5)) as [number, number, number, number, number];
  const dir = mkdtempSync(join(tmpdir(), `dispatcher-${label}-`));
  const logDir = join(dir, "logs");
  mkdirSync(logDir);
  const urls = {
    provisioning: testDatabaseUrl(newTestDatabaseName(label, "prov")),
    analytics: testDatabaseUrl(newTestDatabaseName(label, "anl")),
    credentials: testDatabaseUrl(newTestDatabaseName(label, "cred")),
  };
  const natsUrl = options.natsUrl ?? sharedNatsUrl();
  // global-setup deletes leftover streams whose name contains the run id; subjects must not overlap another stream's.
  const stream = `T_${runId}_${label}_${rand}`;
  const subjectPrefix = `t_${runId}_${label}_${rand}`;
  const telemetryFile = options.telemetryFile ? join(dir, "spans.jsonl") : undefined;
  const vars: Record<string, string> = {
    DISPATCHER_MODE: "development",
    DISPATCHER_DATA_DIR: dir,
    DISPATCHER_LOGGING_DIR: logDir,
    DISPATCHER_SERVER_BIND: "127.0.0.1",
    DISPATCHER_SERVER_PORT: String(server),
    DISPATCHER_BRIDGE_BIND: "127.0.0.1",
    DISPATCHER_BRIDGE_PORT: String(bridge),
    DISPATCHER_CONSOLE_BIND: "127.0.0.1",
    DISPATCHER_CONSOLE_PORT: String(consolePort),
    DISPATCHER_KM_PORT: String(km),
    DISPATCHER_KM_URL: `127.0.0.1:${km}`,
    DISPATCHER_CLIENT_ADDRESS: `127.0.0.1:${server}`,
    DISPATCHER_PROVISIONING_URL: urls.provisioning,
    DISPATCHER_ANALYTICS_URL: urls.analytics,
    DISPATCHER_KM_DATABASE_URL: urls.credentials,
    DISPATCHER_MQ_URL: natsUrl,
    DISPATCHER_MQ_JOBS_STREAM: stream,
    DISPATCHER_MQ_SUBJECT_PREFIX: subjectPrefix,
    ...(telemetryFile ? { DISPATCHER_TELEMETRY_FILE: telemetryFile } : {}),
    ...(options.metrics ? { DISPATCHER_METRICS_ENABLED: "true", DISPATCHER_METRICS_BIND: "127.0.0.1", DISPATCHER_METRICS_PORT: String(metricsPort) } : {}),
    ...options.env,
  };
  if (options.migrate) {
    for (const db of DATABASES) await migrate(urls[db.name], db.migrationsDir);
  }
  const env = cleanEnv(vars);
  return {
    env,
    ports: { server, bridge, km, console: consolePort, metrics: metricsPort },
    address: `127.0.0.1:${server}`,
    urls,
    natsUrl,
    stream,
    subjectPrefix,
    dir,
    logDir,
    ...(telemetryFile ? { telemetryFile } : {}),
    with: (extra) => {
      const out = { ...env };
      for (const [k, v] of Object.entries(extra)) {
        if (v === undefined) delete out[k];
        else out[k] = v;
      }
      return out;
    },
    async cleanup() {
      await Promise.allSettled([dropDatabases(Object.values(urls)), deleteStreamAt(natsUrl, stream)]);
      // A local-cloud guest still exiting may write into the directory while it is removed (ENOTEMPTY): retry.
      rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    },
  };
}

async function deleteStreamAt(natsUrl: string, stream: string): Promise<void> {
  const nc = await connect({ servers: natsUrl, timeout: 2_000 });
  try {
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => false);
  } finally {
    await nc.close();
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Finished extends Exit {
  stdout: string;
  stderr: string;
}

const live = new Set<DispatcherProcess>();

/** One `node bin/dispatcher.js …` child with its output captured. */
export class DispatcherProcess {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly exited: Promise<Exit>;
  private exit: Exit | undefined;

  /** `bin`: another install's bin/dispatcher.js (run from its own directory). */
  constructor(readonly args: string[], env: NodeJS.ProcessEnv, bin = BIN) {
    this.child = spawn(process.execPath, [bin, ...args], { cwd: join(bin, "..", ".."), env, stdio: ["ignore", "pipe", "pipe"] });
    live.add(this);
    this.child.stdout?.on("data", (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr?.on("data", (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve, reject) => {
      this.child.once("error", reject);
      // "close", not "exit": the output streams are complete by then.
      this.child.once("close", (code, signal) => {
        live.delete(this);
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** stdout and stderr so far, for assertion messages. */
  output(): string {
    return `--- stdout\n${this.stdout}\n--- stderr\n${this.stderr}`;
  }

  /** The service log: stdout's JSON lines, parsed (other lines skipped). */
  logLines(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.stdout.split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line cut by a kill -9
      }
    }
    return out;
  }

  /** Resolves with the first match of `pattern` in stdout + stderr; rejects on timeout or exit. */
  async waitForOutput(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const printed = () => {
      const m = pattern.exec(this.stdout) ?? pattern.exec(this.stderr);
      if (!m && !this.running) throw new Error(`dispatcher ${this.args.join(" ")} exited (${JSON.stringify(this.exit)}) before printing ${pattern}\n${this.output()}`);
      return m;
    };
    return until(printed, timeoutMs, `dispatcher ${this.args.join(" ")} to print ${pattern}`, () => `\n${this.output()}`);
  }

  /** Polls grpc.health.v1 Check at `address` until SERVING; rejects on timeout or when the process exits. */
  async waitForServing(address: string, timeoutMs = 30_000): Promise<void> {
    let status = "";
    const serving = async () => {
      if (!this.running) throw new Error(`dispatcher ${this.args.join(" ")} exited (${JSON.stringify(this.exit)}) before serving\n${this.output()}`);
      status = await checkHealth(address, "", 1_000).catch(() => "DOWN");
      return status === "SERVING";
    };
    await until(serving, timeoutMs, `dispatcher at ${address} SERVING`, () => `(last: ${status})\n${this.output()}`);
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Sends `signal` and waits for the exit; past timeoutMs the process is killed and the promise rejects. */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 30_000): Promise<Exit> {
    this.signal(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.signal("SIGKILL");
        reject(new Error(`dispatcher did not exit within ${timeoutMs} ms of ${signal}\n${this.output()}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** kill -9: no clean-up runs in the process. */
  kill9(): Promise<Exit> {
    this.signal("SIGKILL");
    return this.exited;
  }
}

export function spawnDispatcher(args: string[], env: NodeJS.ProcessEnv, bin = BIN): DispatcherProcess {
  return new DispatcherProcess(args, env, bin);
}

/** Runs a dispatcher command to its end (killed past timeoutMs) and returns its exit and output. */
export async function runDispatcher(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<Finished> {
  const p = spawnDispatcher(args, env);
  const timer = setTimeout(() => p.signal("SIGKILL"), timeoutMs);
  try {
    const exit = await p.exited;
    return { ...exit, stdout: p.stdout, stderr: p.stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Spawns `dispatcher <args>` (default `start`) in `t` and resolves once it reports SERVING on t.address. */
export async function startDispatcher(t: TestEnv, args: string[] = ["start"], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<DispatcherProcess> {
  const p = spawnDispatcher(args, options.env ?? t.env);
  try {
    await p.waitForServing(t.address, options.timeoutMs ?? 30_000);
  } catch (err) {
    await p.kill9();
    throw err;
  }
  return p;
}

/** The admin API key that the first `start` on a new database prints once (`export DISPATCHER_CLIENT_TOKEN=…`). */
export function bootstrapToken(p: DispatcherProcess): string | undefined {
  return /DISPATCHER_CLIENT_TOKEN=(\S+)/.exec(p.stderr)?.[1];
}

/**
 * Creates a user (when missing) with `role` and an API key in the provisioning database at `url` (migrated: by
 * `start`, `migrate` or createTestEnv's `migrate`). The secret goes in `authorization: Bearer <secret>`.
 */
export async function createTestApiKey(url: string, options: { email?: string; role?: "admin" | "operator" | "reader"; service?: boolean } = {}): Promise<{ id: string; secret: string; userId: string }> {
  const db = createProvisioningClient(url, 1);
  try {
    return await createApiKeyForEmail(db, {
      email: options.email ?? `test-${randomBytes(3).toString("hex")}@example.test`,
      role: options.role ?? "admin",
      kind: options.service ? "service" : "user",
      name: "test",
    });
  } finally {
    await db.$disconnect();
  }
}

/** Kills (-9) every dispatcher this module started that still runs: call from afterAll so a failed test leaves none. */
export async function killStrayDispatchers(): Promise<void> {
  await Promise.all([...live].map((p) => p.kill9()));
}

/** Whether a process with this pid exists (signal 0). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const ENDED: readonly JobState[] = [JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED];

/** Polls GetJob until `job` has ended (SUCCEEDED, FAILED or CANCELLED) and returns it; throws after `timeoutMs`. */
export async function jobEnd(clients: Pick<DispatcherClients, "jobs">, job: Job | undefined, timeoutMs = 30_000): Promise<Job> {
  const ended = async () => {
    const { job: now } = await clients.jobs.getJob({ id: job?.id ?? "" });
    return now && ENDED.includes(now.state) ? now : undefined;
  };
  return until(ended, timeoutMs, `job ${job?.id} to end`);
}
