// This process's telemetry, as src/telemetry/register.ts started it (or null): read by the composition root, which
// hands the span store to the roles. Kept apart from register.ts, whose import has effects.
import type { Telemetry } from "./sdk.js";

const STATE = Symbol.for("dispatcher.telemetry");
type Holder = typeof globalThis & { [STATE]?: Telemetry | null };
const holder = globalThis as Holder;

/** undefined before register.ts ran; null when it found tracing off or the configuration invalid. */
export function processTelemetry(): Telemetry | null | undefined {
  return holder[STATE];
}

export function setProcessTelemetry(telemetry: Telemetry | null): void {
  holder[STATE] = telemetry;
}
