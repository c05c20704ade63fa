// The dispatcher's client of one agent (agent.v1 over gRPC): mutual TLS with this process's client certificate,
// accepting only the certificate pinned for the agent it means to call; or, on a plaintext channel (development),
// the agent's credential as `authorization: Bearer …`. Used by the pinger (monitor) and agent.run_script (worker).
import { isIPv4, isIPv6 } from "node:net";
import type { PeerCertificate } from "node:tls";
import { credentials, Metadata, status as Code, type ChannelCredentials, type ServiceError } from "@grpc/grpc-js";
import { keepCallsYoung } from "../runtime/young-calls.js";
import {
  AgentServiceClient,
  type CollectMetricsResponse,
  type GetStatusResponse,
  type RunScriptRequest,
  type RunScriptResponse,
} from "../gen/proto/agent/v1/agent.js";

export interface AgentTls {
  /** PEM of the CA certificates agents' certificates chain to. */
  ca: Buffer;
  /** This process's client certificate and key (PEM). */
  cert: Buffer;
  key: Buffer;
  /** The agent meant: its certificate's CN. */
  agentId: string;
  /** SHA-256 (hex) of the certificates accepted for it: its current one and the one before. */
  pins: string[];
}

export type AgentEndpoint = {
  address: string;
  port: number;
} & ({ tls: AgentTls } | { /** Plaintext channel: the agent's credential (derived, never stored). */ credential: string });

/** The identity check of an agent's certificate: the agent's id as CN and one of its pinned certificates. */
export function agentIdentityCheck(agentId: string, pins: readonly string[]): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const sha256 = (cert.fingerprint256 ?? "").replaceAll(":", "").toLowerCase();
    if (cert.subject?.CN !== agentId) return new Error(`the certificate does not name agent ${agentId}`);
    if (!pins.includes(sha256)) return new Error(`the certificate is not the one issued to agent ${agentId} (renewed since, or revoked)`);
    return undefined;
  };
}

function channelCredentials(endpoint: AgentEndpoint): ChannelCredentials {
  if (!("tls" in endpoint)) return credentials.createInsecure();
  const { ca, key, cert, agentId, pins } = endpoint.tls;
  return credentials.createSsl(ca, key, cert, { checkServerIdentity: agentIdentityCheck(agentId, pins) });
}

export interface AgentCallOptions {
  deadline: Date;
  signal?: AbortSignal | undefined;
}

/** A call to an agent failed; `code` is the gRPC status (UNAVAILABLE, DEADLINE_EXCEEDED: not reached). */
export class AgentCallError extends Error {
  constructor(
    readonly code: Code,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "AgentCallError";
  }

  /** The agent could not be reached, or did not answer in time. */
  get unreachable(): boolean {
    return this.code === Code.UNAVAILABLE || this.code === Code.DEADLINE_EXCEEDED || this.code === Code.CANCELLED;
  }
}

export interface AgentClient {
  getStatus(options: AgentCallOptions): Promise<GetStatusResponse>;
  runScript(request: RunScriptRequest, options: AgentCallOptions): Promise<RunScriptResponse>;
  collectMetrics(options: AgentCallOptions): Promise<CollectMetricsResponse>;
  shutdown(reason: string, options: AgentCallOptions): Promise<void>;
  close(): void;
}

export function agentTarget(address: string, port: number): string {
  return `${address.includes(":") && !address.startsWith("[") ? `[${address}]` : address}:${port}`;
}

/**
 * The channel's target: an IP literal through grpc-js's ipv4:/ipv6: resolver, which parses it, rather than the DNS
 * resolver, which builds a c-ares resolver for every channel before it finds the host is an address.
 */
export function channelTarget(address: string, port: number): string {
  const host = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address;
  if (isIPv4(host)) return `ipv4:${host}:${port}`;
  if (isIPv6(host)) return `ipv6:[${host}]:${port}`;
  return agentTarget(address, port);
}

/** Largest answer an agent may send (a command's output is capped well below it). */
const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

/**
 * A channel to the agent at `endpoint` (the generated client over it): mutual TLS, or plaintext. grpc-js connects on
 * the first call; closing it closes the connection. Calls go through agentClientOver, which adds the credential.
 */
export function openAgentChannel(endpoint: AgentEndpoint, maxMessageBytes = MAX_MESSAGE_BYTES): AgentServiceClient {
  // Node 20's per-request AsyncResource.bind in node:http2 keeps each call alive through young collections.
  keepCallsYoung();
  return new AgentServiceClient(channelTarget(endpoint.address, endpoint.port), channelCredentials(endpoint), {
    "grpc.max_receive_message_length": maxMessageBytes,
    // A pool of its own: closing a channel makes grpc-js walk its whole subchannel pool, and with the process-wide pool
    // every close walked every agent target this process ever called (a worker keeps up to agent.maxChannels).
    "grpc.use_local_subchannel_pool": 1,
    // One connection attempt per call is enough: the pinger and the job retry on their own schedule.
    "grpc.enable_retries": 0,
    // A name, not the IP, as TLS server name (the identity check looks at the agent id and pins, not at names).
    ...("tls" in endpoint ? { "grpc.ssl_target_name_override": `${endpoint.tls.agentId.toLowerCase()}.agent` } : {}),
  });
}

/** A client of one agent on a channel of its own, closed with it. */
export function openAgentClient(endpoint: AgentEndpoint, maxMessageBytes = MAX_MESSAGE_BYTES): AgentClient {
  const channel = openAgentChannel(endpoint, maxMessageBytes);
  return agentClientOver(channel, endpoint, () => channel.close());
}

/**
 * The calls of the agent at `endpoint` over `channel` (opened for that endpoint's address and TLS identity); on the
 * plaintext channel each call carries the agent's credential. close() runs `release` once.
 */
export function agentClientOver(channel: AgentServiceClient, endpoint: AgentEndpoint, release: () => void): AgentClient {
  const target = agentTarget(endpoint.address, endpoint.port);
  const metadata = (): Metadata => {
    const md = new Metadata();
    if ("credential" in endpoint) md.set("authorization", `Bearer ${endpoint.credential}`);
    return md;
  };
  const unary = <Req, Res>(method: (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: Res) => void) => { cancel(): void }, request: Req, options: AgentCallOptions): Promise<Res> =>
    new Promise<Res>((resolve, reject) => {
      if (options.signal?.aborted) {
        reject(new AgentCallError(Code.CANCELLED, "cancelled before the call"));
        return;
      }
      const onAbort = (): void => call.cancel();
      const call = method.call(channel, request, metadata(), { deadline: options.deadline }, (err, res) => {
        options.signal?.removeEventListener("abort", onAbort);
        if (err) reject(new AgentCallError(err.code, `agent at ${target}: ${err.details || Code[err.code]}`, { cause: err }));
        else resolve(res);
      });
      options.signal?.addEventListener("abort", onAbort, { once: true });
    });
  let released = false;
  return {
    getStatus: (options) => unary(channel.getStatus, {}, options),
    runScript: (request, options) => unary(channel.runScript, request, options),
    collectMetrics: (options) => unary(channel.collectMetrics, {}, options),
    shutdown: async (reason, options) => void (await unary(channel.shutdown, { reason }, options)),
    close: () => {
      if (released) return;
      released = true;
      release();
    },
  };
}
