// The service log (pino JSON lines on stdout, secrets redacted, trace ids attached) and the daily request log.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { trace } from "@opentelemetry/api";
import { pino, type Logger } from "pino";

export type { Logger } from "pino";

/** Field names whose values never reach a log line, at the top level or one object deep. */
const SECRET_KEYS = ["password", "secret", "secretAccessKey", "token", "joinToken", "apiKey", "authorization", "credential", "credentials", "fields", "key", "privateKey", "masterKeys", "kmChannelKey", "plaintext"];
const REDACT_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);

export interface LogOptions {
  level: string;
  pretty?: boolean;
  name?: string;
  /** Where lines go; stdout when absent. Tests pass a stream to inspect output. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LogOptions): Logger {
  return pino(
    {
      name: options.name ?? "dispatcher",
      level: options.level,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin() {
        const span = trace.getActiveSpan();
        if (!span) return {};
        const ctx = span.spanContext();
        return { trace_id: ctx.traceId, span_id: ctx.spanId };
      },
    },
    (options.destination as pino.DestinationStream | undefined) ?? pino.destination({ dest: 1, sync: false }),
  );
}

/**
 * `log.child(bindings)`, made when first used. For a logger per call or per job that usually logs nothing: pino
 * serialises (and redacts) a child's bindings when it makes the child, which costs more than the call's other logging.
 */
export function lazyChild(log: Logger, bindings: Record<string, unknown>): Logger {
  let child: Logger | undefined;
  return new Proxy(log, {
    get(_target, prop) {
      child ??= log.child(bindings);
      const value: unknown = Reflect.get(child, prop, child);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(child) : value;
    },
  });
}

/** One line of the request log: what was called, by whom, and how it ended. */
export interface RequestLogEntry {
  time: Date;
  method: string;
  peer: string;
  principal: string;
  /** gRPC status code name, e.g. "OK" or "NOT_FOUND". */
  code: string;
  durationMs: number;
  traceId: string;
  /** On a sampled limit refusal: how many refusals of this principal the line stands for (itself included). */
  refusals?: number;
}

/** Appends one JSON line per RPC to <dir>/YYYY_MM_DD.request.log, a file per UTC day. */
export class RequestLog {
  private day = "";
  private stream: pino.DestinationStream & { end?: () => void; flushSync?: () => void } | undefined;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  write(entry: RequestLogEntry): void {
    const iso = entry.time.toISOString();
    const day = iso.slice(0, 10).replace(/-/g, "_");
    if (day !== this.day) this.rotate(day);
    const line = { time: iso, method: entry.method, peer: entry.peer, principal: entry.principal, code: entry.code, duration_ms: Math.round(entry.durationMs * 1000) / 1000, trace_id: entry.traceId, ...(entry.refusals !== undefined ? { refusals: entry.refusals } : {}) };
    this.stream?.write(`${JSON.stringify(line)}\n`);
  }

  close(): void {
    this.stream?.flushSync?.();
    this.stream?.end?.();
    this.stream = undefined;
  }

  private rotate(day: string): void {
    this.close();
    this.day = day;
    this.stream = pino.destination({ dest: join(this.dir, `${day}.request.log`), sync: false, mkdir: true, append: true });
  }
}
