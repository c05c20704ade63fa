// The client's side of dispatcher/v1/traces.proto: a job's spans from the embedded span store.
import { GetJobTraceRequest, TraceServiceService } from "../../gen/proto/dispatcher/v1/traces.js";

export const traces = { definition: TraceServiceService, requests: { getJobTrace: GetJobTraceRequest } };
