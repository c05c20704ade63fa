// Before any role starts, every port the chosen roles will listen on must be free: a taken port is reported at once
// and in words, not after the other roles have started (nor behind grpc-js' own "No address added" line).
import { createServer } from "node:net";
import type { Config } from "../config.js";
import { UnavailableError } from "../errors.js";

export interface Listener {
  what: string;
  /** The settings that choose it, for the message. */
  setting: string;
  bind: string;
  port: number;
}

/** Where the given roles listen under this configuration. */
export function listenersOf(config: Config, roles: readonly string[]): Listener[] {
  const out: Listener[] = [];
  if (roles.includes("dispatcher")) {
    out.push({ what: "gRPC server", setting: "server.port", bind: config.server.bind, port: config.server.port });
    out.push({ what: "gRPC-Web bridge", setting: "bridge.port", bind: config.bridge.bind, port: config.bridge.port });
    if (config.console.enabled) out.push({ what: "operations console", setting: "console.port, or set console.enabled false", bind: config.console.bind, port: config.console.port });
  }
  if (roles.includes("km")) out.push({ what: "KM", setting: "km.port", bind: config.km.bind, port: config.km.port });
  return out.filter((l) => l.port !== 0);
}

function tryListen(l: Listener): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ host: l.bind, port: l.port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/** Throws UnavailableError naming the first listener whose address cannot be bound (in use, or not on this machine). */
export async function checkPortsFree(config: Config, roles: readonly string[]): Promise<void> {
  const listeners = listenersOf(config, roles);
  const seen = new Map<number, Listener>();
  for (const l of listeners) {
    const other = seen.get(l.port);
    if (other) throw new UnavailableError(`${other.what} and ${l.what} are both configured on port ${l.port}: choose another port (${l.setting})`, "LISTEN_FAILED");
    seen.set(l.port, l);
  }
  for (const l of listeners) {
    const err = await tryListen(l);
    if (err) {
      const why = err.code === "EADDRINUSE" ? `port ${l.port} is in use` : `the address is not available (${err.code ?? err.message})`;
      throw new UnavailableError(`cannot listen on ${l.bind}:${l.port} (${l.what}): ${why}; stop the other process or choose another port (${l.setting})`, "LISTEN_FAILED");
    }
  }
}
