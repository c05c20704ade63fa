// CORS for browsers calling the bridge: only the configured origins get CORS headers, and so only they can read a
// response or pass a preflight. Callers that send no Origin (agents, servers) are not affected.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";

/** Response headers a browser script may read: the status trailers for trailers-only replies. */
const EXPOSED = "grpc-status, grpc-message, grpc-status-details-bin";
const PREFLIGHT_MAX_AGE_S = "600";

export interface Cors {
  /** The CORS headers for a request from `origin` (empty when it is absent or not allowed). */
  headers(origin: string | undefined): OutgoingHttpHeaders;
  /** Answers an OPTIONS preflight: 204 with the allowances for an allowed origin, 403 without any otherwise. */
  preflight(req: IncomingMessage, res: ServerResponse): void;
}

/** `origins` as configured (bridge.corsOrigins); "*" allows every origin. */
export function createCors(origins: readonly string[]): Cors {
  const any = origins.includes("*");
  const allowed = new Set(origins.map((o) => o.replace(/\/+$/, "").toLowerCase()));
  const isAllowed = (origin: string | undefined): origin is string => origin !== undefined && (any || allowed.has(origin.toLowerCase()));

  return {
    headers(origin) {
      if (!isAllowed(origin)) return {};
      return { "access-control-allow-origin": origin, "access-control-expose-headers": EXPOSED, vary: "Origin" };
    },

    preflight(req, res) {
      const origin = req.headers.origin;
      if (!isAllowed(origin)) {
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
