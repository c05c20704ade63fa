// CORS for browsers calling the bridge: only the configured origins — and the operations console served by this same
// host — get CORS headers, and so only they can read a response or pass a preflight. Callers that send no Origin
// (agents, servers) are not affected.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";

/** Response headers a browser script may read: the status trailers for trailers-only replies. */
const EXPOSED = "grpc-status, grpc-message, grpc-status-details-bin";
const PREFLIGHT_MAX_AGE_S = "600";

export interface Cors {
  /** The CORS headers for a request from `origin` to `host` (empty when the origin is absent or not allowed). */
  headers(origin: string | undefined, host?: string): OutgoingHttpHeaders;
  /** Answers an OPTIONS preflight: 204 with the allowances for an allowed origin, 403 without any otherwise. */
  preflight(req: IncomingMessage, res: ServerResponse): void;
}

/**
 * `origins` as configured (bridge.corsOrigins); "*" allows every origin. With `consolePort`, a page of the console on
 * that port of the very host name the browser used to reach the bridge is allowed too: http://devbox:3304 calling
 * http://devbox:3303 works however the machine is named, while a page of another host never matches (the browser, not
 * the page, writes the Host header).
 */
export function createCors(origins: readonly string[], consolePort?: number): Cors {
  const any = origins.includes("*");
  const allowed = new Set(origins.map((o) => o.replace(/\/+$/, "").toLowerCase()));
  const isAllowed = (origin: string | undefined, host: string | undefined): origin is string =>
    origin !== undefined && (any || allowed.has(origin.toLowerCase()) || (consolePort !== undefined && isConsoleOfHost(origin, host, consolePort)));

  return {
    headers(origin, host) {
      if (!isAllowed(origin, host)) return {};
      return { "access-control-allow-origin": origin, "access-control-expose-headers": EXPOSED, vary: "Origin" };
    },

    preflight(req, res) {
      const origin = req.headers.origin;
      if (!isAllowed(origin, req.headers.host)) {
        res.writeHead(403, { vary: "Origin", "content-length": "0" }).end();
        return;
      }
      const requested = req.headers["access-control-request-headers"];
      res
        .writeHead(204, {
          "access-control-allow-origin": origin,
          "access-control-allow-methods": "POST, OPTIONS",
          // Whatever headers the page means to send become metadata (authorization, x-grpc-web, grpc-timeout …).
          "access-control-allow-headers": requested ?? "content-type, x-grpc-web, x-user-agent, grpc-timeout, authorization",
          "access-control-max-age": PREFLIGHT_MAX_AGE_S,
          vary: "Origin, Access-Control-Request-Headers",
        })
        .end();
    },
  };
}

/** Whether `origin` is http(s)://<the hostname of `host`>:<port>. */
function isConsoleOfHost(origin: string, host: string | undefined, port: number): boolean {
  if (!host) return false;
  let page: URL;
  let bridge: URL;
  try {
    page = new URL(origin);
    bridge = new URL(`http://${host}`);
  } catch {
    return false;
  }
  const pagePort = page.port === "" ? (page.protocol === "https:" ? 443 : 80) : Number(page.port);
  return (page.protocol === "http:" || page.protocol === "https:") && pagePort === port && page.hostname === bridge.hostname && page.pathname === "/";
}
