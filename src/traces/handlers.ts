// dispatcher.v1 TraceService over gRPC: validates the job id, calls the traces service, maps spans to messages.
import type { Attributes } from "@opentelemetry/api";
import {
  GetJobTraceResponse,
  SpanKind,
  SpanStatusCode,
  TraceServiceService as T,
  TraceStorage,
  type Span,
} from "../gen/proto/dispatcher/v1/traces.js";
import { defineService, unary, type RpcService } from "../rpc/adapter.js";
import { requireString } from "../rpc/validate.js";
import type { SpanRecord } from "../telemetry/file-exporter.js";
import type { TraceService } from "./service.js";

const KIND: Record<SpanRecord["kind"], SpanKind> = {
  INTERNAL: SpanKind.SPAN_KIND_INTERNAL,
  SERVER: SpanKind.SPAN_KIND_SERVER,
  CLIENT: SpanKind.SPAN_KIND_CLIENT,
  PRODUCER: SpanKind.SPAN_KIND_PRODUCER,
  CONSUMER: SpanKind.SPAN_KIND_CONSUMER,
};

const STATUS: Record<SpanRecord["status"]["code"], SpanStatusCode> = {
  UNSET: SpanStatusCode.SPAN_STATUS_CODE_UNSET,
  OK: SpanStatusCode.SPAN_STATUS_CODE_OK,
  ERROR: SpanStatusCode.SPAN_STATUS_CODE_ERROR,
};

export function traceHandlers(traces: TraceService): RpcService {
  return defineService(T, {
    getJobTrace: unary(T.getJobTrace, async (req, ctx) => {
      // Job ids are ULIDs; anything else that fits is simply not found.
      const id = requireString("job_id", req.jobId, { max: 64 });
      const trace = await traces.getJobTrace(ctx.principal, id);
      return GetJobTraceResponse.fromPartial({
        traceId: trace.traceId,
        spans: trace.spans.map(spanToProto),
        storage: trace.storage === "embedded" ? TraceStorage.TRACE_STORAGE_EMBEDDED : TraceStorage.TRACE_STORAGE_EXTERNAL,
        truncated: trace.truncated,
        externalUrl: trace.externalUrl,
      });
    }),
  });
}

function spanToProto(s: SpanRecord): Span {
  return {
    spanId: s.spanId,
    parentSpanId: s.parentSpanId ?? "",
    name: s.name,
    kind: KIND[s.kind] ?? SpanKind.SPAN_KIND_UNSPECIFIED,
    startTime: new Date(s.startTimeUnixMs),
    durationMicros: String(Math.round(s.durationMs * 1000)),
    statusCode: STATUS[s.status.code] ?? SpanStatusCode.SPAN_STATUS_CODE_UNSPECIFIED,
    statusMessage: s.status.message ?? "",
    attributes: attributeText(s.attributes),
    events: s.events.map((e) => ({ name: e.name, time: new Date(e.timeUnixMs), attributes: attributeText(e.attributes) })),
    service: s.service,
    scope: s.scope,
  };
}

/** Attribute values as text: strings as they are, everything else (numbers, booleans, lists) as JSON. */
function attributeText(attributes: Attributes | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(attributes ?? {})) if (v !== undefined) out[k] = typeof v === "string" ? v : JSON.stringify(v);
  return out;
}
