// The KM client for workers and the dispatcher: mutual TLS, the caller's deadline passed on, credential fields
// unsealed from the channel seal in memory only, a span per call (ids only, never a secret), and KM failures mapped
// to domain errors — an outage is an UnavailableError, which jobs retry.
import { Client, status as Code, credentials as grpcCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { keepCallsYoung } from "../runtime/young-calls.js";
import { promiseClient, type CallOptions, type PromiseClient } from "../client/calls.js";
import { DispatcherError } from "../client/errors.js";
import { DEFAULT_RETRY, idempotentMethods, loadDescriptorSet, retryServiceConfig } from "../client/service-config.js";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { DeadlineExceededError, DomainError, FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError, UnauthenticatedError, UnavailableError } from "../errors.js";
import {
  BatchGetCredentialsRequest,
  DeleteCredentialRequest,
  GetCredentialRequest,
  KeyManagementServiceService,
  ListCredentialsRequest,
  RewrapCredentialsRequest,
  RotateMasterKeyRequest,
  StoreCredentialRequest,
  type CredentialMetadata,
} from "../gen/proto/km/v1/km.js";
import { traceparentOf } from "../telemetry/propagation.js";
import { SpanKind, withSpan } from "../telemetry/spans.js";
import { createChannelOpener } from "./channel.js";
import { createGetBatches } from "./get-batches.js";
import { createUnsealer } from "./unseal.js";
import type { Keyring } from "./keys.js";
import { kmClientSettings, type KmClientSettings } from "./settings.js";
import { recordKmCall, secondsSince } from "../telemetry/metrics.js";

export type { CredentialMetadata } from "../gen/proto/km/v1/km.js";

const REQUESTS = {
  storeCredential: StoreCredentialRequest,
  getCredential: GetCredentialRequest,
  batchGetCredentials: BatchGetCredentialsRequest,
  listCredentials: ListCredentialsRequest,
  deleteCredential: DeleteCredentialRequest,
  rotateMasterKey: RotateMasterKeyRequest,
  rewrapCredentials: RewrapCredentialsRequest,
};
type Stub = PromiseClient<typeof KeyManagementServiceService, typeof REQUESTS>;

export interface KmCallOptions {
  /** The caller's deadline (e.g. the job's or the RPC's); the call fails with DEADLINE_EXCEEDED past it. */
  deadline?: Date | undefined;
  signal?: AbortSignal | undefined;
}

export interface KmClient {
  storeCredential(input: { accountId: string; type: string; fields: Record<string, string>; labels?: Record<string, string>; jobId?: string }, options?: KmCallOptions): Promise<CredentialMetadata>;
  /** The credential's fields, unsealed. Keep them for the call that needs them only; never log or persist them. */
  getCredential(input: { id: string; accountId: string; jobId?: string; purpose?: string }, options?: KmCallOptions): Promise<{ credential: CredentialMetadata; fields: Record<string, string> }>;
  /** Fetches the fields and hands them (frozen) to `use`: the shape that keeps them in scope for one call only. */
  useCredential<T>(input: { id: string; accountId: string; jobId?: string; purpose?: string }, use: (fields: Readonly<Record<string, string>>) => Promise<T>, options?: KmCallOptions): Promise<T>;
  listCredentials(input: { accountId: string; pageSize?: number; pageToken?: string }, options?: KmCallOptions): Promise<{ credentials: CredentialMetadata[]; nextPageToken: string }>;
  deleteCredential(input: { id: string; jobId?: string }, options?: KmCallOptions): Promise<void>;
  rotateMasterKey(options?: KmCallOptions): Promise<{ currentVersion: number }>;
  rewrapCredentials(input?: { limit?: number }, options?: KmCallOptions): Promise<{ rewrapped: number; remaining: number; failed: number; currentVersion: number }>;
  close(): void;
}

export interface KmClientOptions {
  address: string;
  channelKeys: Keyring;
  transport: KmClientSettings["transport"];
  /** Deadline of calls made without one (default 10 s). */
  defaultDeadlineMs?: number;
  channelOptions?: ChannelOptions;
  /**
   * Whether GetCredential calls made at the same moment go to KM as one BatchGetCredentials call (default true;
   * src/km/get-batches.ts). False sends each as a call of its own.
   */
  gatherGets?: boolean;
}

/**
 * A KM client from the configuration; `identity` picks the development client certificate (see kmClientSettings).
 * Warnings (plaintext transport, a development channel key) go to `log`. Throws ConfigError when unusable.
 */
export function createKmClientFromConfig(config: Config, identity: string, log?: Pick<Logger, "warn">, options: Pick<KmClientOptions, "gatherGets"> = {}): KmClient {
  const settings = kmClientSettings(config, identity);
  for (const warning of settings.warnings) log?.warn(warning);
  return createKmClient({ address: settings.address, channelKeys: settings.channelKeys, transport: settings.transport, ...options });
}

export function createKmClient(options: KmClientOptions): KmClient {
  // Node 20's per-request AsyncResource.bind in node:http2 keeps each call alive through young collections.
  keepCallsYoung();
  const channelOptions: ChannelOptions = {
    "grpc.service_config": retryServiceConfig(idempotentMethods(loadDescriptorSet()).filter((m) => m.service === "km.v1.KeyManagementService"), DEFAULT_RETRY),
    // No channelz service is served: its per-call counters and timestamps are CPU and garbage on every GetCredential.
    "grpc.enable_channelz": 0,
    ...options.channelOptions,
  };
  const t = options.transport;
  if (t.kind === "tls" && t.serverName) {
    channelOptions["grpc.ssl_target_name_override"] = t.serverName;
    channelOptions["grpc.default_authority"] = t.serverName;
  }
  const grpc = new Client(options.address, t.kind === "tls" ? t.credentials : grpcCredentials.createInsecure(), channelOptions);
  const defaultDeadlineMs = options.defaultDeadlineMs ?? 10_000;
  const stub: Stub = promiseClient(grpc, KeyManagementServiceService, REQUESTS, {
    token: t.kind === "plaintext" ? t.token : undefined,
    defaultDeadlineMs,
    // KM failures become domain errors by code (kmError); the caller's frames grpc-js would add cost more than they tell.
    callerStack: false,
  });

  const unseal = createUnsealer(createChannelOpener(options.channelKeys));
  const get =
    options.gatherGets === false
      ? async (r: GetCredentialRequest, o: CallOptions) => unseal.one(r, await stub.getCredential(r, o))
      : createGetBatches({ getCredential: (r, o) => stub.getCredential(r, o), batchGetCredentials: (r, o) => stub.batchGetCredentials(r, o) }, unseal, defaultDeadlineMs);

  const call = async <T>(method: string, attributes: Record<string, string>, fn: (o: CallOptions) => Promise<T>, options: KmCallOptions = {}): Promise<T> =>
    withSpan(`km.${method}`, { kind: SpanKind.INTERNAL, attributes }, async () => {
      // The trace goes along even where the gRPC instrumentation is not loaded (it overwrites this when it is).
      const traceparent = traceparentOf();
      const o: CallOptions = traceparent ? { metadata: { traceparent } } : {};
      if (options.signal) o.signal = options.signal;
      if (options.deadline) {
        const left = options.deadline.getTime() - Date.now();
        if (left <= 0) throw new DeadlineExceededError(`deadline passed before calling KM ${method}`);
        o.deadlineMs = left;
      }
      const started = performance.now();
      try {
        const result = await fn(o);
        recordKmCall(method, "ok", secondsSince(started));
        return result;
      } catch (err) {
        const failure = kmError(err, method);
        recordKmCall(method, failure.code, secondsSince(started));
        throw failure;
      }
    });

  const getCredential: KmClient["getCredential"] = (input, callOptions) =>
    call("GetCredential", ids(input), (o) => get({ id: input.id, accountId: input.accountId, jobId: input.jobId ?? "", purpose: input.purpose ?? "" }, o), callOptions);

  return {
    async storeCredential(input, o) {
      const res = await call("StoreCredential", ids({ accountId: input.accountId, jobId: input.jobId }), (co) => stub.storeCredential({ accountId: input.accountId, type: input.type, fields: input.fields, labels: input.labels ?? {}, jobId: input.jobId ?? "" }, co), o);
      if (!res.credential) throw new UnavailableError("KM answered without the credential", "KM_BAD_RESPONSE");
      return res.credential;
    },
    getCredential,
    async useCredential(input, use, o) {
      const { fields } = await getCredential(input, o);
      return use(Object.freeze(fields));
    },
    async listCredentials(input, o) {
      return call("ListCredentials", ids({ accountId: input.accountId }), (co) => stub.listCredentials({ accountId: input.accountId, pageSize: input.pageSize ?? 0, pageToken: input.pageToken ?? "" }, co), o);
    },
    async deleteCredential(input, o) {
      await call("DeleteCredential", ids(input), (co) => stub.deleteCredential({ id: input.id, jobId: input.jobId ?? "" }, co), o);
    },
    rotateMasterKey: (o) => call("RotateMasterKey", {}, (co) => stub.rotateMasterKey({}, co), o),
    rewrapCredentials: (input, o) => call("RewrapCredentials", {}, (co) => stub.rewrapCredentials({ limit: input?.limit ?? 0 }, co), o),
    close: () => grpc.close(),
  };
}

/** Span attributes: ids only. */
function ids(input: { id?: string | undefined; accountId?: string | undefined; jobId?: string | undefined }): Record<string, string> {
  const out: Record<string, string> = {};
  if (input.id) out["km.credential.id"] = input.id;
  if (input.accountId) out["km.account.id"] = input.accountId;
  if (input.jobId) out["job.id"] = input.jobId;
  return out;
}

/** KM's answer as a domain error; an unreachable or failing KM is an UnavailableError (retry later). */
export function kmError(err: unknown, method: string): DomainError {
  if (err instanceof DomainError) return err;
  const e = DispatcherError.from(err);
  const reason = e.errorInfo?.reason;
  switch (e.code) {
    case Code.NOT_FOUND:
      return new NotFoundError("credential", e.errorInfo?.metadata.id ?? "");
    case Code.INVALID_ARGUMENT:
      return e.fieldViolations.length > 0 ? new InvalidArgumentError(e.fieldViolations) : InvalidArgumentError.field("request", e.message);
    case Code.PERMISSION_DENIED:
      return new PermissionDeniedError(`KM refused ${method}: ${e.message}`, reason ?? "PERMISSION_DENIED");
    case Code.UNAUTHENTICATED:
      return new UnauthenticatedError(`KM did not recognise this client's certificate: ${e.message}`, reason ?? "UNAUTHENTICATED");
    case Code.FAILED_PRECONDITION:
      return new FailedPreconditionError(e.message, reason ?? "FAILED_PRECONDITION", [], e.errorInfo?.metadata ?? {});
    case Code.DEADLINE_EXCEEDED:
      return new DeadlineExceededError(`KM ${method} did not answer before the deadline`);
    default:
      return new UnavailableError(`KM is unavailable (${method}: ${e.codeName} ${e.message}); retry later`, "KM_UNAVAILABLE", { cause: err });
  }
}

/** Whether a KM failure may pass on its own (jobs retry it): outages, overload, deadlines. */
export function isRetryableKmError(err: unknown): boolean {
  return err instanceof UnavailableError || err instanceof DeadlineExceededError;
}
