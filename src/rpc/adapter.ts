// The one adapter between async handlers and grpc-js: the handler shapes, their bindings to a service's methods, and
// the grpc-js handlers that run each call through one Call (call.ts: admission, deadline and cancellation, the
// error → status mapping, the request log line, in-flight tracking for a graceful stop).
import { Metadata, type MethodDefinition, type sendUnaryData, type ServerReadableStream, type ServerUnaryCall, type ServerWritableStream, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { CancelledError } from "../errors.js";
import { Call, type AdapterRuntime, type CallContext } from "./call.js";
import { checkDecoded, checkEnvelope, requestOf } from "./request-body.js";

export type { AdapterRuntime, CallContext } from "./call.js";

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
      await binding.handler(requestOf<Req>(call.request), withSend(ctx, send));
      scope.finish(null);
    });
  };
}

/** A server stream's context: the call's, plus `send` (a plain object: the stream's signal already exists). */
function withSend<Res>(ctx: CallContext, send: (message: Res) => Promise<void>): StreamContext<Res> {
  return {
    method: ctx.method,
    signal: ctx.signal,
    deadline: ctx.deadline,
    principal: ctx.principal,
    metadata: ctx.metadata,
    peer: ctx.peer,
    log: ctx.log,
    traceId: ctx.traceId,
    remainingMs: () => ctx.remainingMs(),
    send,
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
