// How every local cloud call runs: its signal and deadline honoured, and anything that is not a DriverError
// classified (an abort is TIMEOUT, the rest a retryable INTERNAL).
import { callSignal, DriverError, type DriverCallOptions } from "../driver.js";

export async function runCall<T>(opts: DriverCallOptions, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const signal = callSignal(opts);
  try {
    if (opts.deadline.getTime() <= Date.now()) throw new DriverError("TIMEOUT", "the local cloud call arrived past its deadline");
    signal.throwIfAborted();
    return await fn(signal);
  } catch (err) {
    if (err instanceof DriverError) throw err;
    if (signal.aborted) throw new DriverError("TIMEOUT", "the local cloud call was aborted or passed its deadline", { cause: err });
    throw new DriverError("INTERNAL", "the local cloud failed unexpectedly", { cause: err, retryable: true });
  }
}
