// The one helper every span goes through: starts it, records a thrown error and ERROR status, always ends it.
// Attributes never carry secrets (credentials, keys, tokens, passwords): pass ids, kinds and counts only.
import {
  context,
  INVALID_SPAN_CONTEXT,
  isSpanContextValid,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
} from "@opentelemetry/api";

export { SpanKind, type Span } from "@opentelemetry/api";

/** Instrumentation scope of the project's own spans. */
export const TRACER_NAME = "dispatcher";

/** Attribute names for jobs, set on every span that works on a job. */
export const ATTR_JOB_ID = "job.id";
export const ATTR_JOB_KIND = "job.kind";
export const ATTR_JOB_ATTEMPT = "job.attempt";

export interface SpanOptions {
  attributes?: Attributes;
  /** INTERNAL when absent. PRODUCER for a publish, CONSUMER for handling a message, CLIENT for calls out. */
  kind?: SpanKind;
  links?: Link[];
  /** Parent context, e.g. one extracted from message headers; the active context when absent. */
  parent?: Context;
  /** Start a new trace even if a span is active (links can still point at the cause). */
  root?: boolean;
}

/** The job attributes (`job.id`, `job.kind`, `job.attempt`) for a span's attributes. */
export function jobAttributes(job: { id: string; kind: string; attempt?: number }): Attributes {
  const attrs: Attributes = { [ATTR_JOB_ID]: job.id, [ATTR_JOB_KIND]: job.kind };
  if (job.attempt !== undefined) attrs[ATTR_JOB_ATTEMPT] = job.attempt;
  return attrs;
}

/** What `fn` gets where no span is recorded and none is active. */
const NOT_RECORDED = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** False once telemetry started with nothing to export or keep (see withSpan); undefined: not started (tests, CLI). */
let spansRecorded: boolean | undefined;

/** Set by src/telemetry/sdk.ts when it starts: whether this process records spans at all. */
export function setSpansRecorded(recorded: boolean | undefined): void {
  spansRecorded = recorded;
}

/**
 * Runs `fn` inside a new active span named `name` and ends the span when `fn` settles. A thrown error is recorded as
 * an exception event, sets the status to ERROR and is rethrown unchanged.
 *
 * In a process that records no span at all (telemetry started with nothing to export or keep: src/telemetry/sdk.ts),
 * a new span would only mint an id that no backend ever receives, at a few microseconds and several objects each —
 * a worker ran four per job. There the parent context passes through instead: `fn` runs in it (the parent's span is
 * what it gets), so trace ids still reach logs, and what this process calls or publishes next names the last span
 * recorded upstream as its parent rather than one that was never recorded.
 */
export async function withSpan<T>(name: string, options: SpanOptions, fn: (span: Span) => T | Promise<T>): Promise<T> {
  const parent = options.parent ?? context.active();
  if (!options.root && spansRecorded === false) {
    const through = trace.getSpan(parent) ?? NOT_RECORDED;
    return parent === context.active() ? await fn(through) : await context.with(parent, () => fn(through));
  }
  const tracer = trace.getTracer(TRACER_NAME);
  const span = tracer.startSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes, links: options.links, root: options.root },
    parent,
  );
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    recordError(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/** Records `err` on `span` (exception event + ERROR status) without ending it. */
export function recordError(span: Span, err: unknown): void {
  const error = err instanceof Error ? err : new Error(String(err));
  span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: `${error.name}: ${error.message}` });
}

/** The active trace id (32 hex digits), or undefined outside any span. */
export function currentTraceId(ctx: Context = context.active()): string | undefined {
  const spanContext = trace.getSpanContext(ctx);
  return spanContext && isSpanContextValid(spanContext) ? spanContext.traceId : undefined;
}
