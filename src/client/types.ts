// The typed clients of every dispatcher.v1 service, as types only: importing this module loads no generated code.
import type { Client, ServiceDefinition } from "@grpc/grpc-js";
import type { PromiseClient, RequestTypes } from "./calls.js";
import type { HealthClient } from "./health.js";
import type { agents } from "./services/agents.js";
import type { fileStore } from "./services/files.js";
import type { analytics } from "./services/analytics.js";
import type { audit } from "./services/audit.js";
import type { apiKeys, groups, roles, users } from "./services/iam.js";
import type { jobs } from "./services/jobs.js";
import type { addresses, firewalls, keyPairs } from "./services/network.js";
import type { accounts, budgetCodes, clouds } from "./services/provisioning.js";
import type { queues } from "./services/queues.js";
import type { servers } from "./services/servers.js";
import type { images, snapshots, volumes } from "./services/storage.js";
import type { system } from "./services/system.js";
import type { traces } from "./services/traces.js";

/** The promise client of a service spec ({ definition, requests }) of ./services/. */
type ClientOf<S> = S extends { definition: infer D extends ServiceDefinition; requests: infer R } ? (R extends RequestTypes<D> ? PromiseClient<D, R> : never) : never;

export type SystemClient = ClientOf<typeof system>;
export type JobClient = ClientOf<typeof jobs>;
export type TraceClient = ClientOf<typeof traces>;
export type QueueClient = ClientOf<typeof queues>;
export type UserClient = ClientOf<typeof users>;
export type GroupClient = ClientOf<typeof groups>;
export type RoleClient = ClientOf<typeof roles>;
export type ApiKeyClient = ClientOf<typeof apiKeys>;
export type CloudClient = ClientOf<typeof clouds>;
export type AccountClient = ClientOf<typeof accounts>;
export type BudgetCodeClient = ClientOf<typeof budgetCodes>;
export type ServerClient = ClientOf<typeof servers>;
export type FirewallClient = ClientOf<typeof firewalls>;
export type AddressClient = ClientOf<typeof addresses>;
export type KeyPairClient = ClientOf<typeof keyPairs>;
export type VolumeClient = ClientOf<typeof volumes>;
export type SnapshotClient = ClientOf<typeof snapshots>;
export type ImageClient = ClientOf<typeof images>;
export type FileClient = ClientOf<typeof fileStore>;
export type AgentClient = ClientOf<typeof agents>;
export type AnalyticsClient = ClientOf<typeof analytics>;
export type AuditClient = ClientOf<typeof audit>;

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

/** The service clients of DispatcherClients, by the name they have there. */
export type ServiceKey = Exclude<keyof DispatcherClients, "health" | "grpc" | "close">;
