// The one adapter between async handlers and grpc-js: authentication, authorization, deadline and cancellation
// (one AbortSignal), error → status mapping, the request log line, and in-flight tracking for graceful stop.
import { performance } from "node:perf_hooks";
import { status as Code, Metadata, type MethodDefinition, type sendUnaryData, type ServerReadableStream, type ServerUnaryCall, type ServerWritableStream, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { trace } from "@opentelemetry/api";
import { CancelledError, DeadlineExceededError, DomainError, PermissionDeniedError, UnauthenticatedError, UnavailableError } from "../errors.js";
import { lazyChild, type Logger, type RequestLogEntry } from "../log.js";
import type { InFlight, InFlightCall } from "./in-flight.js";
import { LimitRefusal, type PrincipalLimits } from "./limits.js";
import type { Authenticate, AuthenticatePeer, PeerAuth, Principal } from "../iam/principal.js";
import { ANONYMOUS, isAllowed, permissionFor, PUBLIC } from "../iam/permissions.js";
import { codeName, toRpcStatus, type RpcStatus } from "./status.js";
import { checkDecoded, checkEnvelope, requestOf } from "./request-body.js";
import { peerAuthOf } from "./peer-auth.js";
import { recordRpc } from "../telemetry/metrics.js";
import { actingAs } from "../audit/actor.js";

/** What a handler knows about its call besides the request. */
export interface CallContext {
  /** Full method name, e.g. "/dispatcher.v1.JobService/GetJob". */
  readonly method: string;
  /** Aborted on client cancel, deadline, or server shutdown; `signal.reason` is the matching DomainError. */
  readonly signal: AbortSignal;
  /** The client's deadline; for a unary call without one, now + server.defaultDeadlineMs (streams: none). */
  readonly deadline: Date;
  readonly principal: Readonly<Principal>;
  readonly metadata: Metadata;
  readonly peer: string;
  /** Child logger carrying method and trace id. */
  readonly log: Logger;
  /** W3C trace id of the call ("" when not traced). */
  readonly traceId: string;
  /** Milliseconds left before the deadline (≥ 0): pass it on to DB, NATS, KM and driver calls. */
  remainingMs(): number;
}

export interface StreamContext<Res> extends CallContext {
  /** Writes one message; resolves when the transport can take more (backpressure), rejects once the call ended. */
  send(message: Res): Promise<void>;
}

export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;
export type ServerStreamHandler<Req, Res> = (request: Req, ctx: StreamContext<Res>) => Promise<void>;
/**
 * Reads the client's messages one at a time: the next is taken off the transport only when the handler asks for it
 * (backpressure reaches the client through HTTP/2 flow control). A message that does not decode throws
 * INVALID_ARGUMENT from the iterator.
 */
export type ClientStreamHandler<Req, Res> = (requests: AsyncIterable<Req>, ctx: CallContext) => Promise<Res>;

export interface UnaryBinding<Req, Res> {
  readonly kind: "unary";
  readonly method: MethodDefinition<Req, Res>;
  readonly handler: UnaryHandler<Req, Res>;
}

export interface ServerStreamBinding<Req, Res> {
  readonly kind: "serverStream";
  readonly method: MethodDefinition<Req, Res>;
  readonly handler: ServerStreamHandler<Req, Res>;
}

export interface ClientStreamBinding<Req, Res> {
  readonly kind: "clientStream";
  readonly method: MethodDefinition<Req, Res>;
  readonly handler: ClientStreamHandler<Req, Res>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Binding = UnaryBinding<any, any> | ServerStreamBinding<any, any> | ClientStreamBinding<any, any>;

/** For each method of a generated service definition, the binding of the matching shape. */
export type ServiceHandlers<S extends ServiceDefinition> = {
  [K in keyof S]: S[K] extends MethodDefinition<infer Req, infer Res>
    ? S[K]["requestStream"] extends true
      ? ClientStreamBinding<Req, Res>
      : S[K]["responseStream"] extends true
        ? ServerStreamBinding<Req, Res>
        : UnaryBinding<Req, Res>
    : never;
};

/** A service as createRpcServer takes it: the generated definition and one binding per method. */
export interface RpcService {
  readonly definition: ServiceDefinition;
  readonly implementation: Readonly<Record<string, Binding>>;
}

/** What the adapter needs from the server that hosts it. */
export interface AdapterRuntime {
  readonly log: Logger;
  readonly requestLog?: { write(entry: RequestLogEntry): void } | undefined;
  readonly authenticate: Authenticate;
  /** Identifies callers by their transport (mTLS client certificate) before any bearer token is looked at. */
  readonly authenticatePeer?: AuthenticatePeer | undefined;
  /** Applied to calls that arrive without a deadline; 0 means none. */
  readonly defaultDeadlineMs: number;
  /** Largest request metadata (keys and values, in bytes) a call may carry; 0 means no limit of our own. */
  readonly maxMetadataBytes?: number | undefined;
  /** Per-principal rate and concurrency limits; none when absent. */
  readonly limits?: PrincipalLimits | undefined;
  readonly inFlight: InFlight;
  /** True once a graceful stop began: new calls get UNAVAILABLE. */
  isDraining(): boolean;
  /** While it returns an error, new calls get it at once (a store the server cannot work without is known to be gone). */
  refusal?(): Error | null;
}

export function unary<Req, Res>(method: MethodDefinition<Req, Res> & { responseStream: false }, handler: UnaryHandler<Req, Res>): UnaryBinding<Req, Res> {
  return { kind: "unary", method, handler };
}

export function serverStream<Req, Res>(method: MethodDefinition<Req, Res> & { responseStream: true }, handler: ServerStreamHandler<Req, Res>): ServerStreamBinding<Req, Res> {
  return { kind: "serverStream", method, handler };
}

export function clientStream<Req, Res>(method: MethodDefinition<Req, Res> & { requestStream: true; responseStream: false }, handler: ClientStreamHandler<Req, Res>): ClientStreamBinding<Req, Res> {
  return { kind: "clientStream", method, handler };
}

/** Type-checks that every method of `definition` has a binding of the right shape. */
export function defineService<S extends ServiceDefinition>(definition: S, implementation: ServiceHandlers<S>): RpcService {
  return { definition, implementation: implementation as unknown as Record<string, Binding> };
}

/** "dispatcher.v1.JobService" for the JobService definition. */
export function serviceName(definition: ServiceDefinition): string {
  const first = Object.values(definition)[0] as MethodDefinition<unknown, unknown> | undefined;
  if (!first) throw new Error("service definition has no methods");
  return first.path.slice(1, first.path.lastIndexOf("/"));
}

/** grpc-js handlers for a service, each running through the adapter. Throws if a method has no binding. */
export function bindService(service: RpcService, runtime: AdapterRuntime): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = {};
  for (const [key, method] of Object.entries(service.definition)) {
    const binding = service.implementation[key];
    if (!binding) throw new Error(`no handler bound for ${method.path}`);
    if (binding.method.path !== method.path) throw new Error(`handler for ${method.path} was bound to ${binding.method.path}`);
    if (binding.kind === "unary" && !method.requestStream && !method.responseStream) out[key] = bindUnary(binding, runtime);
    else if (binding.kind === "serverStream" && !method.requestStream && method.responseStream) out[key] = bindServerStream(binding, runtime);
    else if (binding.kind === "clientStream" && method.requestStream && !method.responseStream) out[key] = bindClientStream(binding, runtime);
    else throw new Error(`${method.path}: a ${binding.kind} binding does not fit this method's streaming shape`);
  }
  return out;
}

/**
 * Resolves the caller of `method` from its metadata and checks the method's permission: throws
 * UnauthenticatedError or PermissionDeniedError. A method missing from the permission table is denied.
 */
export async function admit(
  runtime: Pick<AdapterRuntime, "authenticate" | "authenticatePeer" | "log">,
  method: string,
  metadata: Metadata,
  peer: string,
  auth?: PeerAuth | null,
  /** Told who the caller is before the permission check, so a refusal can still name them (request log, audit). */
  onAuthenticated?: (principal: Readonly<Principal>) => void,
): Promise<Readonly<Principal>> {
  const permission = permissionFor(method);
  if (permission === PUBLIC) return ANONYMOUS;
  const fromPeer = runtime.authenticatePeer && auth ? await runtime.authenticatePeer(auth, peer) : null;
  const token = fromPeer ? null : bearerToken(metadata);
  const principal = fromPeer ?? (token ? await runtime.authenticate(token, peer) : null);
  if (!principal) throw new UnauthenticatedError();
  onAuthenticated?.(principal);
  if (permission === undefined) {
    runtime.log.error({ method }, "method missing from the permission table; denied");
    throw new PermissionDeniedError(`${method} is not permitted`, "METHOD_NOT_PERMITTED", { method });
  }
  if (!isAllowed(principal, permission)) throw new PermissionDeniedError(`permission ${permission} required`, "PERMISSION_DENIED", { permission });
  return principal;
}

function bearerToken(metadata: Metadata): string | null {
  const value = metadata.get("authorization")[0];
  const m = typeof value === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(value) : null;
  return m?.[1] ?? null;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
const FAR_FUTURE = 8.64e15;
const DEADLINE_SLACK_MS = 20;

/** One call's lifetime: signal, deadline timer, in-flight entry, the single reply and its request log line. */
class Call implements InFlightCall {
  readonly started = performance.now();
  readonly peer: string;
  readonly deadline: Date;
  readonly traceId: string;
  readonly log: Logger;
  principal: Readonly<Principal> | null = null;
  replied = false;
  private timer: NodeJS.Timeout | undefined;
  /** Why the call was aborted (deadline, client cancel, shutdown); undefined while it runs. */
  private abortReason: DomainError | undefined;
  /**
   * Made when something first asks for the signal: most unary handlers never do, and an AbortController with its
   * AbortSignal (an EventTarget) was the largest single allocation of the adapter on KM's GetCredential path.
   */
  private controller: AbortController | undefined;
  // grpc-js ends a call whose client deadline passed (and the client resets it) at about the moment our own timer
  // fires; a cancellation that close to the deadline is the deadline.
  private readonly onCancelled = (): void =>
    this.abort(Date.now() >= this.deadline.getTime() - DEADLINE_SLACK_MS ? new DeadlineExceededError() : new CancelledError("cancelled by the client"));

  constructor(
    private readonly runtime: AdapterRuntime,
    readonly method: string,
    readonly longLived: boolean,
    private readonly surface: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown> | ServerReadableStream<unknown, unknown>,
    private readonly reply: (status: RpcStatus | null) => void,
  ) {
    this.peer = surface.getPeer();
    this.traceId = traceIdOf(surface.metadata);
    this.log = lazyChild(runtime.log, { method, trace_id: this.traceId });
    const given = surface.getDeadline();
    let at = given instanceof Date ? given.getTime() : given;
    // Server streams (WatchJob) last as long as what they watch: only unary calls get the default deadline.
    if (!Number.isFinite(at) && !longLived && runtime.defaultDeadlineMs > 0) at = Date.now() + runtime.defaultDeadlineMs;
    this.deadline = new Date(Number.isFinite(at) ? at : FAR_FUTURE);
    const wait = at - Date.now();
    if (wait <= MAX_TIMER_MS) this.timer = setTimeout(() => this.abort(new DeadlineExceededError()), Math.max(0, wait));
    (surface as NodeJS.EventEmitter).on("cancelled", this.onCancelled);
  }

  /** Aborted on client cancel, deadline or shutdown, with the matching DomainError as its reason. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortReason) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  abort(reason: DomainError): void {
    if (this.abortReason) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
    // Deadline and shutdown answer at once; the handler's late result is dropped.
    this.finish(reason);
  }

  /** Sends the one reply for `outcome` (null: OK) and writes the request log line. Later calls are ignored. */
  finish(outcome: unknown): void {
    if (this.replied) return;
    this.replied = true;
    let status: RpcStatus | null = null;
    if (outcome !== null) {
      // A handler that fails because its signal fired (a driver's AbortError, say) reports why the signal fired.
      const err = this.abortReason && !(outcome instanceof DomainError) ? this.abortReason : outcome;
      status = toRpcStatus(err);
      if (!(err instanceof DomainError)) this.log.error({ err }, `unexpected error; replied ${codeName(status.code)}`);
    }
    this.reply(status);
    const durationMs = performance.now() - this.started;
    recordRpc(this.method, status?.code ?? Code.OK, durationMs);
    if (!this.runtime.requestLog) return;
    // A flood's refusals are counted by the metric above; the request log gets a line per principal per second at most.
    const refusals = outcome instanceof LimitRefusal && this.principal && this.runtime.limits ? this.runtime.limits.refusalsToLog(this.principal.id) : 1;
    if (refusals === 0) return;
    this.runtime.requestLog.write({
      time: new Date(),
      method: this.method,
      peer: this.peer,
      principal: this.principal?.id ?? "-",
      code: codeName(status?.code ?? Code.OK),
      durationMs,
      traceId: this.traceId,
      ...(outcome instanceof LimitRefusal ? { refusals } : {}),
    });
  }

  /**
   * Answers a limit refusal, after holding it (a timer) for the time it allows: a caller that ignores RetryInfo waits
   * anyway, so its calls in flight, not its eagerness, set how many it makes. At most half the time left before the
   * deadline (the answer must reach the caller in time), and not at all once the server is stopping.
   */
  private async refuse(refusal: LimitRefusal): Promise<void> {
    const holdMs = this.runtime.isDraining() ? 0 : Math.min(refusal.holdMs, (this.deadline.getTime() - Date.now()) / 2);
    if (holdMs > 0 && !this.abortReason) {
      const signal = this.signal;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, holdMs);
        signal.addEventListener("abort", done);
      });
    }
    // The retry delay it names is what is left of the wait after the hold.
    this.finish(refusal.answer());
  }

  /** Runs the handler with the in-flight entry held until it settles (even after an early reply). */
  async run(body: (ctx: CallContext) => Promise<void>): Promise<void> {
    const refused = this.runtime.isDraining() ? new UnavailableError("server is shutting down", "SHUTTING_DOWN") : this.runtime.refusal?.();
    if (refused) {
      this.close();
      this.finish(refused);
      return;
    }
    this.runtime.inFlight.add(this);
    let release: (() => void) | undefined;
    try {
      checkEnvelope(this.runtime, this.surface.metadata, "request" in this.surface ? this.surface.request : undefined);
      const auth = this.runtime.authenticatePeer ? peerAuthOf(this.surface) : null;
      // Limits apply as soon as the caller is known, before the permission check: a flood of denied calls is a flood.
      this.principal = await admit(this.runtime, this.method, this.surface.metadata, this.peer, auth, (p) => {
        this.principal = p;
        release = this.runtime.limits?.admit(p, this.longLived);
      });
      if (this.abortReason) throw this.abortReason;
      // The handler runs as its caller: what it changes is attributed to them in the audit trail.
      await actingAs({ principal: this.principal.id, traceId: this.traceId }, () => body(this.context(this.principal as Readonly<Principal>)));
    } catch (err) {
      if (err instanceof LimitRefusal) await this.refuse(err);
      else this.finish(err);
    } finally {
      release?.();
      this.close();
      this.runtime.inFlight.delete(this);
    }
  }

  private context(principal: Readonly<Principal>): CallContext {
    const deadline = this.deadline;
    const signal = (): AbortSignal => this.signal;
    return {
      method: this.method,
      get signal() {
        return signal();
      },
      deadline,
      principal,
      metadata: this.surface.metadata,
      peer: this.peer,
      log: this.log,
      traceId: this.traceId,
      remainingMs: () => Math.max(0, deadline.getTime() - Date.now()),
    };
  }

  private close(): void {
    clearTimeout(this.timer);
    (this.surface as NodeJS.EventEmitter).removeListener("cancelled", this.onCancelled);
  }
}

function traceIdOf(metadata: Metadata): string {
  const active = trace.getActiveSpan()?.spanContext().traceId;
  if (active && !/^0+$/.test(active)) return active;
  const header = metadata.get("traceparent")[0];
  const m = typeof header === "string" ? /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/.exec(header) : null;
  return m?.[1] ?? "";
}

function bindUnary<Req, Res>(binding: UnaryBinding<Req, Res>, runtime: AdapterRuntime) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    let response: Res | undefined;
    const scope = new Call(runtime, binding.method.path, false, call, (status) => (status ? callback(status) : callback(null, response)));
    void scope.run(async (ctx) => {
      response = await binding.handler(requestOf<Req>(call.request), ctx);
      scope.finish(null);
    });
  };
}

function bindServerStream<Req, Res>(binding: ServerStreamBinding<Req, Res>, runtime: AdapterRuntime) {
  return (call: ServerWritableStream<Req, Res>): void => {
    const scope = new Call(runtime, binding.method.path, true, call, (status) => (status ? call.emit("error", status) : call.end()));
    const signal = scope.signal;
    const send = (message: Res): Promise<void> => {
      if (signal.aborted) return Promise.reject(signal.reason as Error);
      if (scope.replied) return Promise.reject(new CancelledError("the call has already ended"));
      if (call.write(message)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const done = (err?: unknown): void => {
          call.removeListener("drain", onDrain);
          signal.removeEventListener("abort", onAbort);
          if (err) reject(err as Error);
          else resolve();
        };
        const onDrain = (): void => done();
        const onAbort = (): void => done(signal.reason);
        call.once("drain", onDrain);
        signal.addEventListener("abort", onAbort, { once: true });
      });
    };
    void scope.run(async (ctx) => {
      await binding.handler(requestOf<Req>(call.request), { ...ctx, send });
      scope.finish(null);
    });
  };
}

function bindClientStream<Req, Res>(binding: ClientStreamBinding<Req, Res>, runtime: AdapterRuntime) {
  return (call: ServerReadableStream<Req, Res>, callback: sendUnaryData<Res>): void => {
    let response: Res | undefined;
    // Uploads last as long as their bytes take: like server streams, no default deadline (the client's still applies).
    const scope = new Call(runtime, binding.method.path, true, call, (status) => (status ? callback(status) : callback(null, response)));
    const signal = scope.signal;
    async function* requests(): AsyncGenerator<Req> {
      // The async iterator of a Readable pulls one message at a time, so grpc-js reads no further ahead than that.
      for await (const message of call as AsyncIterable<unknown>) {
        signal.throwIfAborted();
        checkEnvelope({}, new Metadata(), message);
        checkDecoded(message);
        yield message as Req;
      }
      signal.throwIfAborted();
    }
    void scope.run(async (ctx) => {
      response = await binding.handler(requests(), ctx);
      scope.finish(null);
    });
  };
}
