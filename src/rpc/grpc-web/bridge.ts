// The gRPC-Web bridge: an HTTP/1.1 server for agents and browsers that re-frames each gRPC-Web call onto the
// dispatcher's own gRPC server over one loopback channel, bytes in and bytes out (no protobuf decoding). The caller's
// metadata travels with the call, so authentication, permissions, deadlines and the error edge apply unchanged.
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import { Channel, credentials, status as Code, type Metadata, type ServiceDefinition, type StatusObject } from "@grpc/grpc-js";
import type { Config } from "../../config.js";
import { UnavailableError } from "../../errors.js";
import type { Logger, RequestLogEntry } from "../../log.js";
import { codeName } from "../status.js";
import { createCors } from "./cors.js";
import { Exchange, wireMode } from "./exchange.js";
import { FrameError, decodeText, singleMessage } from "./frames.js";
import { parseTimeout, requestMetadata } from "./metadata.js";

export interface GrpcWebBridgeOptions {
  /** bridge.* (bind, port, CORS origins, request size) and server.* (the gRPC server's bind, message size, grace). */
  config: Pick<Config, "bridge" | "server">;
  log: Logger;
  /** Gets one line per call (peer "grpc-web:<address>"); absent when the request log is off. */
  requestLog?: { write(entry: RequestLogEntry): void } | undefined;
  /** The services the gRPC server serves: their methods are forwarded; grpc.health.v1 is always. */
  services: readonly ServiceDefinition[];
  /** The operations console's port when it is served: its pages on this host may call the bridge (see cors.ts). */
  consolePort?: number | undefined;
}

export interface GrpcWebBridge {
  /** The bound port (useful with bridge.port 0); 0 before start. */
  readonly port: number;
  /** Listens on bridge.bind:bridge.port, forwarding to the gRPC server on `targetPort` of this host. */
  start(targetPort: number): Promise<number>;
  /**
   * Graceful stop: no new connections, new calls UNAVAILABLE, calls under way get graceMs (and a moment to settle)
   * to be answered by the gRPC server's own stop; the rest are cancelled, then every connection closes.
   */
  stop(graceMs?: number): Promise<void>;
  /** Calls under way. */
  inFlight(): number;
}

/** Health answers through the bridge too (load balancers in front of browsers). Reflection is bidi: not gRPC-Web. */
const HEALTH_METHODS: ReadonlyArray<[string, boolean]> = [
  ["/grpc.health.v1.Health/Check", false],
  ["/grpc.health.v1.Health/Watch", true],
];
const SETTLE_MS = 1_000;
/** Beyond this many bytes past the limit, an oversized upload is cut off instead of read to its end. */
const DISCARD_SLACK_BYTES = 1024 * 1024;

export function createGrpcWebBridge(options: GrpcWebBridgeOptions): GrpcWebBridge {
  const { config, log } = options;
  const methods = new Map<string, boolean>(HEALTH_METHODS);
  for (const service of options.services) for (const m of Object.values(service)) if (!m.requestStream) methods.set(m.path, m.responseStream);
  const cors = createCors(config.bridge.corsOrigins, options.consolePort);
  const limit = config.bridge.maxRequestBytes;
  const inFlight = new Set<Exchange>();
  let idle: Array<() => void> = [];
  let http: HttpServer | undefined;
  let channel: Channel | undefined;
  let boundPort = 0;
  let draining = false;
  let stopping: Promise<void> | undefined;

  const settled = (ex: Exchange, code: Code): void => {
    inFlight.delete(ex);
    options.requestLog?.write({
      time: new Date(),
      method: ex.path,
      peer: `grpc-web:${ex.req.socket.remoteAddress ?? "?"}:${ex.req.socket.remotePort ?? 0}`,
      principal: "-",
      code: codeName(code),
      durationMs: performance.now() - ex.started,
      traceId: traceIdOf(ex.req.headers.traceparent),
    });
    if (inFlight.size === 0 && idle.length > 0) {
      const waiters = idle;
      idle = [];
      for (const wake of waiters) wake();
    }
  };

  const drain = (timeoutMs: number): Promise<boolean> => {
    if (inFlight.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        idle = idle.filter((w) => w !== wake);
        resolve(false);
      }, timeoutMs);
      idle.push(wake);
    });
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const origin = req.headers.origin;
    if (req.method === "OPTIONS") return cors.preflight(req, res);
    const base = cors.headers(origin, req.headers.host);
    if (req.method !== "POST") return plain(res, 405, "gRPC-Web calls are POST requests", { ...base, allow: "POST, OPTIONS" });
    const mode = wireMode(req.headers["content-type"]);
    if (!mode) return plain(res, 415, "expected content-type application/grpc-web(+proto) or application/grpc-web-text(+proto)", base);
    const query = req.url?.indexOf("?") ?? -1;
    const path = query >= 0 ? (req.url as string).slice(0, query) : (req.url ?? "/");
    const ex = new Exchange(req, res, mode, path, base, () => draining, settled);
    inFlight.add(ex);
    if (draining || !channel) return ex.refuse(Code.UNAVAILABLE, "server is shutting down");
    const responseStream = methods.get(path);
    if (responseStream === undefined) return ex.refuse(Code.UNIMPLEMENTED, `unknown method ${path}`);
    readBody(ex, mode.text ? Math.ceil((limit * 4) / 3) + 8 : limit + 5, (body) => {
      if (ex.settled) return;
      if (body === "too large") return ex.refuse(Code.RESOURCE_EXHAUSTED, `request larger than ${limit} bytes (bridge.maxRequestBytes)`);
      let message: Buffer;
      try {
        message = singleMessage(mode.text ? decodeText(body.toString("latin1")) : body);
      } catch (err) {
        if (err instanceof FrameError) return ex.refuse(Code.INVALID_ARGUMENT, err.message);
        throw err;
      }
      if (message.length > limit) return ex.refuse(Code.RESOURCE_EXHAUSTED, `request larger than ${limit} bytes (bridge.maxRequestBytes)`);
      const timeoutMs = parseTimeout(req.headers["grpc-timeout"]);
      if (Number.isNaN(timeoutMs)) return ex.refuse(Code.INVALID_ARGUMENT, "malformed grpc-timeout header");
      const deadline = timeoutMs === undefined ? Infinity : Date.now() + (timeoutMs as number);
      forward(channel as Channel, ex, responseStream, message, requestMetadata(req.headers), deadline);
    });
  };

  return {
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get port() {
      return boundPort;
    },

    inFlight: () => inFlight.size,

    async start(targetPort) {
      if (http) throw new Error("gRPC-Web bridge already started");
      const target = loopbackTarget(config.server.bind, targetPort);
      // One HTTP/2 connection to our own server carries every bridged call.
      const c = new Channel(target, credentials.createInsecure(), {
        "grpc.max_receive_message_length": config.server.maxMessageBytes,
        "grpc.max_send_message_length": -1,
      });
      c.getConnectivityState(true);
      const h = createServer({ noDelay: true, keepAliveTimeout: 60_000 }, (req, res) => {
        try {
          handle(req, res);
        } catch (err) {
          log.error({ err, method: req.url }, "gRPC-Web bridge: unexpected error");
          if (!res.headersSent) plain(res, 500, "internal error", {});
          else res.destroy();
        }
      });
      h.on("clientError", (_err, socket) => socket.destroy());
      const bind = config.bridge.bind;
      boundPort = await new Promise<number>((resolve, reject) => {
        h.once("error", (err) => reject(new UnavailableError(`cannot listen on ${bind}:${config.bridge.port}: port ${config.bridge.port} is in use or the address is not available (${err.message}); stop the other process or choose another bridge.port`, "LISTEN_FAILED", { cause: err })));
        h.listen(config.bridge.port, bind, () => resolve((h.address() as { port: number }).port));
      }).catch((err: unknown) => {
        c.close();
        throw err;
      });
      http = h;
      channel = c;
      log.info({ address: `${bind}:${boundPort}`, target, corsOrigins: config.bridge.corsOrigins }, "gRPC-Web bridge listening");
      return boundPort;
    },

    stop(graceMs = config.server.shutdownGraceMs) {
      stopping ??= (async () => {
        const h = http;
        if (!h) return;
        draining = true;
        const closed = new Promise<void>((resolve) => h.close(() => resolve()));
        h.closeIdleConnections();
        // The gRPC server's own stop answers these (streams at once, unary calls within the same grace).
        if (!(await drain(graceMs + SETTLE_MS))) {
          log.warn({ aborted: inFlight.size }, "gRPC-Web bridge: grace period over, cancelling the calls still open");
          for (const ex of [...inFlight]) ex.abort();
        }
        h.closeAllConnections();
        await closed;
        channel?.close();
        log.info("gRPC-Web bridge stopped");
      })();
      return stopping;
    },
  };
}

/**
 * Sends one call on the loopback channel below the grpc-js Client layer: the message is already serialized (the
 * request frame's payload) and replies stay bytes. The caller's traceparent travels in the metadata, so the gRPC
 * server's span joins the caller's trace without a client span of the bridge in between.
 */
function forward(channel: Channel, ex: Exchange, responseStream: boolean, message: Buffer, metadata: Metadata, deadline: Date | number): void {
  const call = channel.createCall(ex.path, deadline, undefined, null, undefined);
  ex.call = { cancel: () => call.cancelWithStatus(Code.CANCELLED, "cancelled by the gRPC-Web client") };
  let initial: Metadata | undefined;
  let reply: Buffer | undefined;
  call.start(metadata, {
    onReceiveMetadata: (m: Metadata) => {
      initial = m;
      if (responseStream) ex.head(m);
    },
    onReceiveMessage: (m: Buffer) => {
      if (!responseStream) {
        reply = m;
        call.startRead();
        return;
      }
      ex.head(initial);
      // Flushed per message; the next one is read when the client's socket has room (backpressure).
      if (ex.message(m)) call.startRead();
      else ex.res.once("drain", () => call.startRead());
    },
    onReceiveStatus: (status: StatusObject) => ex.finish(status, initial, status.code === Code.OK ? reply : undefined),
  });
  call.sendMessageWithContext({}, message);
  call.halfClose();
  call.startRead();
}

/**
 * Collects the request body, up to `max` bytes; past that it is read and dropped (so that the client reads the
 * refusal) unless it goes on far beyond, when the connection is cut.
 */
function readBody(ex: Exchange, max: number, done: (body: Buffer | "too large") => void): void {
  const req = ex.req;
  const chunks: Buffer[] = [];
  let size = 0;
  if (Number(req.headers["content-length"] ?? 0) > max + DISCARD_SLACK_BYTES) {
    ex.closeConnection = true;
    done("too large");
    return;
  }
  req.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size <= max) chunks.push(chunk);
    else if (size > max + DISCARD_SLACK_BYTES) req.destroy();
  });
  req.on("end", () => done(size > max ? "too large" : chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)));
  req.on("error", () => undefined); // a client that went away: the exchange's close handler settles it
}

/** A plain HTTP answer for requests that are not gRPC-Web at all. */
function plain(res: ServerResponse, statusCode: number, text: string, headers: Record<string, unknown>): void {
  res.writeHead(statusCode, { ...headers, "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) }).end(text);
}

/** Where this process's own gRPC server answers: the loopback address when it binds every address. */
export function loopbackTarget(bind: string, port: number): string {
  if (bind === "0.0.0.0" || bind === "") return `127.0.0.1:${port}`;
  if (bind === "::" || bind === "[::]") return `[::1]:${port}`;
  return bind.includes(":") && !bind.startsWith("[") ? `[${bind}]:${port}` : `${bind}:${port}`;
}

function traceIdOf(header: string | string[] | undefined): string {
  const m = typeof header === "string" ? /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/.exec(header) : null;
  return m?.[1] ?? "";
}
