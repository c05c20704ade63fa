// The dispatcher's typed gRPC client for internal services, the CLI and tests (package export "./client").
import { promiseClient } from "./calls.js";
import { openChannel, type DispatcherClientOptions } from "./channel.js";
import { healthClient } from "./health.js";
import { agents } from "./services/agents.js";
import { fileStore } from "./services/files.js";
import { analytics } from "./services/analytics.js";
import { audit } from "./services/audit.js";
import { apiKeys, groups, roles, users } from "./services/iam.js";
import { jobs } from "./services/jobs.js";
import { addresses, firewalls, keyPairs } from "./services/network.js";
import { accounts, budgetCodes, clouds } from "./services/provisioning.js";
import { queues } from "./services/queues.js";
import { servers } from "./services/servers.js";
import { images, snapshots, volumes } from "./services/storage.js";
import { system } from "./services/system.js";
import { traces } from "./services/traces.js";
import type { DispatcherClients } from "./types.js";

export { DispatcherError } from "./errors.js";
export { checkHealth, type HealthClient, type HealthStatus } from "./health.js";
export type { CallOptions, PromiseClient } from "./calls.js";
export type { DispatcherClientOptions, TlsOptions } from "./channel.js";
export { createLazyDispatcherClients } from "./lazy.js";
export { DEFAULT_RETRY, idempotentMethods, retryServiceConfig, type MethodName, type RetryOptions } from "./service-config.js";
export type * from "./types.js";

/** Clients of every service on one channel, their generated code loaded now (createLazyDispatcherClients: on use). */
export function createDispatcherClients(options: DispatcherClientOptions): DispatcherClients {
  const { grpc, defaults } = openChannel(options);
  return {
    system: promiseClient(grpc, system.definition, system.requests, defaults),
    jobs: promiseClient(grpc, jobs.definition, jobs.requests, defaults),
    traces: promiseClient(grpc, traces.definition, traces.requests, defaults),
    queues: promiseClient(grpc, queues.definition, queues.requests, defaults),
    users: promiseClient(grpc, users.definition, users.requests, defaults),
    groups: promiseClient(grpc, groups.definition, groups.requests, defaults),
    roles: promiseClient(grpc, roles.definition, roles.requests, defaults),
    apiKeys: promiseClient(grpc, apiKeys.definition, apiKeys.requests, defaults),
    clouds: promiseClient(grpc, clouds.definition, clouds.requests, defaults),
    budgetCodes: promiseClient(grpc, budgetCodes.definition, budgetCodes.requests, defaults),
    accounts: promiseClient(grpc, accounts.definition, accounts.requests, defaults),
    servers: promiseClient(grpc, servers.definition, servers.requests, defaults),
    firewalls: promiseClient(grpc, firewalls.definition, firewalls.requests, defaults),
    addresses: promiseClient(grpc, addresses.definition, addresses.requests, defaults),
    keyPairs: promiseClient(grpc, keyPairs.definition, keyPairs.requests, defaults),
    volumes: promiseClient(grpc, volumes.definition, volumes.requests, defaults),
    snapshots: promiseClient(grpc, snapshots.definition, snapshots.requests, defaults),
    images: promiseClient(grpc, images.definition, images.requests, defaults),
    files: promiseClient(grpc, fileStore.definition, fileStore.requests, defaults),
    agents: promiseClient(grpc, agents.definition, agents.requests, defaults),
    analytics: promiseClient(grpc, analytics.definition, analytics.requests, defaults),
    audit: promiseClient(grpc, audit.definition, audit.requests, defaults),
    health: healthClient(grpc, defaults),
    grpc,
    close: () => grpc.close(),
  };
}
