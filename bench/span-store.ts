// npm run bench:spans — what the embedded span store costs a process: CPU time per span for spans shaped like a job's
// (a gRPC server span and job spans with their attributes and an event), recorded into the store, against the same
// spans unsampled (the default before the store: nothing recorded). Also the store's memory per span when full.
// CPU time (process.cpuUsage), not wall time, so that a busy machine disturbs the figures less.
// Options (env): BENCH_SPANS (spans per measurement, default 200000), BENCH_ROUNDS (3).
import { context, trace, type Tracer } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOffSampler, AlwaysOnSampler, BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { SpanStore, SpanStoreProcessor } from "../src/telemetry/span-store.js";
import { round, say } from "./support.js";

const SPANS = Number(process.env.BENCH_SPANS ?? 200_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PER_TRACE = 10;

/** One job-like trace: a gRPC server span and nine job spans under it. */
function jobTrace(tracer: Tracer, n: number): void {
  const root = tracer.startSpan("grpc.dispatcher.v1.ServerService/LaunchServer", {
    attributes: { "rpc.system": "grpc", "rpc.service": "dispatcher.v1.ServerService", "rpc.method": "LaunchServer", "net.peer.name": "127.0.0.1", "net.peer.port": 50_000 },
  });
  const ctx = trace.setSpan(context.active(), root);
  for (let i = 1; i < PER_TRACE; i++) {
    const span = tracer.startSpan(`job.step${i}`, { attributes: { "job.id": `01M90PYNM9KW4R4YXY6Q${n}`, "job.kind": "server.launch", "job.attempt": 1 } }, ctx);
    span.addEvent("ack");
    span.end();
  }
  root.setAttribute("rpc.grpc.status_code", 0);
  root.end();
}

/** CPU microseconds per span for SPANS spans through `tracer`. */
function measure(tracer: Tracer): number {
  const start = process.cpuUsage();
  for (let n = 0; n < SPANS / PER_TRACE; n++) jobTrace(tracer, n);
  const used = process.cpuUsage(start);
  return (used.user + used.system) / SPANS;
}

const resource = resourceFromAttributes({ "service.name": "dispatcher" });
const off = new BasicTracerProvider({ resource, sampler: new AlwaysOffSampler() }).getTracer("bench");
const store = new SpanStore({ maxSpans: 10_000, maxAgeMs: 3_600_000 });
const on = new BasicTracerProvider({ resource, sampler: new AlwaysOnSampler(), spanProcessors: [new SpanStoreProcessor(store)] }).getTracer("bench");

say(`bench:spans — ${SPANS} spans per measurement (traces of ${PER_TRACE}), ${ROUNDS} rounds, best of each`);
measure(off);
measure(on);
let best = { off: Infinity, on: Infinity };
for (let r = 0; r < ROUNDS; r++) best = { off: Math.min(best.off, measure(off)), on: Math.min(best.on, measure(on)) };
const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const heap = process.memoryUsage().heapUsed;
const empty = new SpanStore({ maxSpans: 10_000, maxAgeMs: 3_600_000 });
const fill = new BasicTracerProvider({ resource, sampler: new AlwaysOnSampler(), spanProcessors: [new SpanStoreProcessor(empty)] }).getTracer("bench");
for (let n = 0; n < 10_000 / PER_TRACE; n++) jobTrace(fill, n);
gc?.();
const perSpan = gc ? (process.memoryUsage().heapUsed - heap) / empty.size : Number.NaN;
const extra = best.on - best.off;
say(`unsampled: ${round(best.off, 2)} µs CPU per span; recorded into the store: ${round(best.on, 2)} µs (+${round(extra, 2)} µs)`);
say(`a job of ~15 spans costs ${round(extra * 15, 0)} µs more CPU: ${round((extra * 15 * 1000 * 100) / 1e6, 1)} % of a core at 1,000 jobs/s`);
say(gc ? `memory: ${round(perSpan, 0)} bytes per stored span (${round((perSpan * 10_000) / 1e6, 1)} MB for the default 10,000)` : "memory: run with node --expose-gc for the bytes per span");
console.log(JSON.stringify({ bench: "spans", spans: SPANS, unsampled_us: round(best.off, 3), stored_us: round(best.on, 3), bytes_per_span: Math.round(perSpan) }));
