// dispatcher.v1 jobs messages ⇄ the job domain: states and outcomes as string unions, complete messages out
// (fromPartial fills every field), validated requests in.
import { DiagnosticOutcome, JobEvent as JobEventMessage, Job as JobMessage, JobState as JobStateEnum, type ListJobsRequest, type RunDiagnosticJobRequest } from "../gen/proto/dispatcher/v1/jobs.js";
import type { Violations } from "../rpc/validate.js";
import type { DiagnosticPayload } from "./kinds/diagnostic.js";
import type { Job, JobEvent, JobState } from "./model.js";

export const JOB_STATE_TO_PROTO: Readonly<Record<JobState, JobStateEnum>> = {
  QUEUED: JobStateEnum.JOB_STATE_QUEUED,
  RUNNING: JobStateEnum.JOB_STATE_RUNNING,
  SUCCEEDED: JobStateEnum.JOB_STATE_SUCCEEDED,
  FAILED: JobStateEnum.JOB_STATE_FAILED,
  CANCELLED: JobStateEnum.JOB_STATE_CANCELLED,
};

export const JOB_STATE_FROM_PROTO: Readonly<Partial<Record<number, JobState>>> = Object.fromEntries(Object.entries(JOB_STATE_TO_PROTO).map(([k, v]) => [v, k as JobState]));

export type DiagnosticOutcomeName = DiagnosticPayload["outcome"];

export const DIAGNOSTIC_OUTCOME_FROM_PROTO: Readonly<Partial<Record<number, DiagnosticOutcomeName>>> = {
  [DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED]: "succeed",
  [DiagnosticOutcome.DIAGNOSTIC_OUTCOME_FAIL_PERMANENT]: "fail_permanent",
  [DiagnosticOutcome.DIAGNOSTIC_OUTCOME_FAIL_RETRYABLE]: "fail_retryable",
  [DiagnosticOutcome.DIAGNOSTIC_OUTCOME_PENDING]: "pending",
};


export const MAX_DIAGNOSTIC_SLEEP_MS = 3_600_000;
/** Idempotency keys: the column is VARCHAR(128). */
export const IDEMPOTENCY_KEY_RULES = { max: 128, min: 1 } as const;

export function jobToProto(job: Job): JobMessage {
  return JobMessage.fromPartial({
    id: job.id,
    kind: job.kind,
    state: JOB_STATE_TO_PROTO[job.state] ?? JobStateEnum.JOB_STATE_UNSPECIFIED,
    attempt: job.attempt,
    maxAttempts: job.maxAttempts,
    progressPercent: job.progressPercent,
    progressMessage: job.progressMessage,
    error: job.error ? { code: job.error.code, message: job.error.message, details: job.error.details } : undefined,
    result: job.result ?? undefined,
    requestedBy: job.requestedBy,
    resource: job.resource ?? undefined,
    idempotencyKey: job.idempotencyKey ?? "",
    traceId: job.traceId,
    cancelRequested: job.cancelRequested,
    createTime: job.createdAt,
    updateTime: job.updatedAt,
    startTime: job.startedAt ?? undefined,
    endTime: job.endedAt ?? undefined,
    deadline: job.deadlineAt ?? undefined,
    parentId: job.parentId ?? "",
    children: job.children,
  });
}

export function jobEventToProto(e: JobEvent): JobEventMessage {
  return JobEventMessage.fromPartial({
    jobId: e.jobId,
    sequence: String(e.sequence),
    type: e.type,
    fromState: e.fromState ? JOB_STATE_TO_PROTO[e.fromState] : JobStateEnum.JOB_STATE_UNSPECIFIED,
    toState: JOB_STATE_TO_PROTO[e.toState] ?? JobStateEnum.JOB_STATE_UNSPECIFIED,
    attempt: e.attempt,
    actor: e.actor,
    message: e.message,
    time: e.time,
  });
}

/** ListJobs filters, validated; also what a page token is bound to. */
export function listFilters(v: Violations, req: ListJobsRequest) {
  const state = v.optionalEnum("state", req.state, JOB_STATE_FROM_PROTO);
  const kind = v.optionalString("kind", req.kind, { max: 64 }) || undefined;
  const requestedBy = v.optionalString("requested_by", req.requestedBy, { max: 64 }) || undefined;
  let resource: { type: string; id?: string } | undefined;
  if (req.resource && (req.resource.type || req.resource.id)) {
    const type = v.string("resource.type", req.resource.type, { max: 64 });
    const id = v.optionalString("resource.id", req.resource.id, { max: 64 });
    resource = id ? { type, id } : { type };
  }
  const accountId = v.optionalString("account_id", req.accountId, { max: 64 }) || undefined;
  const parentId = v.optionalString("parent_id", req.parentId, { max: 64 }) || undefined;
  const createdAfter = validTime(v, "created_after", req.createdAfter);
  const createdBefore = validTime(v, "created_before", req.createdBefore);
  if (createdAfter && createdBefore && createdAfter >= createdBefore) v.add("created_before", "must be later than created_after");
  return { state, kind, requestedBy, resource, accountId, parentId, createdAfter, createdBefore };
}

function validTime(v: Violations, field: string, value: Date | undefined): Date | undefined {
  if (value === undefined) return undefined;
  if (Number.isNaN(value.getTime())) v.add(field, "is not a valid time");
  else return value;
  return undefined;
}

/** A page token's cursor as encodePageToken stored it: {t: created_at in ms, i: id}. */
export function cursorFromToken(v: Violations, raw: Record<string, string | number> | null): { createdAt: Date; id: string } | null {
  if (!raw) return null;
  const { t, i } = raw;
  if (typeof t !== "number" || !Number.isFinite(t) || typeof i !== "string" || i.length === 0 || i.length > 64) {
    v.add("page_token", "is not a page token of this query");
    return null;
  }
  return { createdAt: new Date(t), id: i };
}

export function cursorToToken(c: { createdAt: Date; id: string }): Record<string, string | number> {
  return { t: c.createdAt.getTime(), i: c.id };
}

/** RunDiagnosticJobRequest → the diagnostic payload; records a violation per bad field. */
export function diagnosticPayload(v: Violations, req: RunDiagnosticJobRequest): DiagnosticPayload {
  let sleepMs = 0;
  if (req.sleep) {
    const seconds = Number(req.sleep.seconds);
    const nanos = req.sleep.nanos;
    const ms = seconds * 1000 + Math.floor(nanos / 1e6);
    if (!Number.isFinite(ms) || seconds < 0 || nanos < 0 || ms > MAX_DIAGNOSTIC_SLEEP_MS) v.add("sleep", `must be from 0 to ${MAX_DIAGNOSTIC_SLEEP_MS / 1000} seconds`);
    else sleepMs = ms;
  }
  const outcome = v.enumValue("outcome", req.outcome, DIAGNOSTIC_OUTCOME_FROM_PROTO) ?? "succeed";
  const failAttempts = v.int("fail_attempts", req.failAttempts, 0, 1000);
  const pendingChecks = v.int("pending_checks", req.pendingChecks, 0, 10_000);
  const note = v.optionalString("note", req.note, { max: 256 });
  return { sleepMs, outcome, failAttempts, pendingChecks, note };
}
