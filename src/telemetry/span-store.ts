// The embedded trace store: the spans of job traces this process made, kept in memory within a count and an age, so
// that a job's trace can be read back through the API when no tracing backend is configured (the all-in-one default).
import { TraceFlags, type Context } from "@opentelemetry/api";
import { hrTimeToMilliseconds } from "@opentelemetry/core";
import type { ReadableSpan, Span, SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { ATTR_JOB_ID } from "./spans.js";

export interface SpanStoreOptions {
  /** Spans kept at most (job traces); the oldest go first. */
  maxSpans: number;
  /** Spans that ended longer ago than this are dropped. */
  maxAgeMs: number;
  /** Milliseconds since the epoch (tests). */
  now?: () => number;
}

/** What the store holds of one trace. */
export interface StoredTrace {
  /** In the order they ended. */
  spans: ReadableSpan[];
  /** Some spans of this trace were dropped (store full or too old): the trace is incomplete. */
  evicted: boolean;
}

/** Spans of traces not yet known to be a job's wait here, briefly, in case a job span joins them. */
const PENDING_MAX_SPANS = 2_000;
const PENDING_MAX_AGE_MS = 60_000;

/** A first-in first-out queue that does not copy on every shift. */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

interface Pending {
  span: ReadableSpan;
  /** False once the span moved into the store with its trace. */
  live: boolean;
}

const endMs = (span: ReadableSpan): number => hrTimeToMilliseconds(span.endTime);

/**
 * Which spans are kept: those of traces that a job span (one with a non-empty `job.id`) belongs to. Everything else
 * a process traces — the console's own polling, monitor loop iterations that found nothing to do — would otherwise
 * push job traces out. A span that ends before the first job span of its trace (a parent that ends later is the usual
 * case, so this is rare) waits in a small pending queue and joins the store with its trace.
 */
export class SpanStore {
  readonly maxSpans: number;
  readonly maxAgeMs: number;
  private readonly now: () => number;
  private readonly traces = new Map<string, StoredTrace>();
  private readonly order = new Fifo<ReadableSpan>();
  private readonly pendingByTrace = new Map<string, Pending[]>();
  private readonly pendingOrder = new Fifo<Pending>();
  private pendingLive = 0;

  constructor(options: SpanStoreOptions) {
    this.maxSpans = Math.max(1, options.maxSpans);
    this.maxAgeMs = options.maxAgeMs;
    this.now = options.now ?? Date.now;
  }

  /** Spans kept now (job traces). */
  get size(): number {
    return this.order.size;
  }

  /** Takes a finished span. Cheap: a map lookup and a push; eviction happens here, a span at a time. */
  add(span: ReadableSpan): void {
    const traceId = span.spanContext().traceId;
    let trace = this.traces.get(traceId);
    if (!trace) {
      const jobId = span.attributes[ATTR_JOB_ID];
      if (typeof jobId !== "string" || jobId === "") {
        this.addPending(traceId, span);
        return;
      }
      trace = { spans: [], evicted: false };
      this.traces.set(traceId, trace);
      this.promote(traceId, trace);
    }
    trace.spans.push(span);
    this.order.push(span);
    this.evict();
  }

  /** The spans kept of one trace (those still pending included), or undefined when none is. */
  trace(traceId: string): StoredTrace | undefined {
    this.evict();
    const trace = this.traces.get(traceId);
    const pending = (this.pendingByTrace.get(traceId) ?? []).filter((p) => p.live).map((p) => p.span);
    if (!trace && pending.length === 0) return undefined;
    return { spans: [...pending, ...(trace?.spans ?? [])], evicted: trace?.evicted ?? false };
  }

  private addPending(traceId: string, span: ReadableSpan): void {
    const entry: Pending = { span, live: true };
    const list = this.pendingByTrace.get(traceId);
    if (list) list.push(entry);
    else this.pendingByTrace.set(traceId, [entry]);
    this.pendingOrder.push(entry);
    this.pendingLive++;
    this.evictPending();
  }

  /** Moves the pending spans of a trace that just turned out to be a job's into the store. */
  private promote(traceId: string, trace: StoredTrace): void {
    const list = this.pendingByTrace.get(traceId);
    if (!list) return;
    this.pendingByTrace.delete(traceId);
    for (const p of list) {
      if (!p.live) continue;
      p.live = false;
      this.pendingLive--;
      trace.spans.push(p.span);
      this.order.push(p.span);
    }
  }

  private evict(): void {
    const oldest = this.now() - this.maxAgeMs;
    for (;;) {
      const head = this.order.peek();
      if (!head || (this.order.size <= this.maxSpans && endMs(head) >= oldest)) break;
      this.order.shift();
      const traceId = head.spanContext().traceId;
      const trace = this.traces.get(traceId);
      if (!trace) continue;
      // A trace's spans entered the queue in their own order, so the evicted one is almost always its first.
      const at = trace.spans[0] === head ? 0 : trace.spans.indexOf(head);
      if (at >= 0) trace.spans.splice(at, 1);
      trace.evicted = true;
      if (trace.spans.length === 0) this.traces.delete(traceId);
    }
    this.evictPending();
  }

  private evictPending(): void {
    const oldest = this.now() - PENDING_MAX_AGE_MS;
    const max = Math.min(PENDING_MAX_SPANS, this.maxSpans);
    for (;;) {
      const head = this.pendingOrder.peek();
      if (!head) break;
      if (head.live && this.pendingLive <= max && endMs(head.span) >= oldest) break;
      this.pendingOrder.shift();
      if (!head.live) continue;
      head.live = false;
      this.pendingLive--;
      const traceId = head.span.spanContext().traceId;
      const list = this.pendingByTrace.get(traceId);
      if (list && list.every((p) => !p.live)) this.pendingByTrace.delete(traceId);
    }
  }
}

/** Feeds every sampled span that ends into a SpanStore. */
export class SpanStoreProcessor implements SpanProcessor {
  constructor(readonly store: SpanStore) {}

  onStart(_span: Span, _parentContext: Context): void {}

  onEnd(span: ReadableSpan): void {
    if (span.spanContext().traceFlags & TraceFlags.SAMPLED) this.store.add(span);
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
