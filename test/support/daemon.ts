// A server process a test or script starts (nats-server, mariadbd): its output appended to a log file, signals
// (SIGKILL, SIGSTOP/SIGCONT), waiting for its exit, and a guarantee that none outlives the Node process that started it.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";

const live = new Set<Daemon>();
let exitHook = false;

/** One spawned server process. */
export class Daemon {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #ended = false;

  constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
    readonly logFile: string,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    const fd = openSync(logFile, "a");
    try {
      this.child = spawn(command, args, { stdio: ["ignore", fd, fd], env });
    } finally {
      closeSync(fd);
    }
    live.add(this);
    if (!exitHook) {
      exitHook = true;
      // Synchronous on purpose: "exit" handlers cannot wait. A crashed test run must not leave servers behind.
      process.once("exit", () => {
        for (const d of live) d.child.kill("SIGKILL");
      });
    }
    this.exited = new Promise((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null): void => {
        this.#ended = true;
        live.delete(this);
        resolve({ code, signal });
      };
      this.child.once("exit", done);
      this.child.once("error", () => done(null, null));
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return !this.#ended;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGKILL (no shutdown runs) and wait for the exit. */
  async kill(): Promise<void> {
    this.signal("SIGKILL");
    await this.exited;
  }

  /** `signal` (default SIGTERM), then SIGKILL after `timeoutMs`; resolves at the exit. */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 20_000): Promise<void> {
    this.signal(signal);
    const timer = setTimeout(() => this.signal("SIGKILL"), timeoutMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The last `lines` lines of the log file, for error messages. */
  tail(lines = 30): string {
    if (!existsSync(this.logFile)) return "";
    return readFileSync(this.logFile, "utf8").split("\n").slice(-lines - 1).join("\n");
  }
}

/** Thrown by a poll's check to stop polling at once (the awaited thing can no longer happen, e.g. the process died). */
export class GiveUp extends Error {}

/**
 * Polls `check` every `everyMs` until it returns a truthy value. Errors count as "not yet", except GiveUp; the
 * timeout's message names `what` and the last error.
 */
export async function poll<T>(check: () => Promise<T | undefined | false | null>, timeoutMs: number, what: string, everyMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      if (err instanceof GiveUp) throw err;
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last instanceof Error ? last.message : String(last)})` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
