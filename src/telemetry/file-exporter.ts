// A span exporter that appends each finished span as one JSON line to a file, so tests of real processes can read them.
import { appendFileSync } from "node:fs";
import { SpanKind, SpanStatusCode, type Attributes } from "@opentelemetry/api";
import { ExportResultCode, hrTimeToMilliseconds, type ExportResult } from "@opentelemetry/core";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base";

/** One line of the span file. */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  /** Absent on a root span. */
  parentSpanId?: string;
  name: string;
  kind: keyof typeof SpanKind;
  startTimeUnixMs: number;
  durationMs: number;
  status: { code: keyof typeof SpanStatusCode; message?: string };
  attributes: Attributes;
  events: { name: string; timeUnixMs: number; attributes?: Attributes }[];
  links: { traceId: string; spanId: string; attributes?: Attributes }[];
  service: string;
  scope: string;
  pid: number;
}

/** Events and links of the many spans that have none: one shared empty list (records are never changed). */
const NONE = Object.freeze([]) as unknown as never[];

export function toSpanRecord(span: ReadableSpan): SpanRecord {
  const ctx = span.spanContext();
  return {
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    ...(span.parentSpanContext ? { parentSpanId: span.parentSpanContext.spanId } : {}),
    name: span.name,
    kind: SpanKind[span.kind] as keyof typeof SpanKind,
    startTimeUnixMs: hrTimeToMilliseconds(span.startTime),
    durationMs: hrTimeToMilliseconds(span.duration),
    status: { code: SpanStatusCode[span.status.code] as keyof typeof SpanStatusCode, ...(span.status.message ? { message: span.status.message } : {}) },
    attributes: span.attributes,
    events: span.events.length === 0 ? NONE : span.events.map((e) => ({ name: e.name, timeUnixMs: hrTimeToMilliseconds(e.time), ...(e.attributes ? { attributes: e.attributes } : {}) })),
    links: span.links.length === 0 ? NONE : span.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId, ...(l.attributes ? { attributes: l.attributes } : {}) })),
    service: String(span.resource.attributes["service.name"] ?? ""),
    scope: span.instrumentationScope.name,
    pid: process.pid,
  };
}

/**
 * Writes synchronously (appendFileSync) so that a span is on disk once it ends: a test may read the file while the
 * process still runs, or after it was killed. Not meant for production volumes.
 */
export class FileSpanExporter implements SpanExporter {
  constructor(private readonly path: string) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    try {
      appendFileSync(this.path, spans.map((s) => `${JSON.stringify(toSpanRecord(s))}\n`).join(""));
      done({ code: ExportResultCode.SUCCESS });
    } catch (err) {
      done({ code: ExportResultCode.FAILED, error: err instanceof Error ? err : new Error(String(err)) });
    }
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
