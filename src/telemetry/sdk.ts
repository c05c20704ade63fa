// Builds and starts the OpenTelemetry Node SDK for this process: gRPC instrumentation, sampler and span exporters.
import { GrpcInstrumentation } from "@opentelemetry/instrumentation-grpc";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { NodeSDK } from "@opentelemetry/sdk-node";
import {
  AlwaysOffSampler,
  BatchSpanProcessor,
  NoopSpanProcessor,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { loadConfig, type Config } from "../config.js";
import { FileSpanExporter } from "./file-exporter.js";

export type TelemetrySettings = Config["telemetry"];

export interface Telemetry {
  /** True when spans leave the process (OTLP endpoint or span file). */
  readonly exporting: boolean;
  /** Flushes pending spans and stops the SDK; gives up after `timeoutMs` so an unreachable collector cannot hold exit. */
  shutdown(timeoutMs?: number): Promise<void>;
}

/**
 * The telemetry settings of this process: the configuration file named by `-c`/`--config` in `argv` (read before the
 * CLI parses it) or DISPATCHER_CONFIG, overlaid by the environment. Undefined when the configuration is invalid: the
 * CLI reports that, tracing just stays off.
 */
export function settingsFromProcess(argv: readonly string[], env: NodeJS.ProcessEnv): TelemetrySettings | undefined {
  try {
    return loadConfig(env, configFileArg(argv) ?? env.DISPATCHER_CONFIG).telemetry;
  } catch {
    return undefined;
  }
}

/** The value of the CLI's `-c`/`--config` option in `argv`, in any of the forms commander accepts. */
export function configFileArg(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--") break;
    if (a === "-c" || a === "--config") return argv[i + 1];
    if (a.startsWith("--config=")) return a.slice("--config=".length);
    if (/^-c[^-]/.test(a)) return a.slice(2);
  }
  return undefined;
}

/** The OTLP/HTTP traces URL for an endpoint given as a base (`http://host:4318`) or as the full `/v1/traces` URL. */
export function tracesUrl(endpoint: string): string {
  const base = endpoint.replace(/\/+$/, "");
  return base.endsWith("/v1/traces") ? base : `${base}/v1/traces`;
}

/**
 * Starts the SDK. Must run before @grpc/grpc-js is first loaded: the instrumentation patches the module as it loads
 * (require hook for CommonJS, import-in-the-middle for ES modules — see register.ts).
 *
 * With nothing to export, a tracer provider is still installed with a sampler that records nothing: trace ids are
 * still minted and propagated (logs, request log, job traceparents correlate) at almost no cost.
 */
export function startTelemetry(settings: TelemetrySettings): Telemetry {
  const processors: SpanProcessor[] = [];
  if (settings.otlpEndpoint) processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesUrl(settings.otlpEndpoint) })));
  if (settings.file) processors.push(new SimpleSpanProcessor(new FileSpanExporter(settings.file)));
  const exporting = processors.length > 0;
  const sampler: Sampler = exporting ? new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampleRatio) }) : new AlwaysOffSampler();

  const sdk = new NodeSDK({
    serviceName: settings.serviceName,
    instrumentations: [new GrpcInstrumentation()],
    sampler,
    spanProcessors: exporting ? processors : [new NoopSpanProcessor()],
    // Explicitly empty: otherwise the SDK would default to OTLP metric and log exporters from the environment.
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();

  let stopped: Promise<void> | undefined;
  return {
    exporting,
    shutdown(timeoutMs = 5_000) {
      stopped ??= new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        timer.unref();
        sdk.shutdown().then(
          () => resolve(),
          () => resolve(),
        ).finally(() => clearTimeout(timer));
      });
      return stopped;
    },
  };
}
