// The metrics side of a process running roles: installs the OpenTelemetry meter provider (Prometheus pull on the
// metrics port, OTLP push when an endpoint is set) and serves /metrics, /healthz and /readyz on metrics.bind:metrics.port
// — the only HTTP a worker or monitor process has, so orchestrators probe them there.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { metrics } from "@opentelemetry/api";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-proto";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from "@opentelemetry/sdk-metrics";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";

/** Default metrics port of each role; a process running several uses the first of its roles in this order. */
export const DEFAULT_METRICS_PORTS: ReadonlyArray<readonly [role: string, port: number]> = [
  ["dispatcher", 9464],
  ["worker", 9465],
  ["monitor", 9466],
  ["km", 9467],
];

/** The metrics port of a process running `roles`: metrics.port when set, else its first role's default. */
export function metricsPort(config: Pick<Config, "metrics">, roles: readonly string[]): number {
  if (config.metrics.port !== undefined) return config.metrics.port;
  return DEFAULT_METRICS_PORTS.find(([role]) => roles.includes(role))?.[1] ?? 9464;
}

/** The OTLP/HTTP metrics URL for an endpoint given as a base (`http://host:4318`) or as the full `/v1/metrics` URL. */
export function metricsUrl(endpoint: string): string {
  const base = endpoint.replace(/\/+$/, "").replace(/\/v1\/traces$/, "");
  return base.endsWith("/v1/metrics") ? base : `${base}/v1/metrics`;
}

export interface RunningMetrics {
  /** The port /metrics, /healthz and /readyz answer on (undefined when metrics are off). */
  readonly port: number | undefined;
  /** /readyz answers 200 while ready (roles started, not stopping) and `probe` passes; 503 otherwise. */
  setReady(ready: boolean): void;
  /** Closes the port, pushes a last OTLP export and uninstalls the meter provider. */
  stop(): Promise<void>;
}

export interface MetricsOptions {
  config: Pick<Config, "metrics" | "telemetry">;
  roles: readonly string[];
  log: Logger;
  /** What must hold for /readyz besides the roles running (e.g. NATS connected); a reason when it does not. */
  probe?: () => string | null;
}

/**
 * Installs the meter provider and opens the metrics port. With metrics.enabled false nothing is installed: every
 * recording goes to the API's no-op meter. A port that cannot be bound fails the start (like any other port).
 */
export async function startMetrics(options: MetricsOptions): Promise<RunningMetrics> {
  const { config, log } = options;
  if (!config.metrics.enabled) return { port: undefined, setReady: () => undefined, stop: async () => undefined };
  const prometheus = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  const readers: IMetricReader[] = [prometheus];
  if (config.telemetry.otlpEndpoint) {
    const exporter = new OTLPMetricExporter({ url: metricsUrl(config.telemetry.otlpEndpoint) });
    readers.push(new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: config.metrics.otlpIntervalMs }));
  }
  const provider = new MeterProvider({ resource: resourceFromAttributes({ "service.name": config.telemetry.serviceName }), readers });
  metrics.setGlobalMeterProvider(provider);

  let ready = false;
  const server = createServer((req, res) => route(req, res, prometheus, () => (ready ? (options.probe?.() ?? null) : "starting or stopping")));
  const port = metricsPort(config, options.roles);
  try {
    await listen(server, port, config.metrics.bind);
  } catch (err) {
    metrics.disable();
    await provider.shutdown().catch(() => undefined);
    const why = (err as NodeJS.ErrnoException).code === "EADDRINUSE" ? "is in use" : "cannot be bound";
    throw new Error(`metrics port ${config.metrics.bind}:${port} ${why}: set metrics.port (DISPATCHER_METRICS_PORT) or metrics.enabled=false`, { cause: err });
  }
  const bound = (server.address() as AddressInfo).port;
  log.info({ port: bound, otlp: readers.length > 1 }, "metrics serving /metrics, /healthz, /readyz");
  return {
    port: bound,
    setReady: (r) => void (ready = r),
    async stop() {
      ready = false;
      await new Promise<void>((resolve) => server.close(() => resolve()));
      // A last OTLP push; an unreachable collector must not hold the exit.
      await Promise.race([provider.shutdown().catch(() => undefined), new Promise((r) => setTimeout(r, 5_000).unref())]);
      metrics.disable();
    },
  };
}

function route(req: IncomingMessage, res: ServerResponse, prometheus: PrometheusExporter, notReady: () => string | null): void {
  const path = (req.url ?? "/").split("?")[0];
  if (req.method !== "GET" && req.method !== "HEAD") return text(res, 405, "method not allowed\n");
  if (path === "/metrics") return prometheus.getMetricsRequestHandler(req, res);
  if (path === "/healthz") return text(res, 200, "ok\n");
  if (path === "/readyz") {
    const why = notReady();
    return why === null ? text(res, 200, "ready\n") : text(res, 503, `not ready: ${why}\n`);
  }
  text(res, 404, "not found: /metrics, /healthz, /readyz\n");
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
  res.end(body);
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}
