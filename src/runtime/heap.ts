// How far the JavaScript heap grows between full collections in a process running roles (runtime.heapGrowingPercent).
// V8 sizes the old generation after each full collection by how cheap collecting looked on the main thread; in a
// steady service that is about a tenth above what survived, and what each call leaves behind (a few KB that outlive
// two young collections) then fills it in seconds. Each full collection marks the whole live heap, on the main thread
// and on V8's helper threads at once: on a small machine that takes the cores from the database and from every call
// in flight. A fixed factor trades memory (up to 1 + percent/100 times the live heap) for collections that many
// times rarer.
import { setFlagsFromString } from "node:v8";

/** Sets V8's heap growing factor to 1 + percent/100 for the rest of the process; 0 leaves V8's own choice. */
export function setHeapGrowing(percent: number, setFlags: (flags: string) => void = setFlagsFromString): void {
  if (!Number.isInteger(percent) || percent < 0) throw new RangeError(`heap growing percent must be a whole number, 0 or more (got ${percent})`);
  if (percent === 0) return;
  // Read by V8 at the end of every full collection, when it sets the next one's limit: it applies from the next on.
  setFlags(`--heap-growing-percent=${percent}`);
}
