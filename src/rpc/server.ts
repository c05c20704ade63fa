// The grpc-js server of a role: its services through the adapter, health, reflection, limits and graceful stop.
import { Server, ServerCredentials, type ChannelOptions, type ServerWritableStream, type UntypedHandleCall, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import type { Config } from "../config.js";
import { UnavailableError } from "../errors.js";
import type { Logger, RequestLogEntry } from "../log.js";
import { bindService, serviceName, type RpcService } from "./adapter.js";
import { tolerantDefinition } from "./request-body.js";
import { InFlight } from "./in-flight.js";
import { PrincipalLimits } from "./limits.js";
import { requestLimits } from "./request-limits.js";
import type { AuthenticatePeer } from "../iam/principal.js";
import { permissionFor } from "../iam/permissions.js";
import type { Authenticate } from "../iam/principal.js";
import { addReflection } from "./reflection.js";
import { keepCallsYoung } from "../runtime/young-calls.js";

export interface RpcServerOptions {
  /** Reads mode (reflection default) and server.* (bind, port, limits, keepalive, deadline, grace, reflection). */
  config: Pick<Config, "mode" | "server">;
  log: Logger;
  /** Gets one line per RPC; absent when the request log is off. */
  requestLog?: { write(entry: RequestLogEntry): void } | undefined;
  authenticate: Authenticate;
  /** Identifies callers by their mTLS client certificate first (KM). */
  authenticatePeer?: AuthenticatePeer;
  services: RpcService[];
  /** TLS/mTLS credentials (KM); plaintext when absent. */
  credentials?: ServerCredentials;
  /** Descriptor set for reflection (default src/gen/descriptors.binpb). */
  descriptorSet?: URL | string;
}

export interface RpcServer {
  /** The bound port (useful with server.port 0); 0 before start. */
  readonly port: number;
  /** Binds and serves; health turns SERVING. Resolves with the bound port. */
  start(): Promise<number>;
  /**
   * Graceful stop: health NOT_SERVING, new calls UNAVAILABLE, server streams cancelled, unary calls get up to
   * graceMs (default server.shutdownGraceMs) to finish, then the rest are aborted and the server shuts down.
   */
  stop(graceMs?: number): Promise<void>;
  /** Calls being handled now (adapter calls only). */
  inFlight(): number;
  /**
   * While `reason` is set, health stays NOT_SERVING (before and after start) and the reason is logged; null lets it
   * report SERVING again while the server runs and is not stopping. For a server that answers but cannot do its job.
   */
  setNotServing(reason: string | null): void;
  /**
   * While `unavailable` is set (a store every call needs is gone), health is NOT_SERVING with its message as the reason
   * (or `reason`, which may say more than callers should hear) and new calls get it at once, rather than each waiting
   * for the store to time out; null serves again.
   */
  refuseCalls(unavailable: UnavailableError | null, reason?: string): void;
}

/** How long, after the grace period or after aborting, the server waits for handlers and connections to close. */
const SETTLE_MS = 1_000;

export function createRpcServer(options: RpcServerOptions): RpcServer {
  const { config, log } = options;
  const names = options.services.map((s) => serviceName(s.definition));
  const inFlight = new InFlight();
  const health = new HealthImplementation();
  const healthWatches = new Set<ServerWritableStream<unknown, unknown>>();
  let server: Server | undefined;
  let boundPort = 0;
  let draining = false;
  let stopping: Promise<void> | undefined;

  let notServing: string | null = null;
  let refusing: UnavailableError | null = null;
  const setHealth = (status: "SERVING" | "NOT_SERVING"): void => {
    for (const name of ["", ...names]) health.setStatus(name, status);
  };

  const limits = new PrincipalLimits({
    ratePerSecond: config.server.rateLimitPerSecond,
    burst: config.server.rateLimitBurst,
    holdMs: config.server.rateLimitHoldMs,
    maxHeld: config.server.rateLimitMaxHeld,
    maxConcurrentCalls: config.server.maxConcurrentCallsPerPrincipal,
    maxOpenStreams: config.server.maxOpenStreamsPerPrincipal,
  });

  const limitOf = requestLimits(config.server);

  const build = (): Server => {
    keepCallsYoung();
    const s = new Server(serverOptions(config.server));
    const runtime = { log, requestLog: options.requestLog, authenticate: options.authenticate, authenticatePeer: options.authenticatePeer, defaultDeadlineMs: config.server.defaultDeadlineMs, maxMetadataBytes: config.server.maxMetadataBytes, limits, inFlight, isDraining: () => draining, refusal: () => refusing };
    for (const service of options.services) {
      for (const method of Object.values(service.definition)) {
        if (permissionFor(method.path) === undefined) log.error({ method: method.path }, "method missing from the permission table: every call will be denied");
      }
      s.addService(tolerantDefinition(service.definition, limitOf), bindService(service, runtime));
    }
    setHealth("NOT_SERVING");
    health.addToServer({ addService: (definition, impl) => s.addService(definition, trackWatches(impl, healthWatches)) });
    if (config.server.reflection) {
      // Behind authentication in every mode: the API surface is nobody's business without a key (DESIGN.md).
      addReflection(s, { services: names, authenticated: true, runtime, descriptorSet: options.descriptorSet });
    }
    return s;
  };

  return {
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get port() {
      return boundPort;
    },

    inFlight: () => inFlight.size,

    setNotServing(reason) {
      notServing = reason;
      if (reason) log.error({ reason }, "health reports NOT_SERVING");
      if (server && !draining) setHealth(reason ? "NOT_SERVING" : "SERVING");
    },

    refuseCalls(unavailable, reason) {
      refusing = unavailable;
      this.setNotServing(unavailable ? (reason ?? unavailable.message) : null);
    },

    async start() {
      if (server) throw new Error("rpc server already started");
      const s = build();
      server = s;
      const host = config.server.bind.includes(":") && !config.server.bind.startsWith("[") ? `[${config.server.bind}]` : config.server.bind;
      const address = `${host}:${config.server.port}`;
      boundPort = await new Promise<number>((resolve, reject) => {
        s.bindAsync(address, options.credentials ?? ServerCredentials.createInsecure(), (err, port) => {
          // An operator's problem (another process holds the port, or a wrong bind address), not a crash: no stack trace.
          if (err) reject(new UnavailableError(`cannot listen on ${address}: port ${config.server.port} is in use or the address is not available (${err.message}); stop the other process or choose another port`, "LISTEN_FAILED", { cause: err }));
          else resolve(port);
        });
      }).catch((err: unknown) => {
        s.forceShutdown();
        server = undefined;
        throw err;
      });
      setHealth(notServing ? "NOT_SERVING" : "SERVING");
      log.info({ address: `${host}:${boundPort}`, services: names, reflection: config.server.reflection }, "gRPC server listening");
      return boundPort;
    },

    stop(graceMs = config.server.shutdownGraceMs) {
      stopping ??= (async () => {
        const s = server;
        if (!s) return;
        draining = true;
        setHealth("NOT_SERVING");
        const shuttingDown = new UnavailableError("server is shutting down", "SHUTTING_DOWN");
        const streams = inFlight.abort(shuttingDown, (call) => call.longLived);
        log.info({ inFlight: inFlight.size, streamsCancelled: streams, graceMs }, "graceful stop: draining in-flight calls");
        if (!(await inFlight.drain(graceMs))) {
          const n = inFlight.abort(shuttingDown);
          log.warn({ aborted: n }, "grace period over: aborted the calls still running");
          await inFlight.drain(SETTLE_MS);
        }
        for (const watch of healthWatches) watch.end();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            s.forceShutdown();
            resolve();
          }, SETTLE_MS);
          s.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        log.info("gRPC server stopped");
      })();
      return stopping;
    },
  };
}

function serverOptions(server: Config["server"]): ChannelOptions {
  const options: ChannelOptions = {
    // channelz: grpc-js's introspection counters, which no service here exposes, cost objects and timestamps per call.
    "grpc.enable_channelz": 0,
    "grpc.max_receive_message_length": server.maxMessageBytes,
    "grpc.max_send_message_length": server.maxMessageBytes,
  };
  if (server.keepaliveTimeMs > 0) options["grpc.keepalive_time_ms"] = server.keepaliveTimeMs;
  if (server.keepaliveTimeoutMs > 0) options["grpc.keepalive_timeout_ms"] = server.keepaliveTimeoutMs;
  return options;
}

/** Health's Watch streams never end by themselves; remember them so that a stop can end them cleanly. */
function trackWatches(impl: UntypedServiceImplementation, watches: Set<ServerWritableStream<unknown, unknown>>): UntypedServiceImplementation {
  const watch = impl.watch as ((call: ServerWritableStream<unknown, unknown>) => void) | undefined;
  if (!watch) return impl;
  const tracked = (call: ServerWritableStream<unknown, unknown>): void => {
    watches.add(call);
    const forget = (): void => void watches.delete(call);
    call.on("cancelled", forget);
    call.on("finish", forget);
    watch(call);
  };
  return { ...impl, watch: tracked as UntypedHandleCall };
}

