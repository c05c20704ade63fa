// A small gRPC-Web client over fetch for the generated service definitions: unary calls and server streams, binary
// framing (5-byte frames, trailers in a final 0x80 frame), the status from headers or trailers. No protobuf runtime of
// its own: the generated messages encode and decode themselves.
import type { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";

/** What a generated message type offers (ts-proto's MessageFns). */
export interface MessageType<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
  decode(input: BinaryReader | Uint8Array, length?: number): T;
  fromPartial(object: never): T;
}

export interface MethodDefinition<Req, Res> {
  readonly name: string;
  readonly requestType: MessageType<Req>;
  readonly responseType: MessageType<Res>;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

/** A generated service definition (ts-proto's generic-definitions). */
export interface ServiceDefinition {
  readonly fullName: string;
  readonly methods: Readonly<Record<string, { readonly name: string; readonly responseStream: boolean; readonly requestType: unknown; readonly responseType: unknown }>>;
}

/** gRPC status codes by name, as the bridge and the server send them. */
export const CODE_NAMES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

/** A call that ended with a status other than OK, or could not be made (UNAVAILABLE with the network's reason). */
export class RpcError extends Error {
  override readonly name = "RpcError";
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }

  get codeName(): string {
    return CODE_NAMES[this.code] ?? `CODE_${this.code}`;
  }
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
  /** Deadline in milliseconds (unary calls default to 30 s; streams have none). */
  timeoutMs?: number | undefined;
}

export interface Transport {
  /** e.g. http://127.0.0.1:3303 */
  readonly baseUrl: string;
  /** Headers of every call, e.g. authorization. */
  headers(): Record<string, string>;
}

type DeepPartial<T> = T extends Date | string | number | boolean | undefined ? T
  : T extends readonly (infer U)[] ? DeepPartial<U>[]
  : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> }
  : T;
type RequestOf<M> = M extends { requestType: { decode(...args: never[]): infer Q } } ? Q : never;
type ResponseOf<M> = M extends { responseType: { decode(...args: never[]): infer R } } ? R : never;

/** One function per method: a promise for unary methods, an async iterable for server streams. */
export type Client<S extends ServiceDefinition> = {
  [K in keyof S["methods"]]: S["methods"][K]["responseStream"] extends true
    ? (request: DeepPartial<RequestOf<S["methods"][K]>>, options?: CallOptions) => AsyncIterable<ResponseOf<S["methods"][K]>>
    : (request: DeepPartial<RequestOf<S["methods"][K]>>, options?: CallOptions) => Promise<ResponseOf<S["methods"][K]>>;
};

const UNARY_TIMEOUT_MS = 30_000;

export function createClient<S extends ServiceDefinition>(service: S, transport: Transport): Client<S> {
  const client: Record<string, unknown> = {};
  for (const [key, method] of Object.entries(service.methods)) {
    const path = `/${service.fullName}/${method.name}`;
    const m = method as unknown as MethodDefinition<unknown, unknown>;
    client[key] = m.responseStream
      ? (request: unknown, options?: CallOptions) => stream(transport, path, m, request, options)
      : (request: unknown, options?: CallOptions) => unary(transport, path, m, request, options);
  }
  return client as Client<S>;
}

async function unary<Q, R>(transport: Transport, path: string, method: MethodDefinition<Q, R>, request: unknown, options: CallOptions = {}): Promise<R> {
  const controller = new AbortController();
  const timeoutMs = options.timeoutMs ?? UNARY_TIMEOUT_MS;
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const onAbort = (): void => controller.abort();
  options.signal?.addEventListener("abort", onAbort);
  try {
    const res = await send(transport, path, method, request, controller.signal, timeoutMs);
    const reader = new FrameReader();
    reader.push(new Uint8Array(await res.arrayBuffer()));
    let reply: R | undefined;
    for (const frame of reader.frames()) {
      if (frame.trailer) throwIfError(parseTrailers(frame.data));
      else reply = method.responseType.decode(frame.data);
    }
    if (!reader.sawTrailer) throw new RpcError(13, "the reply ended without a status");
    if (reply === undefined) throw new RpcError(13, "the reply carried no message");
    return reply;
  } catch (err) {
    throw asRpcError(err, controller.signal.aborted && !options.signal?.aborted);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

async function* stream<Q, R>(transport: Transport, path: string, method: MethodDefinition<Q, R>, request: unknown, options: CallOptions = {}): AsyncIterable<R> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort();
  options.signal?.addEventListener("abort", onAbort);
  try {
    const res = await send(transport, path, method, request, controller.signal, options.timeoutMs);
    const body = res.body?.getReader();
    if (!body) throw new RpcError(13, "the reply has no body");
    const reader = new FrameReader();
    for (;;) {
      const { done, value } = await body.read();
      if (value) reader.push(value);
      for (const frame of reader.frames()) {
        if (frame.trailer) {
          throwIfError(parseTrailers(frame.data));
          return;
        }
        yield method.responseType.decode(frame.data);
      }
      if (done) break;
    }
    throw new RpcError(14, "the stream ended without a status");
  } catch (err) {
    throw asRpcError(err, false);
  } finally {
    // Also when the consumer stops iterating early: the bridge then cancels the forwarded call.
    controller.abort();
    options.signal?.removeEventListener("abort", onAbort);
  }
}

async function send<Q>(transport: Transport, path: string, method: MethodDefinition<Q, unknown>, request: unknown, signal: AbortSignal, timeoutMs?: number): Promise<Response> {
  const message = method.requestType.encode(method.requestType.fromPartial(request as never)).finish();
  const headers: Record<string, string> = { ...transport.headers(), "content-type": "application/grpc-web+proto", "x-grpc-web": "1" };
  if (timeoutMs !== undefined) headers["grpc-timeout"] = `${Math.max(1, Math.ceil(timeoutMs))}m`;
  const res = await fetch(`${transport.baseUrl}${path}`, { method: "POST", headers, body: frame(message), signal, credentials: "omit", cache: "no-store" });
  if (res.status !== 200) throw new RpcError(httpToCode(res.status), `the bridge answered HTTP ${res.status}`);
  // Trailers-only: the status is in the headers (the bridge also repeats it in a trailer frame).
  const status = res.headers.get("grpc-status");
  if (status !== null && status !== "0") throwIfError({ code: Number(status), message: decodeMessage(res.headers.get("grpc-message") ?? "") });
  return res;
}

function frame(message: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

/** Collects bytes and cuts them into frames as they complete. */
class FrameReader {
  private buffer = new Uint8Array(0);
  sawTrailer = false;

  push(chunk: Uint8Array): void {
    const next = new Uint8Array(this.buffer.length + chunk.length);
    next.set(this.buffer);
    next.set(chunk, this.buffer.length);
    this.buffer = next;
  }

  *frames(): Generator<{ trailer: boolean; data: Uint8Array }> {
    while (this.buffer.length >= 5) {
      const length = new DataView(this.buffer.buffer, this.buffer.byteOffset).getUint32(1);
      if (this.buffer.length < 5 + length) return;
      const trailer = ((this.buffer[0] as number) & 0x80) !== 0;
      const data = this.buffer.slice(5, 5 + length);
      this.buffer = this.buffer.slice(5 + length);
      if (trailer) this.sawTrailer = true;
      yield { trailer, data };
    }
  }
}

function parseTrailers(data: Uint8Array): { code: number; message: string } {
  const text = new TextDecoder().decode(data);
  const fields = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const at = line.indexOf(":");
    if (at > 0) fields.set(line.slice(0, at).trim().toLowerCase(), line.slice(at + 1).trim());
  }
  return { code: Number(fields.get("grpc-status") ?? 2), message: decodeMessage(fields.get("grpc-message") ?? "") };
}

function throwIfError(status: { code: number; message: string }): void {
  if (status.code !== 0) throw new RpcError(status.code, status.message || (CODE_NAMES[status.code] ?? "error"));
}

function decodeMessage(message: string): string {
  try {
    return decodeURIComponent(message);
  } catch {
    return message;
  }
}

function httpToCode(status: number): number {
  if (status === 401) return 16;
  if (status === 403) return 7;
  if (status === 404 || status === 405 || status === 415) return 12;
  return 14;
}

function asRpcError(err: unknown, timedOut: boolean): RpcError {
  if (err instanceof RpcError) return err;
  if (timedOut) return new RpcError(4, "deadline exceeded");
  if (err instanceof DOMException && err.name === "AbortError") return new RpcError(1, "cancelled");
  // fetch rejects with a TypeError when the bridge is down or refuses this page's origin (CORS): the browser does not
  // say which.
  return new RpcError(14, "cannot reach the dispatcher's gRPC-Web bridge (is it running, and does it allow this page's origin?)");
}
