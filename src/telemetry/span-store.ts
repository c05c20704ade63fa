// The embedded trace store: the spans of job traces this process made, kept in memory within a count and an age, so
// that a job's trace can be read back through the API when no tracing backend is configured (the all-in-one default).
import { TraceFlags, type Context } from "@opentelemetry/api";
import type { ReadableSpan, Span, SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { toSpanRecord, type SpanRecord } from "./file-exporter.js";
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
  spans: SpanRecord[];
  /** Some spans of this trace were dropped (store full or too old): the trace is incomplete. */
  evicted: boolean;
}

/** Spans of traces not yet known to be a job's wait here, briefly, in case a job span joins them. */
const PENDING_MAX_SPANS = 2_000;
const PENDING_MAX_AGE_MS = 60_000;

/** A first-in first-out queue that does not copy on every shift (the pending queue's). */
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

/** A fixed-capacity ring of spans, oldest first: no allocation per span once it is full. */
class SpanRing {
  private readonly slots: (SpanRecord | undefined)[];
  private head = 0;
  size = 0;

  constructor(readonly capacity: number) {
    this.slots = new Array<SpanRecord | undefined>(capacity);
  }

  push(span: SpanRecord): void {
    this.slots[(this.head + this.size) % this.capacity] = span;
    this.size++;
  }

  peek(): SpanRecord | undefined {
    return this.size > 0 ? this.slots[this.head] : undefined;
  }

  shift(): SpanRecord | undefined {
    if (this.size === 0) return undefined;
    const span = this.slots[this.head];
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.size--;
    return span;
  }

  /** The spans of one trace, oldest first: a scan, as reads are rare and adds are many. */
  ofTrace(traceId: string): SpanRecord[] {
    const out: SpanRecord[] = [];
    for (let i = 0; i < this.size; i++) {
      const span = this.slots[(this.head + i) % this.capacity] as SpanRecord;
      if (span.traceId === traceId) out.push(span);
    }
    return out;
  }
}

interface Pending {
  span: SpanRecord;
  /** False once the span moved into the store with its trace. */
  live: boolean;
}

const endMs = (span: SpanRecord): number => span.startTimeUnixMs + span.durationMs;

/**
 * Which spans are kept: those of traces that a job span (one with a non-empty `job.id`) belongs to. Everything else
 * a process traces — the console's own polling, monitor loop iterations that found nothing to do — would otherwise
 * push job traces out. A span that ends before the first job span of its trace (a parent that ends later is the usual
 * case, so this is rare) waits in a small pending queue and joins the store with its trace.
 *
 * Adding is the hot path (every span of every job): a map lookup and a slot in a ring. Keeping spans at all has a
 * cost of its own, as each one lives long enough to be promoted to the old generation (see bench/span-store.ts): so
 * the store keeps a span's record (what TraceService answers with), not the SDK's span object, which holds several
 * times the objects (its context, times, status, links, processor and resource references) for young collections to
 * copy.
 */
export class SpanStore {
  readonly maxSpans: number;
  readonly maxAgeMs: number;
  private readonly now: () => number;
  /** Job traces in the ring: how many of their spans it holds. */
  private readonly kept = new Map<string, number>();
  /** Job traces that lost spans to eviction while others of theirs remain. */
  private readonly evicted = new Set<string>();
  private readonly ring: SpanRing;
  private readonly pendingByTrace = new Map<string, Pending[]>();
  private readonly pendingOrder = new Fifo<Pending>();
  private pendingLive = 0;

  constructor(options: SpanStoreOptions) {
    this.maxSpans = Math.max(1, options.maxSpans);
    this.maxAgeMs = options.maxAgeMs;
    this.now = options.now ?? Date.now;
    this.ring = new SpanRing(this.maxSpans);
  }

  /** Spans kept now (job traces). */
  get size(): number {
    return this.ring.size;
  }

  /** Takes a finished span. */
  add(finished: ReadableSpan): void {
    const span = toSpanRecord(finished);
    const traceId = span.traceId;
    const count = this.kept.get(traceId);
    if (count === undefined) {
      const jobId = span.attributes[ATTR_JOB_ID];
      if (typeof jobId !== "string" || jobId === "") {
        this.addPending(traceId, span);
        return;
      }
      this.promote(traceId);
    }
    this.keep(traceId, span);
  }

  /** The spans kept of one trace (those still pending included), or undefined when none is. */
  trace(traceId: string): StoredTrace | undefined {
    this.evict();
    const pending = (this.pendingByTrace.get(traceId) ?? []).filter((p) => p.live).map((p) => p.span);
    const kept = this.kept.has(traceId) ? this.ring.ofTrace(traceId) : [];
    if (kept.length === 0 && pending.length === 0) return undefined;
    return { spans: [...pending, ...kept], evicted: this.evicted.has(traceId) };
  }

  private keep(traceId: string, span: SpanRecord): void {
    if (this.ring.size >= this.maxSpans) this.drop();
    this.ring.push(span);
    this.kept.set(traceId, (this.kept.get(traceId) ?? 0) + 1);
    this.evict();
  }

  private addPending(traceId: string, span: SpanRecord): void {
    const entry: Pending = { span, live: true };
    const list = this.pendingByTrace.get(traceId);
    if (list) list.push(entry);
    else this.pendingByTrace.set(traceId, [entry]);
    this.pendingOrder.push(entry);
    this.pendingLive++;
    this.evictPending();
  }

  /** Moves the pending spans of a trace that just turned out to be a job's into the store. */
  private promote(traceId: string): void {
    const list = this.pendingByTrace.get(traceId);
    if (!list) return;
    this.pendingByTrace.delete(traceId);
    for (const p of list) {
      if (!p.live) continue;
      p.live = false;
      this.pendingLive--;
      this.keep(traceId, p.span);
    }
  }

  /** Drops the oldest kept span. */
  private drop(): void {
    const span = this.ring.shift();
    if (!span) return;
    const traceId = span.traceId;
    const left = (this.kept.get(traceId) ?? 1) - 1;
    if (left > 0) {
      this.kept.set(traceId, left);
      this.evicted.add(traceId);
    } else {
      this.kept.delete(traceId);
      this.evicted.delete(traceId);
    }
  }

  private evict(): void {
    const oldest = this.now() - this.maxAgeMs;
    for (let head = this.ring.peek(); head && endMs(head) < oldest; head = this.ring.peek()) this.drop();
    this.evictPending();
  }

  private evictPending(): void {
    if (this.pendingOrder.size === 0) return;
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
      const traceId = head.span.traceId;
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
