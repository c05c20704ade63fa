// W3C trace context across NATS: into and out of message headers, and to and from the traceparent a job row keeps.
// NATS has no OpenTelemetry instrumentation, so publishers inject and consumers extract here.
import { context, ROOT_CONTEXT, type Context, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { headers as natsHeaders, Match, type MsgHdrs } from "@nats-io/transport-node";

const w3c = new W3CTraceContextPropagator();

/** A trace context as stored with a job: the W3C `traceparent` and, rarely, a `tracestate`. */
export interface StoredTraceContext {
  traceparent: string;
  tracestate?: string;
}

const hdrSetter: TextMapSetter<MsgHdrs> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

// Header names are matched ignoring case: other clients may send `Traceparent`.
const hdrGetter: TextMapGetter<MsgHdrs> = {
  keys: (carrier) => carrier.keys(),
  get: (carrier, key) => (carrier.has(key, Match.IgnoreCase) ? carrier.get(key, Match.IgnoreCase) : undefined),
};

type Carrier = Record<string, string>;
const recordSetter: TextMapSetter<Carrier> = { set: (carrier, key, value) => void (carrier[key] = value) };
const recordGetter: TextMapGetter<Carrier> = { keys: (carrier) => Object.keys(carrier), get: (carrier, key) => carrier[key] };

/**
 * Writes `traceparent` (and `tracestate` when present) of `ctx` into `headers`, creating them when absent.
 * Nothing is written when `ctx` holds no valid span context.
 */
export function injectTraceHeaders(headers: MsgHdrs = natsHeaders(), ctx: Context = context.active()): MsgHdrs {
  w3c.inject(ctx, headers, hdrSetter);
  return headers;
}

/**
 * The context carried by `headers`, as a remote parent on top of `base` (the root context by default, so a consumer
 * never inherits whatever happens to be active). Returns `base` when the headers carry no valid traceparent.
 */
export function extractTraceHeaders(headers: MsgHdrs | undefined, base: Context = ROOT_CONTEXT): Context {
  return headers ? w3c.extract(base, headers, hdrGetter) : base;
}

/** The trace context of `ctx` in storable form, or undefined when no valid span is active. */
export function storedTraceContext(ctx: Context = context.active()): StoredTraceContext | undefined {
  const carrier: Carrier = {};
  w3c.inject(ctx, carrier, recordSetter);
  if (!carrier.traceparent) return undefined;
  return carrier.tracestate ? { traceparent: carrier.traceparent, tracestate: carrier.tracestate } : { traceparent: carrier.traceparent };
}

/** The W3C traceparent of `ctx` (`00-<trace id>-<span id>-<flags>`), or undefined when no valid span is active. */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  return storedTraceContext(ctx)?.traceparent;
}

/**
 * A context continuing a stored traceparent (as a remote parent on top of `base`, the root context by default).
 * A missing or malformed traceparent yields `base`: tracing must never fail a job.
 */
export function contextFromTraceparent(traceparent: string | null | undefined, tracestate?: string | null, base: Context = ROOT_CONTEXT): Context {
  if (!traceparent) return base;
  const carrier: Carrier = { traceparent };
  if (tracestate) carrier.tracestate = tracestate;
  return w3c.extract(base, carrier, recordGetter);
}
