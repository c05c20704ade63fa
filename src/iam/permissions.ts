// Authorization: which permission each RPC method needs (the permission table), which permissions each role grants, and
// whether a principal may exercise one. rpc enforces it on every call; services ask it for the checks of their own.
// Default deny: a method missing from METHOD_PERMISSIONS is refused to everyone (test/rpc checks that none is missing).

import type { Principal } from "./principal.js";

/** A method anyone may call without credentials. */
export const PUBLIC = "public";

/** The caller of a PUBLIC method who presented no credentials. */
export const ANONYMOUS: Readonly<Principal> = Object.freeze({ id: "anonymous", kind: "user", roles: [], displayName: "anonymous" });

/**
 * Method full name → the permission it needs. Permissions are "<area>.<verb>"; "*.read" ones only read.
 * "admin.*" permissions are for admins alone; "finance.*" for admins and the finance role; operators get everything
 * else but joining as an agent; "*.self" ones act on the caller's own objects and every built-in role grants them.
 */
export const METHOD_PERMISSIONS: Readonly<Record<string, string>> = Object.freeze({
  // Health stays open for load balancers and orchestrators (DESIGN: the one exception).
  "/grpc.health.v1.Health/Check": PUBLIC,
  "/grpc.health.v1.Health/Watch": PUBLIC,
  "/grpc.health.v1.Health/List": PUBLIC,
  // Reflection: open in development mode, behind authentication when enabled in production (see src/rpc/server.ts).
  "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": "system.read",
  "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": "system.read",

  "/dispatcher.v1.SystemService/GetServerInfo": "system.read",
  "/dispatcher.v1.SystemService/WhoAmI": "system.read",

  "/dispatcher.v1.JobService/GetJob": "jobs.read",
  "/dispatcher.v1.JobService/ListJobs": "jobs.read",
  "/dispatcher.v1.JobService/WatchJob": "jobs.read",
  "/dispatcher.v1.JobService/ListJobEvents": "jobs.read",
  "/dispatcher.v1.JobService/CancelJob": "jobs.cancel",
  "/dispatcher.v1.JobService/RetryJob": "jobs.retry",
  "/dispatcher.v1.JobService/RunDiagnosticJob": "admin.diagnostics",
  // A job's trace is read under the job's own scope (the traces service asks the job service).
  "/dispatcher.v1.TraceService/GetJobTrace": "jobs.read",
  // Queues: the figures (counts only) to anyone who may read; dead letters follow their jobs' scope; a replay is a
  // retry of the job (operators and admins), with the job kind's own permission checked as RetryJob does.
  "/dispatcher.v1.QueueService/GetQueueStats": "queues.read",
  "/dispatcher.v1.QueueService/ListDeadLetters": "jobs.read",
  "/dispatcher.v1.QueueService/ReplayDeadLetter": "jobs.retry",

  // KM: credentials.use (plaintext fields) is service-only whatever the roles (SERVICE_ONLY_PERMISSIONS); the KM
  // service checks it again. Key rotation and re-wrap are admin.* (admins only).
  "/km.v1.KeyManagementService/StoreCredential": "credentials.write",
  "/km.v1.KeyManagementService/GetCredential": "credentials.use",
  "/km.v1.KeyManagementService/BatchGetCredentials": "credentials.use",
  "/km.v1.KeyManagementService/ListCredentials": "credentials.read",
  "/km.v1.KeyManagementService/DeleteCredential": "credentials.write",
  "/km.v1.KeyManagementService/RotateMasterKey": "admin.keys",
  "/km.v1.KeyManagementService/RewrapCredentials": "admin.keys",

  // IAM: anyone may read users, groups and roles; changing them is admin.* (an operator who could grant roles could
  // grant themselves admin). "*.self" permissions act on the caller's own objects and every built-in role has them;
  // the API key service itself refuses other users' keys to non-admins.
  "/dispatcher.v1.UserService/CreateUser": "admin.users",
  "/dispatcher.v1.UserService/GetUser": "users.read",
  "/dispatcher.v1.UserService/ListUsers": "users.read",
  "/dispatcher.v1.UserService/UpdateUser": "admin.users",
  "/dispatcher.v1.UserService/DeleteUser": "admin.users",
  "/dispatcher.v1.GroupService/CreateGroup": "admin.groups",
  "/dispatcher.v1.GroupService/GetGroup": "groups.read",
  "/dispatcher.v1.GroupService/ListGroups": "groups.read",
  "/dispatcher.v1.GroupService/UpdateGroup": "admin.groups",
  "/dispatcher.v1.GroupService/DeleteGroup": "admin.groups",
  "/dispatcher.v1.GroupService/AddGroupMember": "admin.groups",
  "/dispatcher.v1.GroupService/RemoveGroupMember": "admin.groups",
  "/dispatcher.v1.GroupService/SetGroupRoles": "admin.groups",
  "/dispatcher.v1.GroupService/SetGroupAccounts": "admin.groups",
  "/dispatcher.v1.RoleService/ListRoles": "roles.read",
  "/dispatcher.v1.RoleService/GetRole": "roles.read",
  "/dispatcher.v1.ApiKeyService/CreateApiKey": "apikeys.self",
  "/dispatcher.v1.ApiKeyService/ListApiKeys": "apikeys.self",
  "/dispatcher.v1.ApiKeyService/RevokeApiKey": "apikeys.self",
  // The audit trail names who changed what across every tenant: admins only.
  "/dispatcher.v1.AuditService/ListAuditEvents": "admin.audit",

  // Provisioning: anyone may read clouds. Clouds are admin.* (an endpoint is where the dispatcher sends account
  // credentials). Budget codes are read by admins and finance whole, by everyone else only the codes they hold (the
  // service scopes it); their existence, name, state and quotas are finance.* (admins and the finance role: an
  // operator who could change them could lift their own spending limit); granting a code (who may spend) is admin.*.
  "/dispatcher.v1.CloudService/CreateCloud": "admin.clouds",
  "/dispatcher.v1.CloudService/GetCloud": "clouds.read",
  "/dispatcher.v1.CloudService/ListClouds": "clouds.read",
  "/dispatcher.v1.CloudService/UpdateCloud": "admin.clouds",
  "/dispatcher.v1.CloudService/DeleteCloud": "admin.clouds",
  // Connecting an account hands credentials to KM: admins only. Reads are scoped to the caller's accounts.
  "/dispatcher.v1.AccountService/CreateAccount": "admin.accounts",
  "/dispatcher.v1.AccountService/GetAccount": "accounts.read",
  "/dispatcher.v1.AccountService/ListAccounts": "accounts.read",
  "/dispatcher.v1.AccountService/ListSubscriptions": "accounts.read",
  "/dispatcher.v1.AccountService/ListAccountEvents": "accounts.read",
  // Re-discovery calls the cloud with the account's credentials: operators (scoped to their accounts) and admins.
  "/dispatcher.v1.AccountService/DiscoverAccount": "accounts.discover",
  "/dispatcher.v1.BudgetCodeService/CreateBudgetCode": "finance.budgets",
  "/dispatcher.v1.BudgetCodeService/GetBudgetCode": "budgets.read",
  "/dispatcher.v1.BudgetCodeService/ListBudgetCodes": "budgets.read",
  "/dispatcher.v1.BudgetCodeService/UpdateBudgetCode": "finance.budgets",
  "/dispatcher.v1.BudgetCodeService/DeleteBudgetCode": "finance.budgets",
  "/dispatcher.v1.BudgetCodeService/GrantBudgetCode": "admin.budgets",
  "/dispatcher.v1.BudgetCodeService/RevokeBudgetCode": "admin.budgets",

  // Servers: reads and changes are scoped to the caller's accounts; launching also needs a budget code the caller holds.
  "/dispatcher.v1.ServerService/LaunchServer": "servers.launch",
  "/dispatcher.v1.ServerService/StartServer": "servers.control",
  "/dispatcher.v1.ServerService/StopServer": "servers.control",
  "/dispatcher.v1.ServerService/RebootServer": "servers.control",
  "/dispatcher.v1.ServerService/TerminateServer": "servers.control",
  "/dispatcher.v1.ServerService/GetServer": "servers.read",
  "/dispatcher.v1.ServerService/ListServers": "servers.read",
  "/dispatcher.v1.ServerService/ListServerEvents": "servers.read",
  "/dispatcher.v1.ServerService/ListProducts": "servers.read",
  "/dispatcher.v1.ServerService/ListImages": "servers.read",
  // Which firewalls a server is in is a change of the server (operators and admins, scoped to their accounts).
  "/dispatcher.v1.ServerService/SetServerFirewalls": "servers.control",
  "/dispatcher.v1.ServerService/SetServerTags": "servers.control",

  // Agents: Register is called with a join token as the only credential (an "agent-join" principal, which may do
  // nothing else; src/agent/join-tokens.ts); the service consumes the token. Agent reads follow servers; running a
  // command on a server is agents.execute (operators and admins, scoped to their accounts).
  "/dispatcher.v1.AgentRegistrationService/Register": "agents.join",
  // A registered agent renewing its certificate (an "agent-renew" principal whose signature the service verifies).
  "/dispatcher.v1.AgentRegistrationService/RenewAgent": "agents.renew",
  "/dispatcher.v1.ServerAgentService/GetServerAgent": "servers.read",
  "/dispatcher.v1.ServerAgentService/RunServerScript": "agents.execute",
  // A command on many servers at once (and agents.execute, checked by the service, for each of them).
  "/dispatcher.v1.ServerAgentService/RunFleetCommand": "agents.execute_fleet",

  // Network resources: reads are scoped to the caller's accounts like servers; changes start jobs (operators).
  "/dispatcher.v1.FirewallService/CreateFirewall": "firewalls.write",
  "/dispatcher.v1.FirewallService/GetFirewall": "firewalls.read",
  "/dispatcher.v1.FirewallService/ListFirewalls": "firewalls.read",
  "/dispatcher.v1.FirewallService/DeleteFirewall": "firewalls.write",
  "/dispatcher.v1.FirewallService/AddFirewallRule": "firewalls.write",
  "/dispatcher.v1.FirewallService/RemoveFirewallRule": "firewalls.write",
  "/dispatcher.v1.FirewallService/SetFirewallTags": "firewalls.write",
  "/dispatcher.v1.FirewallService/ListFirewallEvents": "firewalls.read",
  "/dispatcher.v1.AddressService/AllocateAddress": "addresses.write",
  "/dispatcher.v1.AddressService/GetAddress": "addresses.read",
  "/dispatcher.v1.AddressService/ListAddresses": "addresses.read",
  "/dispatcher.v1.AddressService/AssociateAddress": "addresses.write",
  "/dispatcher.v1.AddressService/DisassociateAddress": "addresses.write",
  "/dispatcher.v1.AddressService/ReleaseAddress": "addresses.write",
  "/dispatcher.v1.AddressService/SetAddressTags": "addresses.write",
  "/dispatcher.v1.AddressService/ListAddressEvents": "addresses.read",
  "/dispatcher.v1.KeyPairService/ImportKeyPair": "keypairs.write",
  "/dispatcher.v1.KeyPairService/CreateKeyPair": "keypairs.write",
  "/dispatcher.v1.KeyPairService/GetKeyPair": "keypairs.read",
  "/dispatcher.v1.KeyPairService/ListKeyPairs": "keypairs.read",
  "/dispatcher.v1.KeyPairService/DeleteKeyPair": "keypairs.write",
  "/dispatcher.v1.KeyPairService/SetKeyPairTags": "keypairs.write",
  "/dispatcher.v1.KeyPairService/ListKeyPairEvents": "keypairs.read",

  // Storage: reads are scoped to the caller's accounts; changes start jobs (operators); creates also need a budget code
  // the caller holds, since storage costs per GiB-hour.
  "/dispatcher.v1.VolumeService/CreateVolume": "volumes.write",
  "/dispatcher.v1.VolumeService/GetVolume": "volumes.read",
  "/dispatcher.v1.VolumeService/ListVolumes": "volumes.read",
  "/dispatcher.v1.VolumeService/AttachVolume": "volumes.write",
  "/dispatcher.v1.VolumeService/DetachVolume": "volumes.write",
  "/dispatcher.v1.VolumeService/DeleteVolume": "volumes.write",
  "/dispatcher.v1.VolumeService/SetVolumeTags": "volumes.write",
  "/dispatcher.v1.VolumeService/ListVolumeEvents": "volumes.read",
  "/dispatcher.v1.SnapshotService/CreateSnapshot": "snapshots.write",
  "/dispatcher.v1.SnapshotService/GetSnapshot": "snapshots.read",
  "/dispatcher.v1.SnapshotService/ListSnapshots": "snapshots.read",
  "/dispatcher.v1.SnapshotService/DeleteSnapshot": "snapshots.write",
  "/dispatcher.v1.SnapshotService/ListSnapshotEvents": "snapshots.read",
  "/dispatcher.v1.ImageService/CreateImage": "images.write",
  "/dispatcher.v1.ImageService/GetImage": "images.read",
  "/dispatcher.v1.ImageService/ListMachineImages": "images.read",
  "/dispatcher.v1.ImageService/DeleteImage": "images.write",
  "/dispatcher.v1.ImageService/ListImageEvents": "images.read",
  // Files (object storage): reads (listing, metadata, downloads) are scoped to the caller's accounts; bucket changes
  // start jobs and object writes go to the cloud (operators).
  "/dispatcher.v1.FileService/CreateBucket": "files.write",
  "/dispatcher.v1.FileService/GetBucket": "files.read",
  "/dispatcher.v1.FileService/ListBuckets": "files.read",
  "/dispatcher.v1.FileService/DeleteBucket": "files.write",
  "/dispatcher.v1.FileService/ListBucketEvents": "files.read",
  "/dispatcher.v1.FileService/ListObjects": "files.read",
  "/dispatcher.v1.FileService/GetObjectMetadata": "files.read",
  "/dispatcher.v1.FileService/DeleteObject": "files.write",
  "/dispatcher.v1.FileService/UploadObject": "files.write",
  "/dispatcher.v1.FileService/DownloadObject": "files.read",
  "/dispatcher.v1.FileService/StartUpload": "files.write",
  "/dispatcher.v1.FileService/UploadPart": "files.write",
  "/dispatcher.v1.FileService/CompleteUpload": "files.write",
  "/dispatcher.v1.FileService/AbortUpload": "files.write",

  // Analytics: metrics and fleet summaries are scoped to the caller's accounts, like servers; so are cost reports.
  "/dispatcher.v1.AnalyticsService/QueryServerMetrics": "metrics.read",
  "/dispatcher.v1.AnalyticsService/FleetSummary": "metrics.read",
  "/dispatcher.v1.AnalyticsService/ReportUsage": "costs.read",

  // On the guest: only the dispatcher, proving the agent's credential ("agent-controller"; src/guest/program.ts).
  "/agent.v1.AgentService/GetStatus": "agent.read",
  "/agent.v1.AgentService/RunScript": "agent.execute",
  "/agent.v1.AgentService/CollectMetrics": "agent.read",
  "/agent.v1.AgentService/Shutdown": "agent.execute",
});

/** The permission a method needs, PUBLIC, or undefined when the method is not in the table (deny). */
export function permissionFor(method: string): string | undefined {
  return Object.hasOwn(METHOD_PERMISSIONS, method) ? METHOD_PERMISSIONS[method] : undefined;
}

/**
 * Permissions only service principals (workers, the dispatcher) may exercise, whatever their roles: plaintext cloud
 * credentials are never handed to a person, an admin included.
 */
export const SERVICE_ONLY_PERMISSIONS: ReadonlySet<string> = new Set(["credentials.use"]);

/** Permissions operators do not get: changing who may do what (admin.*), money (finance.*), and joining as an agent. */
function operatorExcluded(permission: string): boolean {
  return permission.startsWith("admin.") || permission.startsWith("finance.") || permission === "agents.join";
}

/** What a reader gets: reads and the caller's own objects, nothing admins alone may read. */
function readerGrants(permission: string): boolean {
  return (permission.endsWith(".read") || permission.endsWith(".self")) && !permission.startsWith("admin.");
}

/** Whether one role grants one permission. Unknown roles grant nothing. */
export function roleGrants(role: string, permission: string): boolean {
  switch (role) {
    case "admin":
      return true;
    case "worker":
      // What a job worker needs from KM: the credentials of the job's account, nothing else.
      return permission === "credentials.use";
    case "operator":
      return !operatorExcluded(permission);
    case "finance":
      // Budget codes (create, rename, quotas, state, delete) and everything a reader may read.
      return permission.startsWith("finance.") || readerGrants(permission);
    case "agent-join":
      // A join token: it registers its agent, nothing else.
      return permission === "agents.join";
    case "agent-renew":
      // A registered agent: it renews its own certificate, nothing else.
      return permission === "agents.renew";
    case "agent-controller":
      // The dispatcher as an agent sees it.
      return permission === "agent.read" || permission === "agent.execute";
    case "reader":
      return readerGrants(permission);
    default:
      return false;
  }
}

/** Whether the principal may exercise the permission through any of its roles. */
export function isAllowed(principal: Principal, permission: string): boolean {
  if (SERVICE_ONLY_PERMISSIONS.has(permission) && principal.kind !== "service") return false;
  return permission === PUBLIC || principal.roles.some((role) => roleGrants(role, permission));
}
