// The one helper every span goes through: starts it, records a thrown error and ERROR status, always ends it.
// Attributes never carry secrets (credentials, keys, tokens, passwords): pass ids, kinds and counts only.
import {
  context,
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

/**
 * Runs `fn` inside a new active span named `name` and ends the span when `fn` settles. A thrown error is recorded as
 * an exception event, sets the status to ERROR and is rethrown unchanged.
 */
export async function withSpan<T>(name: string, options: SpanOptions, fn: (span: Span) => T | Promise<T>): Promise<T> {
  const tracer = trace.getTracer(TRACER_NAME);
  const parent = options.parent ?? context.active();
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
