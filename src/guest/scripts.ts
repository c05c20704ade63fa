// RunScript on the guest: one child process (no shell), a clean environment (the agent's own variables, its join
// token among them, never reach a script), output capped per stream, and the whole process group killed at the timeout.
import { spawn } from "node:child_process";
import { constants } from "node:os";

export interface ScriptRequest {
  command: string;
  args: string[];
  env: Record<string, string>;
  timeoutMs: number;
  maxOutputBytes: number;
  signal?: AbortSignal | undefined;
}

export interface ScriptResult {
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  timedOut: boolean;
  durationMs: number;
}

/** What every script starts from; the request's variables are added on top. */
export const BASE_ENV: Readonly<Record<string, string>> = Object.freeze({ PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" });

class Capped {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly max: number) {}

  push(chunk: Buffer): void {
    const room = this.max - this.size;
    if (chunk.length > room) this.truncated = true;
    if (room <= 0) return;
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.chunks.push(kept);
    this.size += kept.length;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export function runScript(req: ScriptRequest): Promise<ScriptResult> {
  const started = performance.now();
  const stdout = new Capped(req.maxOutputBytes);
  const stderr = new Capped(req.maxOutputBytes);
  return new Promise<ScriptResult>((resolve) => {
    let timedOut = false;
    let spawnError: Error | undefined;
    // Its own process group, so that the timeout also ends what the command started.
    const child = spawn(req.command, req.args, { env: { ...BASE_ENV, ...req.env }, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, req.timeoutMs);
    const onAbort = (): void => killGroup();
    req.signal?.addEventListener("abort", onAbort, { once: true });
    child.stdout.on("data", (c: Buffer) => stdout.push(c));
    child.stderr.on("data", (c: Buffer) => stderr.push(c));
    child.on("error", (err) => (spawnError = err));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      req.signal?.removeEventListener("abort", onAbort);
      if (spawnError) stderr.push(Buffer.from(`cannot run ${req.command}: ${spawnError.message}\n`));
      const exitCode = spawnError ? 127 : (code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : -1));
      resolve({
        exitCode,
        stdout: stdout.bytes(),
        stderr: stderr.bytes(),
        stdoutTruncated: stdout.truncated,
        stderrTruncated: stderr.truncated,
        timedOut,
        durationMs: performance.now() - started,
      });
    });
  });
}
