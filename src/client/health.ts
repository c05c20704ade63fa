// grpc.health.v1 from the client side: one-shot checks (`dispatcher health`) and Watch as an async iterable.
import { Client, credentials as channelCredentials, status as Code, type ChannelCredentials, type MethodDefinition } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { streamCall, unaryCall, type CallDefaults, type CallOptions } from "./calls.js";
import { DispatcherError } from "./errors.js";

export type HealthStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

interface HealthRequest {
  service: string;
}
interface HealthResponse {
  status: HealthStatus;
}

// proto-loader definitions (enums as strings) from grpc-health-check, the package the server uses too.
const CHECK = healthService.Check as unknown as MethodDefinition<HealthRequest, HealthResponse>;
const WATCH = healthService.Watch as unknown as MethodDefinition<HealthRequest, HealthResponse>;

export interface HealthClient {
  /** The service's status; "" is the server as a whole. An unknown service is SERVICE_UNKNOWN (the server said NOT_FOUND). */
  check(service?: string, options?: CallOptions): Promise<HealthStatus>;
  /** The current status, then every change, until the call ends or is cancelled. */
  watch(service?: string, options?: CallOptions): AsyncIterable<HealthStatus>;
}

export function healthClient(client: Client, defaults: CallDefaults): HealthClient {
  return {
    async check(service = "", options) {
      try {
        return (await unaryCall(client, CHECK, { service }, defaults, options)).status;
      } catch (err) {
        if (err instanceof DispatcherError && err.code === Code.NOT_FOUND) return "SERVICE_UNKNOWN";
        throw err;
      }
    },
    async *watch(service = "", options) {
      for await (const response of streamCall(client, WATCH, { service }, defaults, options)) yield response.status;
    },
  };
}

/**
 * Asks `address` for the health of `service` ("" = the whole server) once, like grpc-health-probe. Throws
 * DispatcherError when the server cannot be reached within deadlineMs.
 */
export async function checkHealth(address: string, service = "", deadlineMs = 5_000, credentials: ChannelCredentials = channelCredentials.createInsecure()): Promise<HealthStatus> {
  const client = new Client(address, credentials);
  try {
    return await healthClient(client, { defaultDeadlineMs: deadlineMs }).check(service);
  } finally {
    client.close();
  }
}
