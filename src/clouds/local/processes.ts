// The processes that are the local cloud's servers: spawned detached in a process group of their own (they outlive the
// worker that launched them, as cloud servers do), recognised by pid AND start time (a recycled pid is not ours), and
// stopped by signalling the whole group.
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { DriverError } from "../driver.js";

/** Environment variable every server process carries: its work directory, so a sweep can find it by /proc. */
export const MARKER_ENV = "DISPATCHER_LOCAL_SERVER_DIR";
/** What the local cloud's processes start from: never the dispatcher's own environment (database URLs, keys). */
export const BASE_ENV: Readonly<Record<string, string>> = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" };

/** The process's start time in clock ticks after boot (/proc/<pid>/stat field 22); null where /proc is missing. */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Whether `pid` is alive and, when `start` is known, still the process that started then (not a recycled pid). */
export function isOurs(pid: number, start: string | null): boolean {
  if (!alive(pid)) return false;
  if (start === null) return true;
  const now = processStart(pid);
  if (now === null) return !zombie(pid);
  return now === start && !zombie(pid);
}

function zombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

export interface SpawnSpec {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  stdoutPath: string;
  stderrPath: string;
}

/** Starts the process as the leader of a new process group and lets it go; returns its pid and start time. */
export async function spawnDetached(spec: SpawnSpec): Promise<{ pid: number; start: string | null }> {
  const [command, ...args] = spec.argv;
  if (!command) throw new DriverError("INTERNAL", "the image has an empty command", { retryable: false });
  const out = openSync(spec.stdoutPath, "a", 0o600);
  const err = openSync(spec.stderrPath, "a", 0o600);
  try {
    const child = spawn(command, args, { cwd: spec.cwd, env: spec.env, detached: true, stdio: ["ignore", out, err] });
    const failed = new Promise<never>((_, reject) => child.once("error", reject));
    failed.catch(() => undefined);
    if (child.pid === undefined) {
      // spawn reports ENOENT, EACCES, EAGAIN … asynchronously.
      const cause = await failed.catch((e: unknown) => e);
      throw spawnError(cause);
    }
    child.unref();
    return { pid: child.pid, start: processStart(child.pid) };
  } finally {
    closeSync(out);
    closeSync(err);
  }
}

function spawnError(cause: unknown): DriverError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  // Out of processes or memory passes; a command that is missing or not executable is the image's fault.
  if (code === "EAGAIN" || code === "ENOMEM" || code === "EMFILE" || code === "ENFILE") return new DriverError("UNAVAILABLE", `the local cloud cannot start a process now (${code})`, { cause, providerCode: code });
  return new DriverError("INTERNAL", `the local cloud cannot start the image's command (${code ?? "unknown error"})`, { cause, retryable: false, ...(code ? { providerCode: code } : {}) });
}

/**
 * Stops the process group led by `pid`: SIGTERM, then SIGKILL after `graceMs` or when `signal` aborts. Resolves when the
 * leader is gone. A leader that is not ours any more (recycled pid) is left alone.
 */
export async function stopGroup(pid: number, start: string | null, graceMs: number, signal: AbortSignal): Promise<void> {
  if (!isOurs(pid, start)) {
    // A dead leader's pid cannot be reused while its group lives, so the group (if any) is still ours; a live
    // stranger under that pid is not.
    if (!alive(pid)) killGroup(pid, "SIGKILL");
    return;
  }
  killGroup(pid, "SIGTERM");
  const killAt = Date.now() + graceMs;
  while (isOurs(pid, start)) {
    if (Date.now() >= killAt || signal.aborted) {
      killGroup(pid, "SIGKILL");
      await waitGone(pid, start, 5_000);
      break;
    }
    await sleep(20);
  }
  if (!alive(pid)) killGroup(pid, "SIGKILL"); // children the leader left behind
}

async function waitGone(pid: number, start: string | null, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (isOurs(pid, start) && Date.now() < until) await sleep(10);
}

/** Signals the process group whose id is `pid`. */
export function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    /* no such group: nothing left */
  }
}

/** Whether something accepts TCP connections on host:port (default 127.0.0.1) within `ms`. */
export function portAnswers(port: number, ms = 250, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(ms, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** A port free on 127.0.0.1 now: `preferred` when it still is, else one the system picks. UNAVAILABLE when none. */
export async function freePort(preferred?: number): Promise<number> {
  if (preferred) {
    const port = await tryListen(preferred).catch(() => null);
    if (port) return port;
  }
  try {
    return await tryListen(0);
  } catch (err) {
    throw new DriverError("UNAVAILABLE", "the local cloud has no free port for a server", { cause: err, providerCode: (err as NodeJS.ErrnoException).code });
  }
}

function tryListen(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => {
      const address = server.address();
      const got = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(got));
    });
  });
}
