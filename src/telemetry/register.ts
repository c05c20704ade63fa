// The file loaded with `node --import` (or awaited by bin/ before the CLI): hooks ES-module loading and starts tracing.
//
// Why at start-up: @grpc/grpc-js is CommonJS imported from ES modules, which Node loads without the require hook the
// instrumentation relies on, so it is silently left uninstrumented unless import-in-the-middle's loader hook is
// registered and the instrumentation enabled before grpc-js is first imported. This is the one module that does work at
// import time, on purpose; everything it starts is process-wide and lives on globalThis so a second load is a no-op.
import { register } from "node:module";
import { settingsFromProcess, startTelemetry, type Telemetry } from "./sdk.js";

const STATE = Symbol.for("dispatcher.telemetry");
type Holder = typeof globalThis & { [STATE]?: Telemetry | null };
const holder = globalThis as Holder;

if (holder[STATE] === undefined) {
  holder[STATE] = null;
  // Only grpc-js is wrapped: every other module loads untouched (and keeps tsx's transform). Registered after tsx's
  // hooks, so it runs first and sees the URLs tsx resolves.
  register("@opentelemetry/instrumentation/hook.mjs", import.meta.url, { data: { include: ["@grpc/grpc-js"] } });
  const settings = settingsFromProcess(process.argv.slice(2), process.env);
  if (settings) holder[STATE] = startTelemetry(settings);
}

/** Flushes and stops tracing; resolves at once when tracing was never started. Await it before the process exits. */
export function shutdownTelemetry(timeoutMs?: number): Promise<void> {
  return holder[STATE]?.shutdown(timeoutMs) ?? Promise.resolve();
}
