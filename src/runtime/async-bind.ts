// Node 20's AsyncResource.prototype.bind, which node:http2 calls for every client request, defines the bound
// function's deprecated `asyncResource` accessor with two fresh util.deprecate wrappers per call. Measured on Node
// 20.20: with them, everything a request allocates (its HTTP/2 stream, grpc-js's call chain, the decoded answer)
// survived every young-generation collection until the next full one: in a bare node:http2 client a quarter of what
// it allocated survived each scavenge, and each took 7–15 ms, stopping all of the process's calls at once. With one
// shared accessor instead, the same requests die young (scavenges of ~1 ms, nothing promoted). This installs such a
// bind: same async scope, `length` and `asyncResource` (with its DEP0172 warning, once) as Node's.
import { AsyncResource } from "node:async_hooks";

const RESOURCE = Symbol("asyncResource");
/** The Node majors whose bind this replaces (where it was measured). */
const AFFECTED_MAJORS = new Set([20]);

let installed = false;
let warned = false;

function warnDeprecated(): void {
  if (warned) return;
  warned = true;
  process.emitWarning("The asyncResource property on bound functions is deprecated", "DeprecationWarning", "DEP0172");
}

type Bound = ((...args: unknown[]) => unknown) & { [RESOURCE]?: AsyncResource };

const asyncResourceAccessor: PropertyDescriptor = {
  configurable: true,
  enumerable: true,
  get(this: Bound) {
    warnDeprecated();
    return this[RESOURCE];
  },
  set(this: Bound, value: AsyncResource) {
    warnDeprecated();
    this[RESOURCE] = value;
  },
};

function bind<F extends (...args: never[]) => unknown>(this: AsyncResource, fn: F, thisArg?: unknown): F {
  return bound(this, fn, thisArg);
}

function bound<F extends (...args: never[]) => unknown>(resource: AsyncResource, fn: F, thisArg: unknown): F {
  if (typeof fn !== "function") throw new TypeError(`The "fn" argument must be of type function. Received ${typeof fn}`);
  const call = fn as unknown as (...args: unknown[]) => unknown;
  const out: Bound =
    thisArg === undefined
      ? function (this: unknown, ...args: unknown[]) {
          return resource.runInAsyncScope(call, this, ...args);
        }
      : resource.runInAsyncScope.bind(resource, call, thisArg);
  Object.defineProperty(out, RESOURCE, { value: resource, writable: true, configurable: true, enumerable: false });
  Object.defineProperties(out, {
    length: { configurable: true, enumerable: false, value: fn.length, writable: false },
    asyncResource: asyncResourceAccessor,
  });
  return out as unknown as F;
}

/**
 * Replaces AsyncResource.prototype.bind on the Node majors where the built-in one keeps every HTTP/2 client request
 * alive until a full collection (see above); once per process, a no-op elsewhere. Returns whether it is in place.
 */
export function installAsyncBind(nodeVersion: string = process.versions.node): boolean {
  if (installed) return true;
  if (!AFFECTED_MAJORS.has(Number(nodeVersion.split(".")[0]))) return false;
  AsyncResource.prototype.bind = bind;
  installed = true;
  return true;
}
