// The traces service: a job's trace from the embedded span store, found under the job's own object scope (the job
// service decides who sees which job). No proto types here; handlers map.
import type { Principal } from "../iam/principal.js";
import type { Job } from "../jobs/model.js";
import type { SpanRecord } from "../telemetry/file-exporter.js";
import type { SpanStore } from "../telemetry/span-store.js";

/** More spans than this in one trace are cut (the oldest kept), so that an answer stays far below the message limit. */
export const MAX_TRACE_SPANS = 5_000;

export interface JobTrace {
  traceId: string;
  /** "embedded": the spans come from this process's store; "external": traces go to a backend (see externalUrl). */
  storage: "embedded" | "external";
  /** Ordered by start time. */
  spans: SpanRecord[];
  /** Spans of this trace were dropped (store full or too old, or more than MAX_TRACE_SPANS). */
  truncated: boolean;
  /** The trace in the external trace UI; "" when none is configured. */
  externalUrl: string;
}

export interface TraceServiceOptions {
  /** The job service's scoped read: NotFoundError for a job the principal may not see. */
  jobs: { getJob(principal: Readonly<Principal>, id: string): Promise<Job> };
  /** This process's span store; undefined when spans go to a backend instead (telemetry.store off). */
  store: SpanStore | undefined;
  /** telemetry.traceUiUrl: a link template with {traceId}. */
  traceUiUrl: string;
}

export interface TraceService {
  getJobTrace(principal: Readonly<Principal>, jobId: string): Promise<JobTrace>;
}

export function createTraceService(options: TraceServiceOptions): TraceService {
  const { store, traceUiUrl } = options;
  return {
    async getJobTrace(principal, jobId) {
      const job = await options.jobs.getJob(principal, jobId);
      const traceId = job.traceId;
      const externalUrl = traceId && traceUiUrl ? traceUiUrl.replaceAll("{traceId}", encodeURIComponent(traceId)) : "";
      const kept = traceId ? store?.trace(traceId) : undefined;
      const all = [...(kept?.spans ?? [])].sort((a, b) => a.startTimeUnixMs - b.startTimeUnixMs);
      const spans = all.length > MAX_TRACE_SPANS ? all.slice(0, MAX_TRACE_SPANS) : all;
      return {
        traceId,
        storage: store ? "embedded" : "external",
        spans,
        truncated: (kept?.evicted ?? false) || all.length > spans.length,
        externalUrl,
      };
    },
  };
}
