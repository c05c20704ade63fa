// A minimal gRPC-Web client for unary calls over node:http(s), as the agent registers through the dispatcher's
// gRPC-Web bridge: one length-prefixed request frame, then data frames and a trailer frame (flag 0x80) back.
// Messages are encoded and decoded by ts-proto's generated functions; this file only frames them.
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { status as Code } from "@grpc/grpc-js";

export interface MessageCodec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

export interface GrpcWebCallOptions {
  /** Bearer token sent as `authorization: Bearer …`. */
  token?: string | undefined;
  /** W3C traceparent sent with the call, so the server's spans join the caller's trace. */
  traceparent?: string | undefined;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Largest response body accepted (default 4 MiB). */
  maxResponseBytes?: number;
}

/** A call that ended with a non-OK status; `message` is the server's grpc-message. */
export class GrpcWebError extends Error {
  constructor(
    readonly code: Code,
    message: string,
  ) {
    super(message);
    this.name = "GrpcWebError";
  }
}

const DATA_FRAME = 0x00;
const TRAILER_FRAME = 0x80;

/** Encodes one message as a gRPC(-Web) frame: flag byte, 4-byte big-endian length, bytes. */
export function frame(flag: number, payload: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flag, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Splits a gRPC-Web response body into its frames; throws on a truncated frame. */
export function parseFrames(body: Buffer): Array<{ flag: number; payload: Buffer }> {
  const frames: Array<{ flag: number; payload: Buffer }> = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < 5) throw new GrpcWebError(Code.INTERNAL, "truncated gRPC-Web frame header");
    const flag = body.readUInt8(at);
    const length = body.readUInt32BE(at + 1);
    if (body.length - at - 5 < length) throw new GrpcWebError(Code.INTERNAL, "truncated gRPC-Web frame");
    frames.push({ flag, payload: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return frames;
}

/** "grpc-status: 0\r\ngrpc-message: …\r\n" → lower-cased header map. */
export function parseTrailers(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return out;
}

/** HTTP statuses a gRPC-Web server or proxy answers without a gRPC status (gRPC's HTTP-to-gRPC mapping). */
function codeOfHttpStatus(status: number): Code {
  if (status === 400) return Code.INTERNAL;
  if (status === 401) return Code.UNAUTHENTICATED;
  if (status === 403) return Code.PERMISSION_DENIED;
  if (status === 404) return Code.UNIMPLEMENTED;
  if (status === 429 || status === 502 || status === 503 || status === 504) return Code.UNAVAILABLE;
  return Code.UNKNOWN;
}

function decodeMessage(value: string | undefined): string {
  if (!value) return "";
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * Calls `path` ("/package.Service/Method") at `baseUrl` with one request message; resolves with the response message
 * or rejects with GrpcWebError (UNAVAILABLE when the server cannot be reached, DEADLINE_EXCEEDED after timeoutMs).
 */
export function grpcWebUnary<Req, Res>(baseUrl: string, path: string, reqCodec: MessageCodec<Req>, resCodec: MessageCodec<Res>, message: Req, options: GrpcWebCallOptions): Promise<Res> {
  const url = new URL(baseUrl.replace(/\/+$/, "") + path);
  const body = frame(DATA_FRAME, reqCodec.encode(message).finish());
  const maxBytes = options.maxResponseBytes ?? 4 * 1024 * 1024;
  const headers: Record<string, string | number> = {
    "content-type": "application/grpc-web+proto",
    accept: "application/grpc-web+proto",
    "x-grpc-web": "1",
    "grpc-timeout": `${Math.max(1, Math.ceil(options.timeoutMs))}m`,
    "content-length": body.length,
  };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.traceparent) headers.traceparent = options.traceparent;
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise<Res>((resolve, reject) => {
    let settled = false;
    const fail = (err: GrpcWebError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      req.destroy();
      reject(err);
    };
    const done = (value: Res): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      resolve(value);
    };
    const onAbort = (): void => fail(new GrpcWebError(Code.CANCELLED, "cancelled"));
    const timer = setTimeout(() => fail(new GrpcWebError(Code.DEADLINE_EXCEEDED, "deadline exceeded")), options.timeoutMs);
    const req = send(url, { method: "POST", headers }, (res) => {
      readBody(res, maxBytes)
        .then((buf) => {
          try {
            done(decodeResponse(res, buf, resCodec));
          } catch (err) {
            fail(err instanceof GrpcWebError ? err : new GrpcWebError(Code.INTERNAL, `bad gRPC-Web response: ${(err as Error).message}`));
          }
        })
        .catch((err: unknown) => fail(err instanceof GrpcWebError ? err : new GrpcWebError(Code.UNAVAILABLE, `response lost: ${(err as Error).message}`)));
    });
    req.on("error", (err) => fail(new GrpcWebError(Code.UNAVAILABLE, `cannot reach ${url.origin}: ${err.message}`)));
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    req.end(body);
  });
}

function readBody(res: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        res.destroy();
        reject(new GrpcWebError(Code.RESOURCE_EXHAUSTED, `response larger than ${maxBytes} bytes`));
      } else chunks.push(chunk);
    });
    res.on("end", () => resolve(Buffer.concat(chunks)));
    res.on("error", reject);
  });
}

function decodeResponse<Res>(res: IncomingMessage, body: Buffer, codec: MessageCodec<Res>): Res {
  // Trailers-only answers (an error before any message) carry the status in the HTTP headers.
  const headerStatus = res.headers["grpc-status"];
  let trailers: Record<string, string> = typeof headerStatus === "string" ? { "grpc-status": headerStatus, "grpc-message": String(res.headers["grpc-message"] ?? "") } : {};
  let message: Buffer | undefined;
  if (res.statusCode !== 200 && !trailers["grpc-status"]) throw new GrpcWebError(codeOfHttpStatus(res.statusCode ?? 0), `HTTP ${res.statusCode ?? "?"} from the gRPC-Web endpoint`);
  const type = String(res.headers["content-type"] ?? "");
  if (body.length > 0 && !type.startsWith("application/grpc-web")) throw new GrpcWebError(Code.UNKNOWN, `unexpected content type ${JSON.stringify(type)}`);
  for (const f of parseFrames(body)) {
    if (f.flag & TRAILER_FRAME) trailers = { ...trailers, ...parseTrailers(f.payload.toString("utf8")) };
    else if (f.flag === DATA_FRAME) message ??= f.payload;
    else throw new GrpcWebError(Code.INTERNAL, `unsupported frame flag ${f.flag} (compressed?)`);
  }
  const code = Number(trailers["grpc-status"] ?? Number.NaN);
  if (!Number.isInteger(code)) throw new GrpcWebError(Code.INTERNAL, "response without grpc-status");
  if (code !== Code.OK) throw new GrpcWebError(code, decodeMessage(trailers["grpc-message"]) || Code[code] || "error");
  if (!message) throw new GrpcWebError(Code.INTERNAL, "OK response without a message");
  return codec.decode(message);
}
