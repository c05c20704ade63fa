// The dispatcher methods the console calls, as gRPC-Web clients over one transport. The methods are listed here
// rather than taken from the generated service definitions, which name every method of a service and so would pull
// every message of it into the bundle.
import { GetServerAgentRequest, GetServerAgentResponse } from "../gen/dispatcher/v1/agents";
import { FleetSummaryRequest, FleetSummaryResponse, ReportUsageRequest, ReportUsageResponse } from "../gen/dispatcher/v1/analytics";
import {
  GetJobRequest,
  GetJobResponse,
  ListJobEventsRequest,
  ListJobEventsResponse,
  ListJobsRequest,
  ListJobsResponse,
  WatchJobRequest,
  WatchJobResponse,
} from "../gen/dispatcher/v1/jobs";
import { ListAccountsRequest, ListAccountsResponse, ListBudgetCodesRequest, ListBudgetCodesResponse } from "../gen/dispatcher/v1/provisioning";
import {
  GetQueueStatsRequest,
  GetQueueStatsResponse,
  ListDeadLettersRequest,
  ListDeadLettersResponse,
  ReplayDeadLetterRequest,
  ReplayDeadLetterResponse,
} from "../gen/dispatcher/v1/queues";
import { GetServerRequest, GetServerResponse, ListServerEventsRequest, ListServerEventsResponse, ListServersRequest, ListServersResponse } from "../gen/dispatcher/v1/servers";
import { WhoAmIRequest, WhoAmIResponse } from "../gen/dispatcher/v1/system";
import { GetJobTraceRequest, GetJobTraceResponse } from "../gen/dispatcher/v1/traces";
import { createClient, type MessageType, type Transport } from "./grpc-web";

function unary<Q, R>(name: string, requestType: MessageType<Q>, responseType: MessageType<R>) {
  return { name, requestType, responseType, responseStream: false as const };
}

function serverStream<Q, R>(name: string, requestType: MessageType<Q>, responseType: MessageType<R>) {
  return { name, requestType, responseType, responseStream: true as const };
}

const SYSTEM = { fullName: "dispatcher.v1.SystemService", methods: { whoAmI: unary("WhoAmI", WhoAmIRequest, WhoAmIResponse) } };
const JOBS = {
  fullName: "dispatcher.v1.JobService",
  methods: {
    getJob: unary("GetJob", GetJobRequest, GetJobResponse),
    listJobs: unary("ListJobs", ListJobsRequest, ListJobsResponse),
    listJobEvents: unary("ListJobEvents", ListJobEventsRequest, ListJobEventsResponse),
    watchJob: serverStream("WatchJob", WatchJobRequest, WatchJobResponse),
  },
};
const TRACES = { fullName: "dispatcher.v1.TraceService", methods: { getJobTrace: unary("GetJobTrace", GetJobTraceRequest, GetJobTraceResponse) } };
const QUEUES = {
  fullName: "dispatcher.v1.QueueService",
  methods: {
    getQueueStats: unary("GetQueueStats", GetQueueStatsRequest, GetQueueStatsResponse),
    listDeadLetters: unary("ListDeadLetters", ListDeadLettersRequest, ListDeadLettersResponse),
    replayDeadLetter: unary("ReplayDeadLetter", ReplayDeadLetterRequest, ReplayDeadLetterResponse),
  },
};
const SERVERS = {
  fullName: "dispatcher.v1.ServerService",
  methods: {
    getServer: unary("GetServer", GetServerRequest, GetServerResponse),
    listServers: unary("ListServers", ListServersRequest, ListServersResponse),
    listServerEvents: unary("ListServerEvents", ListServerEventsRequest, ListServerEventsResponse),
  },
};
const AGENTS = { fullName: "dispatcher.v1.ServerAgentService", methods: { getServerAgent: unary("GetServerAgent", GetServerAgentRequest, GetServerAgentResponse) } };
const ACCOUNTS = { fullName: "dispatcher.v1.AccountService", methods: { listAccounts: unary("ListAccounts", ListAccountsRequest, ListAccountsResponse) } };
const BUDGETS = { fullName: "dispatcher.v1.BudgetCodeService", methods: { listBudgetCodes: unary("ListBudgetCodes", ListBudgetCodesRequest, ListBudgetCodesResponse) } };
const ANALYTICS = {
  fullName: "dispatcher.v1.AnalyticsService",
  methods: {
    fleetSummary: unary("FleetSummary", FleetSummaryRequest, FleetSummaryResponse),
    reportUsage: unary("ReportUsage", ReportUsageRequest, ReportUsageResponse),
  },
};

export function createClients(transport: Transport) {
  return {
    system: createClient(SYSTEM, transport),
    jobs: createClient(JOBS, transport),
    traces: createClient(TRACES, transport),
    queues: createClient(QUEUES, transport),
    servers: createClient(SERVERS, transport),
    agents: createClient(AGENTS, transport),
    accounts: createClient(ACCOUNTS, transport),
    budgets: createClient(BUDGETS, transport),
    analytics: createClient(ANALYTICS, transport),
  };
}

export type Clients = ReturnType<typeof createClients>;
