// The dispatcher's typed gRPC client for internal services, the CLI and tests (package export "./client").
import { readFileSync } from "node:fs";
import { Client, credentials, type ChannelCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { CancelJobRequest, GetJobRequest, JobServiceService, ListJobEventsRequest, ListJobsRequest, RetryJobRequest, RunDiagnosticJobRequest, WatchJobRequest } from "../gen/proto/dispatcher/v1/jobs.js";
import {
  AddGroupMemberRequest,
  ApiKeyServiceService,
  CreateApiKeyRequest,
  CreateGroupRequest,
  CreateUserRequest,
  DeleteGroupRequest,
  DeleteUserRequest,
  GetGroupRequest,
  GetRoleRequest,
  GetUserRequest,
  GroupServiceService,
  ListApiKeysRequest,
  ListGroupsRequest,
  ListRolesRequest,
  ListUsersRequest,
  RemoveGroupMemberRequest,
  RevokeApiKeyRequest,
  RoleServiceService,
  SetGroupAccountsRequest,
  SetGroupRolesRequest,
  UpdateGroupRequest,
  UpdateUserRequest,
  UserServiceService,
} from "../gen/proto/dispatcher/v1/iam.js";
import {
  AccountServiceService,
  BudgetCodeServiceService,
  CloudServiceService,
  CreateAccountRequest,
  CreateBudgetCodeRequest,
  DiscoverAccountRequest,
  ListAccountEventsRequest,
  ListSubscriptionsRequest,
  CreateCloudRequest,
  DeleteBudgetCodeRequest,
  DeleteCloudRequest,
  GetAccountRequest,
  GetBudgetCodeRequest,
  GetCloudRequest,
  GrantBudgetCodeRequest,
  ListAccountsRequest,
  ListBudgetCodesRequest,
  ListCloudsRequest,
  RevokeBudgetCodeRequest,
  UpdateBudgetCodeRequest,
  UpdateCloudRequest,
} from "../gen/proto/dispatcher/v1/provisioning.js";
import {
  GetServerRequest,
  LaunchServerRequest,
  ListImagesRequest,
  ListProductsRequest,
  ListServerEventsRequest,
  SetServerFirewallsRequest,
  ListServersRequest,
  RebootServerRequest,
  ServerServiceService,
  StartServerRequest,
  StopServerRequest,
  TerminateServerRequest,
} from "../gen/proto/dispatcher/v1/servers.js";
import { GetServerAgentRequest, RunFleetCommandRequest, RunServerScriptRequest, ServerAgentServiceService } from "../gen/proto/dispatcher/v1/agents.js";
import * as network from "../gen/proto/dispatcher/v1/network.js";
import * as storage from "../gen/proto/dispatcher/v1/storage.js";
import * as files from "../gen/proto/dispatcher/v1/files.js";
import { GetServerInfoRequest, SystemServiceService, WhoAmIRequest } from "../gen/proto/dispatcher/v1/system.js";
import { GetJobTraceRequest, TraceServiceService } from "../gen/proto/dispatcher/v1/traces.js";
import { GetQueueStatsRequest, ListDeadLettersRequest, QueueServiceService, ReplayDeadLetterRequest } from "../gen/proto/dispatcher/v1/queues.js";
import { AnalyticsServiceService, FleetSummaryRequest, QueryServerMetricsRequest, ReportUsageRequest } from "../gen/proto/dispatcher/v1/analytics.js";
import { AuditServiceService, ListAuditEventsRequest } from "../gen/proto/dispatcher/v1/audit.js";
import { promiseClient, type CallDefaults, type PromiseClient } from "./calls.js";
import { healthClient, type HealthClient } from "./health.js";
import { DEFAULT_RETRY, idempotentMethods, loadDescriptorSet, retryServiceConfig, type RetryOptions } from "./service-config.js";

export { DispatcherError } from "./errors.js";
export { checkHealth, type HealthClient, type HealthStatus } from "./health.js";
export type { CallOptions, PromiseClient } from "./calls.js";
export { DEFAULT_RETRY, idempotentMethods, retryServiceConfig, type MethodName, type RetryOptions } from "./service-config.js";

/** PEM contents (or file paths ending in .pem/.crt/.key) for TLS; `true` means TLS with the system roots. */
export interface TlsOptions {
  ca?: Buffer | string;
  cert?: Buffer | string;
  key?: Buffer | string;
}

export interface DispatcherClientOptions {
  /** host:port of the dispatcher (any grpc-js target). */
  address: string;
  /** API key sent as `authorization: Bearer <token>` on every call; omitted when absent. */
  token?: string | undefined;
  /** Plaintext when absent or false. */
  tls?: boolean | TlsOptions | undefined;
  /** Deadline of every unary call without its own (default 30 s; 0: none). Streams have none unless given. */
  defaultDeadlineMs?: number;
  /**
   * Retries on UNAVAILABLE: idempotent methods (NO_SIDE_EFFECTS / IDEMPOTENT in the proto) through the channel's gRPC
   * service config, and mutating calls that carry an idempotency key (generated when the request leaves it empty)
   * with the same key, exponential backoff and full jitter. false disables retries (keys are still generated).
   */
  retry?: Partial<RetryOptions> | false;
  /** Extra grpc-js channel options. */
  channelOptions?: ChannelOptions;
}

const SYSTEM_REQUESTS = { getServerInfo: GetServerInfoRequest, whoAmI: WhoAmIRequest };
const JOB_REQUESTS = {
  getJob: GetJobRequest,
  listJobs: ListJobsRequest,
  watchJob: WatchJobRequest,
  listJobEvents: ListJobEventsRequest,
  cancelJob: CancelJobRequest,
  retryJob: RetryJobRequest,
  runDiagnosticJob: RunDiagnosticJobRequest,
};

const TRACE_REQUESTS = { getJobTrace: GetJobTraceRequest };
const QUEUE_REQUESTS = { getQueueStats: GetQueueStatsRequest, listDeadLetters: ListDeadLettersRequest, replayDeadLetter: ReplayDeadLetterRequest };

const USER_REQUESTS = { createUser: CreateUserRequest, getUser: GetUserRequest, listUsers: ListUsersRequest, updateUser: UpdateUserRequest, deleteUser: DeleteUserRequest };
const GROUP_REQUESTS = {
  createGroup: CreateGroupRequest,
  getGroup: GetGroupRequest,
  listGroups: ListGroupsRequest,
  updateGroup: UpdateGroupRequest,
  deleteGroup: DeleteGroupRequest,
  addGroupMember: AddGroupMemberRequest,
  removeGroupMember: RemoveGroupMemberRequest,
  setGroupRoles: SetGroupRolesRequest,
  setGroupAccounts: SetGroupAccountsRequest,
};
const ROLE_REQUESTS = { listRoles: ListRolesRequest, getRole: GetRoleRequest };
const API_KEY_REQUESTS = { createApiKey: CreateApiKeyRequest, listApiKeys: ListApiKeysRequest, revokeApiKey: RevokeApiKeyRequest };
const CLOUD_REQUESTS = { createCloud: CreateCloudRequest, getCloud: GetCloudRequest, listClouds: ListCloudsRequest, updateCloud: UpdateCloudRequest, deleteCloud: DeleteCloudRequest };
const ACCOUNT_REQUESTS = {
  createAccount: CreateAccountRequest,
  getAccount: GetAccountRequest,
  listAccounts: ListAccountsRequest,
  discoverAccount: DiscoverAccountRequest,
  listSubscriptions: ListSubscriptionsRequest,
  listAccountEvents: ListAccountEventsRequest,
};
const SERVER_REQUESTS = {
  launchServer: LaunchServerRequest,
  startServer: StartServerRequest,
  stopServer: StopServerRequest,
  rebootServer: RebootServerRequest,
  terminateServer: TerminateServerRequest,
  getServer: GetServerRequest,
  listServers: ListServersRequest,
  listServerEvents: ListServerEventsRequest,
  setServerFirewalls: SetServerFirewallsRequest,
  listProducts: ListProductsRequest,
  listImages: ListImagesRequest,
};
const FIREWALL_REQUESTS = {
  createFirewall: network.CreateFirewallRequest,
  getFirewall: network.GetFirewallRequest,
  listFirewalls: network.ListFirewallsRequest,
  deleteFirewall: network.DeleteFirewallRequest,
  addFirewallRule: network.AddFirewallRuleRequest,
  removeFirewallRule: network.RemoveFirewallRuleRequest,
  setFirewallTags: network.SetFirewallTagsRequest,
  listFirewallEvents: network.ListFirewallEventsRequest,
};
const ADDRESS_REQUESTS = {
  allocateAddress: network.AllocateAddressRequest,
  getAddress: network.GetAddressRequest,
  listAddresses: network.ListAddressesRequest,
  associateAddress: network.AssociateAddressRequest,
  disassociateAddress: network.DisassociateAddressRequest,
  releaseAddress: network.ReleaseAddressRequest,
  setAddressTags: network.SetAddressTagsRequest,
  listAddressEvents: network.ListAddressEventsRequest,
};
const KEY_PAIR_REQUESTS = {
  importKeyPair: network.ImportKeyPairRequest,
  createKeyPair: network.CreateKeyPairRequest,
  getKeyPair: network.GetKeyPairRequest,
  listKeyPairs: network.ListKeyPairsRequest,
  deleteKeyPair: network.DeleteKeyPairRequest,
  listKeyPairEvents: network.ListKeyPairEventsRequest,
  setKeyPairTags: network.SetKeyPairTagsRequest,
};
const BUDGET_CODE_REQUESTS = {
  createBudgetCode: CreateBudgetCodeRequest,
  getBudgetCode: GetBudgetCodeRequest,
  listBudgetCodes: ListBudgetCodesRequest,
  updateBudgetCode: UpdateBudgetCodeRequest,
  deleteBudgetCode: DeleteBudgetCodeRequest,
  grantBudgetCode: GrantBudgetCodeRequest,
  revokeBudgetCode: RevokeBudgetCodeRequest,
};

export type UserClient = PromiseClient<typeof UserServiceService, typeof USER_REQUESTS>;
export type GroupClient = PromiseClient<typeof GroupServiceService, typeof GROUP_REQUESTS>;
export type RoleClient = PromiseClient<typeof RoleServiceService, typeof ROLE_REQUESTS>;
export type ApiKeyClient = PromiseClient<typeof ApiKeyServiceService, typeof API_KEY_REQUESTS>;
export type CloudClient = PromiseClient<typeof CloudServiceService, typeof CLOUD_REQUESTS>;
export type AccountClient = PromiseClient<typeof AccountServiceService, typeof ACCOUNT_REQUESTS>;
export type ServerClient = PromiseClient<typeof ServerServiceService, typeof SERVER_REQUESTS>;
export type FirewallClient = PromiseClient<typeof network.FirewallServiceService, typeof FIREWALL_REQUESTS>;
export type AddressClient = PromiseClient<typeof network.AddressServiceService, typeof ADDRESS_REQUESTS>;
export type KeyPairClient = PromiseClient<typeof network.KeyPairServiceService, typeof KEY_PAIR_REQUESTS>;
const VOLUME_REQUESTS = {
  createVolume: storage.CreateVolumeRequest,
  getVolume: storage.GetVolumeRequest,
  listVolumes: storage.ListVolumesRequest,
  attachVolume: storage.AttachVolumeRequest,
  detachVolume: storage.DetachVolumeRequest,
  deleteVolume: storage.DeleteVolumeRequest,
  setVolumeTags: storage.SetVolumeTagsRequest,
  listVolumeEvents: storage.ListVolumeEventsRequest,
};
const SNAPSHOT_REQUESTS = {
  createSnapshot: storage.CreateSnapshotRequest,
  getSnapshot: storage.GetSnapshotRequest,
  listSnapshots: storage.ListSnapshotsRequest,
  deleteSnapshot: storage.DeleteSnapshotRequest,
  listSnapshotEvents: storage.ListSnapshotEventsRequest,
};
const IMAGE_REQUESTS = {
  createImage: storage.CreateImageRequest,
  getImage: storage.GetImageRequest,
  listMachineImages: storage.ListMachineImagesRequest,
  deleteImage: storage.DeleteImageRequest,
  listImageEvents: storage.ListImageEventsRequest,
};
export type VolumeClient = PromiseClient<typeof storage.VolumeServiceService, typeof VOLUME_REQUESTS>;
export type SnapshotClient = PromiseClient<typeof storage.SnapshotServiceService, typeof SNAPSHOT_REQUESTS>;
export type ImageClient = PromiseClient<typeof storage.ImageServiceService, typeof IMAGE_REQUESTS>;
const AGENT_REQUESTS = { getServerAgent: GetServerAgentRequest, runServerScript: RunServerScriptRequest, runFleetCommand: RunFleetCommandRequest };
const FILE_REQUESTS = {
  createBucket: files.CreateBucketRequest,
  getBucket: files.GetBucketRequest,
  listBuckets: files.ListBucketsRequest,
  deleteBucket: files.DeleteBucketRequest,
  listBucketEvents: files.ListBucketEventsRequest,
  listObjects: files.ListObjectsRequest,
  getObjectMetadata: files.GetObjectMetadataRequest,
  deleteObject: files.DeleteObjectRequest,
  uploadObject: files.UploadObjectRequest,
  downloadObject: files.DownloadObjectRequest,
  startUpload: files.StartUploadRequest,
  uploadPart: files.UploadPartRequest,
  completeUpload: files.CompleteUploadRequest,
  abortUpload: files.AbortUploadRequest,
};
export type FileClient = PromiseClient<typeof files.FileServiceService, typeof FILE_REQUESTS>;
export type AgentClient = PromiseClient<typeof ServerAgentServiceService, typeof AGENT_REQUESTS>;
export type BudgetCodeClient = PromiseClient<typeof BudgetCodeServiceService, typeof BUDGET_CODE_REQUESTS>;
const ANALYTICS_REQUESTS = { queryServerMetrics: QueryServerMetricsRequest, fleetSummary: FleetSummaryRequest, reportUsage: ReportUsageRequest };

export type AnalyticsClient = PromiseClient<typeof AnalyticsServiceService, typeof ANALYTICS_REQUESTS>;
export type SystemClient = PromiseClient<typeof SystemServiceService, typeof SYSTEM_REQUESTS>;
export type JobClient = PromiseClient<typeof JobServiceService, typeof JOB_REQUESTS>;
export type TraceClient = PromiseClient<typeof TraceServiceService, typeof TRACE_REQUESTS>;
export type QueueClient = PromiseClient<typeof QueueServiceService, typeof QUEUE_REQUESTS>;
const AUDIT_REQUESTS = { listAuditEvents: ListAuditEventsRequest };
export type AuditClient = PromiseClient<typeof AuditServiceService, typeof AUDIT_REQUESTS>;

export interface DispatcherClients {
  system: SystemClient;
  jobs: JobClient;
  /** Jobs' traces from the dispatcher's embedded span store (dispatcher.v1.TraceService). */
  traces: TraceClient;
  /** Outbox, consumer and dead letters; replaying a dead letter (dispatcher.v1.QueueService). */
  queues: QueueClient;
  users: UserClient;
  groups: GroupClient;
  roles: RoleClient;
  apiKeys: ApiKeyClient;
  clouds: CloudClient;
  budgetCodes: BudgetCodeClient;
  accounts: AccountClient;
  servers: ServerClient;
  /** Firewalls, static addresses and key pairs (dispatcher.v1 network services). */
  firewalls: FirewallClient;
  addresses: AddressClient;
  keyPairs: KeyPairClient;
  /** Volumes, snapshots and machine images (dispatcher.v1 storage services). */
  volumes: VolumeClient;
  snapshots: SnapshotClient;
  images: ImageClient;
  /** Buckets and their objects (dispatcher.v1.FileService): uploads are client streams, downloads server streams. */
  files: FileClient;
  /** Agents of servers and commands run through them (dispatcher.v1.ServerAgentService). */
  agents: AgentClient;
  analytics: AnalyticsClient;
  /** Who changed what (dispatcher.v1.AuditService; admins only). */
  audit: AuditClient;
  health: HealthClient;
  /** The underlying grpc-js client (one channel shared by all). */
  readonly grpc: Client;
  close(): void;
}

export function createDispatcherClients(options: DispatcherClientOptions): DispatcherClients {
  const channelOptions: ChannelOptions = { ...options.channelOptions };
  let keyedRetry: CallDefaults["keyedRetry"];
  if (options.retry === false) {
    channelOptions["grpc.enable_retries"] = 0;
  } else {
    const retry = { ...DEFAULT_RETRY, ...options.retry };
    const idempotent = idempotentMethods(loadDescriptorSet());
    channelOptions["grpc.service_config"] = retryServiceConfig(idempotent, retry);
    keyedRetry = { ...retry, channelRetried: new Set(idempotent.map((m) => `/${m.service}/${m.method}`)) };
  }
  const client = new Client(options.address, channelCredentials(options.tls), channelOptions);
  const defaults: CallDefaults = { token: options.token, defaultDeadlineMs: options.defaultDeadlineMs ?? 30_000, keyedRetry };
  return {
    system: promiseClient(client, SystemServiceService, SYSTEM_REQUESTS, defaults),
    jobs: promiseClient(client, JobServiceService, JOB_REQUESTS, defaults),
    traces: promiseClient(client, TraceServiceService, TRACE_REQUESTS, defaults),
    queues: promiseClient(client, QueueServiceService, QUEUE_REQUESTS, defaults),
    users: promiseClient(client, UserServiceService, USER_REQUESTS, defaults),
    groups: promiseClient(client, GroupServiceService, GROUP_REQUESTS, defaults),
    roles: promiseClient(client, RoleServiceService, ROLE_REQUESTS, defaults),
    apiKeys: promiseClient(client, ApiKeyServiceService, API_KEY_REQUESTS, defaults),
    clouds: promiseClient(client, CloudServiceService, CLOUD_REQUESTS, defaults),
    budgetCodes: promiseClient(client, BudgetCodeServiceService, BUDGET_CODE_REQUESTS, defaults),
    accounts: promiseClient(client, AccountServiceService, ACCOUNT_REQUESTS, defaults),
    servers: promiseClient(client, ServerServiceService, SERVER_REQUESTS, defaults),
    firewalls: promiseClient(client, network.FirewallServiceService, FIREWALL_REQUESTS, defaults),
    addresses: promiseClient(client, network.AddressServiceService, ADDRESS_REQUESTS, defaults),
    keyPairs: promiseClient(client, network.KeyPairServiceService, KEY_PAIR_REQUESTS, defaults),
    volumes: promiseClient(client, storage.VolumeServiceService, VOLUME_REQUESTS, defaults),
    snapshots: promiseClient(client, storage.SnapshotServiceService, SNAPSHOT_REQUESTS, defaults),
    images: promiseClient(client, storage.ImageServiceService, IMAGE_REQUESTS, defaults),
    files: promiseClient(client, files.FileServiceService, FILE_REQUESTS, defaults),
    agents: promiseClient(client, ServerAgentServiceService, AGENT_REQUESTS, defaults),
    analytics: promiseClient(client, AnalyticsServiceService, ANALYTICS_REQUESTS, defaults),
    audit: promiseClient(client, AuditServiceService, AUDIT_REQUESTS, defaults),
    health: healthClient(client, defaults),
    grpc: client,
    close: () => client.close(),
  };
}

function channelCredentials(tls: DispatcherClientOptions["tls"]): ChannelCredentials {
  if (!tls) return credentials.createInsecure();
  if (tls === true) return credentials.createSsl();
  return credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert));
}

function pem(value: Buffer | string | undefined): Buffer | null {
  if (value === undefined) return null;
  if (Buffer.isBuffer(value)) return value;
  return value.includes("-----BEGIN") ? Buffer.from(value) : readFileSync(value);
}
