// One grpc-js channel to the dispatcher with what every call on it shares: credentials, the API key, the default
// deadline and the retry policy (the channel's for idempotent methods, the keyed one for mutating calls).
import { readFileSync } from "node:fs";
import { Client, credentials, type ChannelCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { keepCallsYoung } from "../runtime/young-calls.js";
import type { CallDefaults } from "./calls.js";
import { DEFAULT_RETRY, generatedIdempotentMethods, retryServiceConfig, type RetryOptions } from "./service-config.js";

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

export function openChannel(options: DispatcherClientOptions): { grpc: Client; defaults: CallDefaults } {
  // Node 20's per-request AsyncResource.bind in node:http2 keeps each call alive through young collections.
  keepCallsYoung();
  // channelz (grpc-js's introspection counters, which nothing here serves) costs objects and timestamps on every call.
  const channelOptions: ChannelOptions = { "grpc.enable_channelz": 0, ...options.channelOptions };
  let keyedRetry: CallDefaults["keyedRetry"];
  if (options.retry === false) {
    channelOptions["grpc.enable_retries"] = 0;
  } else {
    const retry = { ...DEFAULT_RETRY, ...options.retry };
    const idempotent = generatedIdempotentMethods();
    channelOptions["grpc.service_config"] = retryServiceConfig(idempotent, retry);
    keyedRetry = { ...retry, channelRetried: new Set(idempotent.map((m) => `/${m.service}/${m.method}`)) };
  }
  const grpc = new Client(options.address, channelCredentials(options.tls), channelOptions);
  return { grpc, defaults: { token: options.token, defaultDeadlineMs: options.defaultDeadlineMs ?? 30_000, keyedRetry } };
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
