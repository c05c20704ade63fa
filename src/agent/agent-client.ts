// The dispatcher's client of one agent (agent.v1 over gRPC, plaintext HTTP/2), presenting the agent's credential as
// `authorization: Bearer …` on every call. Used by the pinger (monitor) and the agent.run_script job (worker).
import { credentials, Metadata, status as Code, type ServiceError } from "@grpc/grpc-js";
import {
  AgentServiceClient,
  type CollectMetricsResponse,
  type GetStatusResponse,
  type RunScriptRequest,
  type RunScriptResponse,
} from "../gen/proto/agent/v1/agent.js";

export interface AgentEndpoint {
  address: string;
  port: number;
  /** The agent's credential (derived, never stored): keep it out of logs and errors. */
  credential: string;
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

export function openAgentClient(endpoint: AgentEndpoint, maxMessageBytes = 8 * 1024 * 1024): AgentClient {
  const client = new AgentServiceClient(agentTarget(endpoint.address, endpoint.port), credentials.createInsecure(), {
    "grpc.max_receive_message_length": maxMessageBytes,
    // One connection attempt per call is enough: the pinger and the job retry on their own schedule.
    "grpc.enable_retries": 0,
  });
  const metadata = (): Metadata => {
    const md = new Metadata();
    md.set("authorization", `Bearer ${endpoint.credential}`);
    return md;
  };
  const unary = <Req, Res>(method: (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: Res) => void) => { cancel(): void }, request: Req, options: AgentCallOptions): Promise<Res> =>
    new Promise<Res>((resolve, reject) => {
      if (options.signal?.aborted) {
        reject(new AgentCallError(Code.CANCELLED, "cancelled before the call"));
        return;
      }
      const onAbort = (): void => call.cancel();
      const call = method.call(client, request, metadata(), { deadline: options.deadline }, (err, res) => {
        options.signal?.removeEventListener("abort", onAbort);
        if (err) reject(new AgentCallError(err.code, `agent at ${agentTarget(endpoint.address, endpoint.port)}: ${err.details || Code[err.code]}`, { cause: err }));
        else resolve(res);
      });
      options.signal?.addEventListener("abort", onAbort, { once: true });
    });
  return {
    getStatus: (options) => unary(client.getStatus, {}, options),
    runScript: (request, options) => unary(client.runScript, request, options),
    collectMetrics: (options) => unary(client.collectMetrics, {}, options),
    shutdown: async (reason, options) => void (await unary(client.shutdown, { reason }, options)),
    close: () => client.close(),
  };
}
