// The client's side of dispatcher/v1/jobs.proto: jobs, their events, watching them, cancel, retry, the diagnostic job.
import { CancelJobRequest, GetJobRequest, JobServiceService, ListJobEventsRequest, ListJobsRequest, RetryJobRequest, RunDiagnosticJobRequest, WatchJobRequest } from "../../gen/proto/dispatcher/v1/jobs.js";

export const jobs = {
  definition: JobServiceService,
  requests: {
    getJob: GetJobRequest,
    listJobs: ListJobsRequest,
    watchJob: WatchJobRequest,
    listJobEvents: ListJobEventsRequest,
    cancelJob: CancelJobRequest,
    retryJob: RetryJobRequest,
    runDiagnosticJob: RunDiagnosticJobRequest,
  },
};
