// The file loaded with `node --import` (or awaited by bin/ before the CLI): hooks ES-module loading and starts tracing.
//
// Why at start-up: @grpc/grpc-js is CommonJS imported from ES modules, which Node loads without the require hook the
// instrumentation relies on, so it is silently left uninstrumented unless import-in-the-middle's loader hook is
// registered and the instrumentation enabled before grpc-js is first imported. This is the one module that does work at
// import time, on purpose; everything it starts is process-wide and lives on globalThis (./process.ts) so a second load is
// a no-op.
import { register } from "node:module";
import { processTelemetry, setProcessTelemetry } from "./process.js";
import { keepsSpans, settingsFromProcess, startTelemetry } from "./sdk.js";

if (processTelemetry() === undefined) {
  setProcessTelemetry(null);
  // Only grpc-js is wrapped: every other module loads untouched (and keeps tsx's transform). Registered after tsx's
  // hooks, so it runs first and sees the URLs tsx resolves.
  register("@opentelemetry/instrumentation/hook.mjs", import.meta.url, { data: { include: ["@grpc/grpc-js"] } });
  const argv = process.argv.slice(2);
  const settings = settingsFromProcess(argv, process.env);
  if (settings) setProcessTelemetry(startTelemetry(settings, { keepSpans: keepsSpans(argv) }));
}

/** Flushes and stops tracing; resolves at once when tracing was never started. Await it before the process exits. */
export function shutdownTelemetry(timeoutMs?: number): Promise<void> {
  return processTelemetry()?.shutdown(timeoutMs) ?? Promise.resolve();
}
