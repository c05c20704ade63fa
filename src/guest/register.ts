// The agent's one call home: Register through the gRPC-Web bridge, retried with bounded, jittered exponential backoff
// while the dispatcher cannot be reached. A refused token (used, expired, unknown) is final: retrying cannot help.
import { status as Code } from "@grpc/grpc-js";
import { RegisterRequest, RegisterResponse, RenewAgentRequest, RenewAgentResponse } from "../gen/proto/dispatcher/v1/agents.js";
import type { Logger } from "../log.js";
import { GrpcWebError, grpcWebUnary } from "./grpc-web.js";

export const REGISTER_PATH = "/dispatcher.v1.AgentRegistrationService/Register";
export const RENEW_PATH = "/dispatcher.v1.AgentRegistrationService/RenewAgent";

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 500, maxMs: 30_000 };
const CALL_TIMEOUT_MS = 10_000;

/** Codes that say the request itself is refused; anything else may pass (bridge starting, dispatcher down). */
const FINAL: ReadonlySet<Code> = new Set([Code.UNAUTHENTICATED, Code.PERMISSION_DENIED, Code.INVALID_ARGUMENT, Code.FAILED_PRECONDITION]);

/** Delay before retry n (0-based): between half and all of min(max, initial·2ⁿ) ("equal jitter"). */
export function backoffDelay(n: number, backoff: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(n, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export interface RegisterOptions {
  bridgeUrl: string;
  joinToken: string;
  /** The launch's trace context from the bootstrap environment: the registration appears in the launch's trace. */
  traceparent?: string | undefined;
  request: RegisterRequest;
  log: Logger;
  signal: AbortSignal;
  backoff?: Backoff;
}

export async function registerWithRetry(options: RegisterOptions): Promise<RegisterResponse> {
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  for (let n = 0; ; n++) {
    try {
      return await grpcWebUnary(options.bridgeUrl, REGISTER_PATH, RegisterRequest, RegisterResponse, options.request, { token: options.joinToken, traceparent: options.traceparent, timeoutMs: CALL_TIMEOUT_MS, signal: options.signal });
    } catch (err) {
      if (!(err instanceof GrpcWebError) || FINAL.has(err.code) || options.signal.aborted) throw err;
      const delay = backoffDelay(n, backoff);
      options.log.warn({ code: Code[err.code], reason: err.message, retryInMs: delay, attempt: n + 1 }, "registration failed; retrying");
      await sleep(delay, options.signal);
    }
  }
}

export interface RenewOptions {
  bridgeUrl: string;
  /** `dar_<agent id>`: names the agent; the request's signature proves it. */
  token: string;
  /** Makes the request afresh for each attempt (a new signing time: the dispatcher refuses a repeated one). */
  request: () => RenewAgentRequest;
  log: Logger;
  signal: AbortSignal;
  backoff?: Backoff;
}

/** RenewAgent, retried like registration while the dispatcher cannot be reached; a refusal is final. */
export async function renewWithRetry(options: RenewOptions): Promise<RenewAgentResponse> {
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  for (let n = 0; ; n++) {
    try {
      return await grpcWebUnary(options.bridgeUrl, RENEW_PATH, RenewAgentRequest, RenewAgentResponse, options.request(), { token: options.token, timeoutMs: CALL_TIMEOUT_MS, signal: options.signal });
    } catch (err) {
      if (!(err instanceof GrpcWebError) || FINAL.has(err.code) || options.signal.aborted) throw err;
      const delay = backoffDelay(n, backoff);
      options.log.warn({ code: Code[err.code], reason: err.message, retryInMs: delay, attempt: n + 1 }, "certificate renewal failed; retrying");
      await sleep(delay, options.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
