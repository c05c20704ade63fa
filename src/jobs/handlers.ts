// dispatcher.v1 JobService over gRPC: validates requests, calls the job service, maps answers to complete messages.
import {
  CancelJobResponse,
  GetJobResponse,
  JobServiceService as J,
  ListJobEventsResponse,
  ListJobsResponse,
  RetryJobResponse,
  RunDiagnosticJobResponse,
  WatchJobResponse,
} from "../gen/proto/dispatcher/v1/jobs.js";
import { defineService, serverStream, unary, type RpcService } from "../rpc/adapter.js";
import { encodePageToken, ID_RULES, requireString, validateOne, Violations } from "../rpc/validate.js";
import { cursorFromToken, cursorToToken, diagnosticPayload, IDEMPOTENCY_KEY_RULES, jobEventToProto, jobToProto, listFilters } from "./mapper.js";
import { DIAGNOSTIC_KIND } from "./kinds/diagnostic.js";
import type { JobService } from "./service.js";

export const MAX_PAGE_SIZE = 1000;
export const DEFAULT_PAGE_SIZE = 50;

export function jobHandlers(jobs: JobService): RpcService {
  return defineService(J, {
    getJob: unary(J.getJob, async (req, ctx) => {
      const id = requireString("id", req.id, ID_RULES);
      return GetJobResponse.fromPartial({ job: jobToProto(await jobs.getJob(ctx.principal, id)) });
    }),

    listJobs: unary(J.listJobs, async (req, ctx) => {
      const v = new Violations();
      const filters = listFilters(v, req);
      // Above the maximum is an error here rather than silently lowered: the contract for ListJobs.
      const size = v.int("page_size", req.pageSize, 0, MAX_PAGE_SIZE);
      const cursor = cursorFromToken(v, v.pageToken("page_token", req.pageToken, filters));
      v.check();
      const page = await jobs.listJobs(ctx.principal, { ...filters, pageSize: size || DEFAULT_PAGE_SIZE, cursor });
      return ListJobsResponse.fromPartial({ jobs: page.jobs.map(jobToProto), nextPageToken: page.next ? encodePageToken(cursorToToken(page.next), filters) : "" });
    }),

    watchJob: serverStream(J.watchJob, async (req, ctx) => {
      const id = requireString("id", req.id, ID_RULES);
      for await (const update of jobs.watchJob(ctx.principal, id, ctx.signal)) {
        await ctx.send(WatchJobResponse.fromPartial({ job: jobToProto(update.job), event: update.event ? jobEventToProto(update.event) : undefined }));
      }
    }),

    listJobEvents: unary(J.listJobEvents, async (req, ctx) => {
      const id = requireString("id", req.id, ID_RULES);
      return ListJobEventsResponse.fromPartial({ events: (await jobs.listEvents(ctx.principal, id)).map(jobEventToProto) });
    }),

    cancelJob: unary(J.cancelJob, async (req, ctx) => {
      const { id, reason } = validateOne((v) => ({ id: v.string("id", req.id, ID_RULES), reason: v.optionalString("reason", req.reason, { max: 1024 }) }));
      return CancelJobResponse.fromPartial({ job: jobToProto(await jobs.cancelJob(ctx.principal, id, reason)) });
    }),

    retryJob: unary(J.retryJob, async (req, ctx) => {
      const { id, key } = validateOne((v) => ({ id: v.string("id", req.id, ID_RULES), key: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES) }));
      return RetryJobResponse.fromPartial({ job: jobToProto(await jobs.retryJob(ctx.principal, id, key || null)) });
    }),

    runDiagnosticJob: unary(J.runDiagnosticJob, async (req, ctx) => {
      const { payload, key } = validateOne((v) => ({ payload: diagnosticPayload(v, req), key: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES) }));
      const { job } = await jobs.createJob({ kind: DIAGNOSTIC_KIND, payload, requester: ctx.principal, idempotencyKey: key || null, resource: null });
      return RunDiagnosticJobResponse.fromPartial({ job: jobToProto(job) });
    }),
  });
}
