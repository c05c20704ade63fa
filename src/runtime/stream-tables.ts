// Gives every node:http2 session, and every grpc-js client transport, slot tables for its open streams and calls
// (./slot-table.ts says why: their Map and Set otherwise keep each call's objects alive through young collections).
//
// Both tables are private: node:http2 keeps them in the session's internal state object (`streams`, a Map by stream id,
// and `pendingStreams`, a Set of client streams not yet given an id), grpc-js in its transport (`activeCalls`, a Set).
// Each is replaced only where the expected shape is found — an empty Map or Set under that name, just created — so a
// Node or grpc-js whose internals differ keeps its own tables and works as before, only without the gain.
import http2 from "node:http2";
import { createRequire } from "node:module";
import { Duplex } from "node:stream";
import { SlotMap, SlotSet } from "./slot-table.js";

let installed: { http2: boolean; grpc: boolean } | undefined;

/** Installs both replacements, once per process; says which took. */
export function installStreamTables(): { http2: boolean; grpc: boolean } {
  installed ??= { http2: installHttp2Tables(), grpc: installGrpcTransportTables() };
  return installed;
}

// By shape, not instanceof: node:http2's tables are its internal SafeMap and SafeSet, which do not inherit from Map or Set.
const has = (v: unknown, ...methods: string[]): boolean => typeof v === "object" && v !== null && methods.every((m) => typeof (v as Record<string, unknown>)[m] === "function");
const isEmptyMap = (v: unknown): boolean => has(v, "get", "set", "delete", "forEach") && (v as { size: unknown }).size === 0;
const isEmptySet = (v: unknown): boolean => has(v, "add", "delete", "forEach") && !has(v, "get") && (v as { size: unknown }).size === 0;

/**
 * node:http2 assigns a session's state object once, in the session's constructor, under a private symbol. An accessor
 * for that symbol on the sessions' shared prototype sees the assignment, swaps the two tables and stores the state as
 * the plain own property it would have been.
 */
function installHttp2Tables(): boolean {
  // A session over a socket that goes nowhere: enough to read the symbol and the prototype, no network touched.
  const probe = http2.connect("http://localhost", { createConnection: () => new Duplex({ read() {}, write(_chunk, _encoding, done) { done(); } }) });
  probe.on("error", () => {});
  try {
    const kState = Object.getOwnPropertySymbols(probe).find((s) => s.description === "state");
    const state: unknown = kState ? (probe as unknown as Record<symbol, unknown>)[kState] : undefined;
    const sessionPrototype: object | null = Object.getPrototypeOf(Object.getPrototypeOf(probe) as object) as object | null;
    if (!kState || !sessionPrototype || typeof state !== "object" || state === null) return false;
    if (!isEmptyMap((state as Record<string, unknown>).streams) || !isEmptySet((state as Record<string, unknown>).pendingStreams)) return false;
    if (Object.getOwnPropertyDescriptor(sessionPrototype, kState)) return false;
    Object.defineProperty(sessionPrototype, kState, {
      configurable: true,
      get: () => undefined,
      set(this: object, value: unknown) {
        if (typeof value === "object" && value !== null) {
          const s = value as Record<string, unknown>;
          if (isEmptyMap(s.streams)) s.streams = new SlotMap();
          if (isEmptySet(s.pendingStreams)) s.pendingStreams = new SlotSet();
        }
        Object.defineProperty(this, kState, { value, writable: true, enumerable: true, configurable: true });
      },
    });
    return true;
  } finally {
    probe.destroy();
  }
}

/** grpc-js makes each client transport in its connector's createSession: the new transport's call set is swapped. */
function installGrpcTransportTables(): boolean {
  let connector: { prototype: { createSession?: (...args: unknown[]) => Promise<unknown> } } | undefined;
  try {
    const require = createRequire(import.meta.url);
    connector = (require("@grpc/grpc-js/build/src/transport.js") as { Http2SubchannelConnector?: typeof connector }).Http2SubchannelConnector;
  } catch {
    return false;
  }
  const original = connector?.prototype.createSession;
  if (!connector || typeof original !== "function") return false;
  connector.prototype.createSession = function (this: unknown, ...args: unknown[]): Promise<unknown> {
    return original.apply(this, args).then((transport) => {
      const t = transport as { activeCalls?: unknown };
      if (isEmptySet(t.activeCalls)) t.activeCalls = new SlotSet();
      return transport;
    });
  };
  return true;
}
