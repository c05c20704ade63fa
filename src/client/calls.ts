// Promise and async-iterable calls over one grpc-js Client, typed from a generated (ts-proto) service definition.
import { Metadata, status as Code, type Client, type ClientReadableStream, type ClientUnaryCall, type ClientWritableStream, type MethodDefinition, type ServiceDefinition } from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { DispatcherError } from "./errors.js";

export interface CallOptions {
  /** Overrides the client's default deadline (unary calls) or sets one (streams, which have none by default). */
  deadlineMs?: number;
  /** Cancels the call (CANCELLED) when aborted. */
  signal?: AbortSignal;
  /** Extra request metadata, e.g. traceparent. */
  metadata?: Record<string, string>;
}

export interface CallDefaults {
  token?: string | undefined;
  /** Deadline of unary calls without their own; 0 means none. */
  defaultDeadlineMs: number;
  /**
   * Retries on UNAVAILABLE of mutating calls whose request carries an idempotency key (one is generated when the
   * caller left it empty), with exponential backoff and full jitter, within the call's deadline. Absent: none.
   */
  keyedRetry?: KeyedRetry | undefined;
  /**
   * Whether grpc-js records the caller's stack for each unary call (default true): it builds an Error (a stack
   * capture) in every call only to append that stack to a failure's. On a hot path (KM's GetCredential) the capture
   * was a fifth to a third of a raw grpc-js unary call's client CPU; false skips it, and failures lose those frames.
   */
  callerStack?: boolean | undefined;
}

export interface KeyedRetry {
  /** Attempts including the first. */
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  backoffMultiplier: number;
  /** Method paths the channel's service config retries already (idempotent methods): not retried twice over. */
  channelRetried: ReadonlySet<string>;
}

type RequestOf<M> = M extends { requestDeserialize(value: Buffer): infer Req } ? Req : never;
type ResponseOf<M> = M extends { responseDeserialize(value: Buffer): infer Res } ? Res : never;
type PartialInput<F> = F extends { fromPartial(object: infer I): unknown } ? I : never;

/** For each method, the generated request message (its fromPartial fills defaults of omitted fields). */
export type RequestTypes<S extends ServiceDefinition> = { [K in keyof S]: { fromPartial(object: never): RequestOf<S[K]> } };

/**
 * Unary methods return promises; server-streaming ones async iterables (breaking out of the loop cancels the call);
 * client-streaming ones take an (async) iterable of requests, sent as the transport takes them, and return a promise.
 */
export type PromiseClient<S extends ServiceDefinition, R extends RequestTypes<S>> = {
  [K in keyof S]: S[K]["requestStream"] extends true
    ? (requests: AsyncIterable<PartialInput<R[K]>> | Iterable<PartialInput<R[K]>>, options?: CallOptions) => Promise<ResponseOf<S[K]>>
    : S[K]["responseStream"] extends true
      ? (request?: PartialInput<R[K]>, options?: CallOptions) => AsyncIterable<ResponseOf<S[K]>>
      : (request?: PartialInput<R[K]>, options?: CallOptions) => Promise<ResponseOf<S[K]>>;
};

export function promiseClient<S extends ServiceDefinition, R extends RequestTypes<S>>(client: Client, definition: S, requests: R, defaults: CallDefaults): PromiseClient<S, R> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(definition) as Array<keyof S & string>) {
    const method = definition[key] as MethodDefinition<unknown, unknown>;
    const fill = (request: unknown): unknown => (requests[key].fromPartial as (o: unknown) => unknown)(request ?? {});
    if (method.requestStream) {
      out[key] = (requests: AsyncIterable<unknown> | Iterable<unknown>, options?: CallOptions) => clientStreamCall(client, method, requests, fill, defaults, options);
      continue;
    }
    out[key] = method.responseStream
      ? (request?: unknown, options?: CallOptions) => streamCall(client, method, fill(request), defaults, options)
      : (request?: unknown, options?: CallOptions) => keyedCall(client, method, fill(request), defaults, options);
  }
  return out as PromiseClient<S, R>;
}

/**
 * A unary call; when its request has an idempotency key field (a mutating call the server deduplicates by key), an
 * empty key is filled with a new UUID and an UNAVAILABLE answer is retried with the same key (defaults.keyedRetry).
 */
export async function keyedCall<Req, Res>(client: Client, method: MethodDefinition<Req, Res>, request: Req, defaults: CallDefaults, options: CallOptions = {}): Promise<Res> {
  const retry = defaults.keyedRetry;
  if (!hasIdempotencyKey(request)) return unaryCall(client, method, request, defaults, options);
  if (request.idempotencyKey === "") request.idempotencyKey = randomUUID();
  if (!retry || retry.channelRetried.has(method.path)) return unaryCall(client, method, request, defaults, options);
  const deadlineMs = options.deadlineMs ?? defaults.defaultDeadlineMs;
  const deadline = deadlineMs > 0 ? Date.now() + deadlineMs : Infinity;
  for (let attempt = 1; ; attempt++) {
    const left = deadline - Date.now();
    try {
      return await unaryCall(client, method, request, defaults, { ...options, deadlineMs: Number.isFinite(left) ? Math.max(1, left) : 0 });
    } catch (err) {
      if (!(err instanceof DispatcherError) || err.code !== Code.UNAVAILABLE || attempt >= retry.maxAttempts || options.signal?.aborted) throw err;
      // Full jitter: callers that failed together do not come back together.
      const pause = Math.random() * Math.min(retry.maxBackoffMs, retry.initialBackoffMs * retry.backoffMultiplier ** (attempt - 1));
      if (Date.now() + pause >= deadline) throw err;
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}

function hasIdempotencyKey(request: unknown): request is { idempotencyKey: string } {
  return typeof request === "object" && request !== null && typeof (request as { idempotencyKey?: unknown }).idempotencyKey === "string";
}

export function unaryCall<Req, Res>(client: Client, method: MethodDefinition<Req, Res>, request: Req, defaults: CallDefaults, options: CallOptions = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) return reject(new DispatcherError(Code.CANCELLED, "cancelled before the call started"));
    const deadlineMs = options.deadlineMs ?? defaults.defaultDeadlineMs;
    const start = (): ClientUnaryCall =>
      client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, requestMetadata(defaults, options), deadlineMs > 0 ? { deadline: Date.now() + deadlineMs } : {}, (err, response) => {
        options.signal?.removeEventListener("abort", cancel);
        if (err) reject(DispatcherError.from(err));
        else resolve(response as Res);
      });
    const call = defaults.callerStack === false ? withoutStackCapture(start) : start();
    const cancel = (): void => call.cancel();
    options.signal?.addEventListener("abort", cancel, { once: true });
  });
}

export async function* streamCall<Req, Res>(client: Client, method: MethodDefinition<Req, Res>, request: Req, defaults: CallDefaults, options: CallOptions = {}): AsyncGenerator<Res> {
  if (options.signal?.aborted) throw new DispatcherError(Code.CANCELLED, "cancelled before the call started");
  const callOptions = options.deadlineMs !== undefined && options.deadlineMs > 0 ? { deadline: Date.now() + options.deadlineMs } : {};
  const call: ClientReadableStream<Res> = client.makeServerStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, request, requestMetadata(defaults, options), callOptions);
  const cancel = (): void => call.cancel();
  options.signal?.addEventListener("abort", cancel, { once: true });
  let ended = false;
  try {
    for await (const message of call) yield message as Res;
    ended = true;
  } catch (err) {
    ended = true;
    throw DispatcherError.from(err);
  } finally {
    options.signal?.removeEventListener("abort", cancel);
    if (!ended) call.cancel();
  }
}

/**
 * A client-streaming call: each request is written when the transport has room for it (the next one is not pulled
 * from `requests` before), so a large upload needs no more memory than a few messages. No default deadline.
 */
export async function clientStreamCall<Req, Res>(
  client: Client,
  method: MethodDefinition<Req, Res>,
  requests: AsyncIterable<unknown> | Iterable<unknown>,
  fill: (request: unknown) => unknown,
  defaults: CallDefaults,
  options: CallOptions = {},
): Promise<Res> {
  if (options.signal?.aborted) throw new DispatcherError(Code.CANCELLED, "cancelled before the call started");
  const callOptions = options.deadlineMs !== undefined && options.deadlineMs > 0 ? { deadline: Date.now() + options.deadlineMs } : {};
  let settled = false;
  let call: ClientWritableStream<Req> | undefined;
  const answer = new Promise<Res>((resolve, reject) => {
    call = client.makeClientStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, requestMetadata(defaults, options), callOptions, (err, response) => {
      settled = true;
      if (err) reject(DispatcherError.from(err));
      else resolve(response as Res);
    });
  });
  const stream = call as ClientWritableStream<Req>;
  const cancel = (): void => stream.cancel();
  options.signal?.addEventListener("abort", cancel, { once: true });
  try {
    for await (const request of requests) {
      if (settled) break;
      if (!stream.write(fill(request) as Req)) {
        await new Promise<void>((resolve) => {
          const go = (): void => {
            stream.removeListener("drain", go);
            stream.removeListener("close", go);
            resolve();
          };
          stream.once("drain", go);
          stream.once("close", go);
          void answer.catch(go);
        });
      }
    }
    if (!settled) stream.end();
  } catch (err) {
    // The requests themselves failed (a file that could not be read): the server must not see a whole object.
    stream.cancel();
    void answer.catch(() => undefined);
    throw err;
  } finally {
    options.signal?.removeEventListener("abort", cancel);
  }
  return answer;
}

/** Runs `fn` with stack capture off (Error.stackTraceLimit 0), restored before returning: synchronous code only. */
function withoutStackCapture<T>(fn: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return fn();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

function requestMetadata(defaults: CallDefaults, options: CallOptions): Metadata {
  const metadata = new Metadata();
  if (defaults.token) metadata.set("authorization", `Bearer ${defaults.token}`);
  for (const [key, value] of Object.entries(options.metadata ?? {})) metadata.set(key, value);
  return metadata;
}
