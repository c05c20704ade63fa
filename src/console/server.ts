// The operations console's web server (dispatcher role): serves the built page (console/dist) and the one setting the
// page needs, where the gRPC-Web bridge is. It holds no API of its own: the page calls the dispatcher through the bridge
// with the API key its user types.
import { readFile, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server as HttpServer, type ServerResponse } from "node:http";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { Config } from "../config.js";
import { UnavailableError } from "../errors.js";
import type { Logger } from "../log.js";

export interface ConsoleServerOptions {
  config: Pick<Config, "console" | "bridge">;
  log: Logger;
}

export interface ConsoleServer {
  /** The bound port; 0 before start. */
  readonly port: number;
  start(): Promise<number>;
  stop(): Promise<void>;
}

/** Where `npm run build:console` writes the page, in this installation. */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL("../../console/dist", import.meta.url));

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".map": "application/json",
};
const COMPRESSIBLE = new Set([".html", ".js", ".css", ".json", ".svg", ".txt", ".map"]);

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Dispatcher console</title>
<p>The operations console has not been built in this installation. Run <code>npm run build:console</code>, then reload.</p>`;

interface CachedFile {
  mtimeMs: number;
  body: Buffer;
  gzip: Buffer | undefined;
}

export function createConsoleServer(options: ConsoleServerOptions): ConsoleServer {
  const { config, log } = options;
  const dir = normalize(config.console.dir || DEFAULT_CONSOLE_DIR);
  const cache = new Map<string, CachedFile>();
  let http: HttpServer | undefined;
  let boundPort = 0;

  /** A file of the build, read once and again only when it changed on disk (a rebuild while running). */
  const load = async (path: string): Promise<CachedFile | undefined> => {
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) return undefined;
    const hit = cache.get(path);
    if (hit && hit.mtimeMs === info.mtimeMs) return hit;
    const body = await readFile(path);
    const file = { mtimeMs: info.mtimeMs, body, gzip: COMPRESSIBLE.has(extname(path)) && body.length > 512 ? gzipSync(body) : undefined };
    cache.set(path, file);
    return file;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const base = securityHeaders(req.headers.host, config);
    if (req.method !== "GET" && req.method !== "HEAD") return send(req, res, 405, { ...base, allow: "GET, HEAD", "content-type": TYPES[".txt"] }, Buffer.from("method not allowed\n"));
    const path = decodePath(req.url);
    if (path === "/config.json") {
      const body = Buffer.from(JSON.stringify({ bridgeUrl: config.console.bridgeUrl, bridgePort: config.bridge.port }));
      return send(req, res, 200, { ...base, "content-type": TYPES[".json"], "cache-control": "no-store" }, body);
    }
    const relative = path === "/" ? "index.html" : path.slice(1);
    const file = relative !== undefined && !relative.split("/").includes("..") ? join(dir, relative) : undefined;
    const found = file && file.startsWith(dir + sep) ? await load(file) : undefined;
    if (!found) {
      if (path === "/" || path === "/index.html") return send(req, res, 503, { ...base, "content-type": TYPES[".html"], "cache-control": "no-store" }, Buffer.from(NOT_BUILT));
      return send(req, res, 404, { ...base, "content-type": TYPES[".txt"] }, Buffer.from("not found\n"));
    }
    // Vite names assets by content hash: they never change under one name. The page itself is checked each load.
    const cacheControl = relative.startsWith("assets/") ? "public, max-age=31536000, immutable" : "no-cache";
    const headers: OutgoingHttpHeaders = { ...base, "content-type": TYPES[extname(relative)] ?? "application/octet-stream", "cache-control": cacheControl, vary: "Accept-Encoding" };
    const gzip = found.gzip && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    if (gzip) headers["content-encoding"] = "gzip";
    return send(req, res, 200, headers, gzip ? (found.gzip as Buffer) : found.body);
  };

  return {
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get port() {
      return boundPort;
    },

    async start() {
      if (http) throw new Error("console server already started");
      const h = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
        handle(req, res).catch((err: unknown) => {
          log.error({ err, path: req.url }, "console: unexpected error");
          if (!res.headersSent) res.writeHead(500, { "content-type": TYPES[".txt"] }).end("internal error\n");
          else res.destroy();
        });
      });
      h.on("clientError", (_err, socket) => socket.destroy());
      const { bind, port } = config.console;
      boundPort = await new Promise<number>((resolve, reject) => {
        h.once("error", (err) => reject(new UnavailableError(`cannot listen on ${bind}:${port}: port ${port} is in use or the address is not available (${err.message}); stop the other process, choose another console.port, or set console.enabled false`, "LISTEN_FAILED", { cause: err })));
        h.listen(port, bind, () => resolve((h.address() as { port: number }).port));
      });
      http = h;
      const built = await load(join(dir, "index.html"));
      if (!built) log.warn({ dir }, "console: no built page in its directory; run `npm run build:console`");
      log.info({ address: `${bind}:${boundPort}`, dir }, "console listening");
      return boundPort;
    },

    async stop() {
      const h = http;
      if (!h) return;
      http = undefined;
      const closed = new Promise<void>((resolve) => h.close(() => resolve()));
      h.closeIdleConnections();
      // Static files are answered at once; whatever is still open a moment later is a client that stalled.
      const timer = setTimeout(() => h.closeAllConnections(), 1_000);
      await closed;
      clearTimeout(timer);
    },
  };
}

function send(req: IncomingMessage, res: ServerResponse, statusCode: number, headers: OutgoingHttpHeaders, body: Buffer): void {
  res.writeHead(statusCode, { ...headers, "content-length": body.length });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** The URL's path, percent-decoded; "" when it cannot be decoded. */
function decodePath(url: string | undefined): string {
  const raw = (url ?? "/").split(/[?#]/, 1)[0] as string;
  try {
    return decodeURIComponent(raw);
  } catch {
    return "";
  }
}

/**
 * Headers on every answer. The page may run its own scripts and styles only and talk only to its server and the
 * bridge: the one the configuration names, or the host it came from on bridge.port (over http or https).
 */
function securityHeaders(host: string | undefined, config: Pick<Config, "console" | "bridge">): OutgoingHttpHeaders {
  const connect = ["'self'"];
  if (config.console.bridgeUrl) connect.push(new URL(config.console.bridgeUrl).origin);
  else {
    const hostname = hostnameOf(host);
    if (hostname) connect.push(`http://${hostname}:${config.bridge.port}`, `https://${hostname}:${config.bridge.port}`);
  }
  return {
    "content-security-policy": `default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src ${connect.join(" ")}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
  };
}

/** The host name of a Host header (IPv6 in brackets), or undefined when it is not a plain host name or address. */
function hostnameOf(host: string | undefined): string | undefined {
  if (!host) return undefined;
  try {
    const name = new URL(`http://${host}`).hostname;
    return /^(\[[0-9a-f:.]+\]|[A-Za-z0-9.-]+)$/i.test(name) ? name : undefined;
  } catch {
    return undefined;
  }
}
