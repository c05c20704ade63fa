// Builds and starts the OpenTelemetry Node SDK for this process: gRPC instrumentation, sampler, span exporters and the
// embedded span store.
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
import { SpanStore, SpanStoreProcessor } from "./span-store.js";
import { setSpansRecorded } from "./spans.js";

export type TelemetrySettings = Config["telemetry"];

export interface Telemetry {
  /** True when spans are recorded: they leave the process (OTLP endpoint or span file) or stay in the span store. */
  readonly exporting: boolean;
  /** The embedded span store (telemetry.store), in processes that keep spans (see keepsSpans). */
  readonly spans?: SpanStore | undefined;
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
 * Whether the process `argv` (after the program name) starts can read its own span store back: only the dispatcher role
 * serves TraceService and the console, so only `start` (every role) and a `serve` whose roles include the dispatcher
 * keep spans. A worker, monitor or KM process on its own would fill a store nobody reads, paying for every span it
 * records; with nothing else to export it records none, and trace ids still pass through it.
 */
export function keepsSpans(argv: readonly string[]): boolean {
  let command: string | undefined;
  const roles: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--") break;
    if (a === "-c" || a === "--config") i++;
    else if (a === "-r" || a === "--role") roles.push(...(argv[++i] ?? "").split(","));
    else if (a.startsWith("--role=")) roles.push(...a.slice("--role=".length).split(","));
    else if (/^-r[^-]/.test(a)) roles.push(...a.slice(2).split(","));
    else if (!a.startsWith("-")) command ??= a;
  }
  if (command === "start") return true;
  return command === "serve" && roles.some((r) => r.trim() === "dispatcher");
}

export interface StartOptions {
  /** Keep spans in the embedded store when telemetry.store.enabled (processes that serve TraceService: see keepsSpans). */
  keepSpans?: boolean;
}

/**
 * Starts the SDK. Must run before @grpc/grpc-js is first loaded: the instrumentation patches the module as it loads
 * (require hook for CommonJS, import-in-the-middle for ES modules — see register.ts).
 *
 * With nothing to export or keep, a tracer provider is still installed with a sampler that records nothing: trace ids
 * are still minted and propagated (logs, request log, job traceparents correlate) at almost no cost.
 *
 * Sampling: new traces are kept at telemetry.sampleRatio; a sampled parent is always followed. A parent that is not
 * sampled is judged by the same ratio rather than obeyed: the usual such caller is the CLI or another client that
 * records nothing itself, and its flag would otherwise hide every job it starts. The ratio sampler decides by trace id,
 * so every process of a deployment (same ratio) makes the same choice for one trace.
 */
export function startTelemetry(settings: TelemetrySettings, options: StartOptions = {}): Telemetry {
  const processors: SpanProcessor[] = [];
  if (settings.otlpEndpoint) processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesUrl(settings.otlpEndpoint) })));
  if (settings.file) processors.push(new SimpleSpanProcessor(new FileSpanExporter(settings.file)));
  const spans = options.keepSpans && settings.store.enabled ? new SpanStore(settings.store) : undefined;
  if (spans) processors.push(new SpanStoreProcessor(spans));
  const exporting = processors.length > 0;
  const ratio = new TraceIdRatioBasedSampler(settings.sampleRatio);
  const sampler: Sampler = exporting ? new ParentBasedSampler({ root: ratio, remoteParentNotSampled: ratio }) : new AlwaysOffSampler();

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
  setSpansRecorded(exporting);

  let stopped: Promise<void> | undefined;
  return {
    exporting,
    spans,
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
