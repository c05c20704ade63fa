// The agent's gRPC server: agent.v1 through the project's one adapter (authentication, permissions, deadlines, error
// edge), without the dispatcher's health and reflection services, whose modules would double the agent's start-up
// time on a small guest. Graceful stop: new calls UNAVAILABLE, calls under way get the grace period.
import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { AuthenticatePeer } from "../iam/principal.js";
import { UnavailableError } from "../errors.js";
import type { Logger } from "../log.js";
import { bindService, type RpcService } from "../rpc/adapter.js";
import { InFlight } from "../rpc/in-flight.js";
import type { Authenticate } from "../iam/principal.js";

export interface AgentServerOptions {
  bind: string;
  port: number;
  log: Logger;
  authenticate: Authenticate;
  /** Mutual TLS: the caller as its client certificate proves it. */
  authenticatePeer?: AuthenticatePeer | undefined;
  /** TLS credentials; plaintext when absent (development). */
  credentials?: ServerCredentials | undefined;
  service: RpcService;
  /** Applied to calls without a deadline. */
  defaultDeadlineMs: number;
  maxMessageBytes: number;
}

export interface AgentServer {
  start(): Promise<number>;
  stop(graceMs: number): Promise<void>;
}

const SETTLE_MS = 1_000;

export function createAgentServer(options: AgentServerOptions): AgentServer {
  const inFlight = new InFlight();
  let draining = false;
  const server = new Server({ "grpc.max_receive_message_length": options.maxMessageBytes, "grpc.max_send_message_length": options.maxMessageBytes });
  server.addService(
    options.service.definition,
    bindService(options.service, { log: options.log, authenticate: options.authenticate, authenticatePeer: options.authenticatePeer, defaultDeadlineMs: options.defaultDeadlineMs, inFlight, isDraining: () => draining }),
  );
  let stopping: Promise<void> | undefined;
  return {
    start() {
      const host = options.bind.includes(":") && !options.bind.startsWith("[") ? `[${options.bind}]` : options.bind;
      return new Promise<number>((resolve, reject) =>
        server.bindAsync(`${host}:${options.port}`, options.credentials ?? ServerCredentials.createInsecure(), (err, port) => {
          if (err) reject(new UnavailableError(`cannot listen on ${host}:${options.port} (${err.message})`, "LISTEN_FAILED", { cause: err }));
          else resolve(port);
        }),
      );
    },
    stop(graceMs) {
      stopping ??= (async () => {
        draining = true;
        if (!(await inFlight.drain(graceMs))) {
          inFlight.abort(new UnavailableError("agent is shutting down", "SHUTTING_DOWN"));
          await inFlight.drain(SETTLE_MS);
        }
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, SETTLE_MS);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
      })();
      return stopping;
    },
  };
}
