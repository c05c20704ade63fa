// The console's web server on a real port over a build directory of the test's own: the page and its hashed assets
// with the right caching, compression and security headers, the bridge setting, no way out of the directory, a page
// saying what to do when nothing is built; and the bridge's CORS rule for the console of the same host.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createConsoleServer, DEFAULT_CONSOLE_DIR, type ConsoleServer } from "../../src/console/server.js";
import { createLogger } from "../../src/log.js";
import { createCors } from "../../src/rpc/grpc-web/cors.js";
import { ROOT } from "../support/process.js";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function get(port: number, path: string, headers: Record<string, string> = {}, method = "GET"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

const log = createLogger({ level: "silent" });
let dir: string;
let built: ConsoleServer;
let empty: ConsoleServer;
const script = `console.log(${JSON.stringify("x".repeat(4000))});`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "console-dist-"));
  mkdirSync(join(dir, "assets"));
  writeFileSync(join(dir, "index.html"), `<!doctype html><script type="module" src="/assets/index-abc123.js"></script>`);
  writeFileSync(join(dir, "assets", "index-abc123.js"), script);
  writeFileSync(join(tmpdir(), "console-secret.txt"), "outside");
  const config = (extra: Record<string, string>) =>
    loadConfig({ DISPATCHER_CONSOLE_BIND: "127.0.0.1", DISPATCHER_CONSOLE_PORT: "1", DISPATCHER_BRIDGE_PORT: "3999", ...extra }, "");
  // Port 0 (any free port) is not a valid console.port; the test sets it after validation.
  const withFreePort = (c: ReturnType<typeof config>) => ({ ...c, console: { ...c.console, port: 0 } });
  built = createConsoleServer({ config: withFreePort(config({ DISPATCHER_CONSOLE_DIR: dir })), log });
  empty = createConsoleServer({ config: withFreePort(config({ DISPATCHER_CONSOLE_DIR: join(dir, "nothing") })), log });
  await built.start();
  await empty.start();
});

afterAll(async () => {
  await built?.stop();
  await empty?.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(join(tmpdir(), "console-secret.txt"), { force: true });
});

describe("the console's web server", () => {
  it("serves the page, checked on each load, with a policy that allows only itself and the bridge", async () => {
    const r = await get(built.port, "/", { host: "devbox:3304" });
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(r.headers["cache-control"]).toBe("no-cache");
    expect(r.body.toString()).toContain("/assets/index-abc123.js");
    const csp = String(r.headers["content-security-policy"]);
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self' http://devbox:3999 https://devbox:3999");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(r.headers["x-content-type-options"]).toBe("nosniff");
    expect(r.headers["referrer-policy"]).toBe("no-referrer");
  });

  it("serves hashed assets as immutable, gzipped when the browser accepts it", async () => {
    const plain = await get(built.port, "/assets/index-abc123.js");
    expect(plain.status).toBe(200);
    expect(plain.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(plain.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(plain.body.toString()).toBe(script);
    const gz = await get(built.port, "/assets/index-abc123.js", { "accept-encoding": "gzip, br" });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gz.body.length).toBeLessThan(script.length / 10);
    expect(gunzipSync(gz.body).toString()).toBe(script);
  });

  it("tells the page where the bridge is", async () => {
    const r = await get(built.port, "/config.json");
    expect(JSON.parse(r.body.toString())).toEqual({ bridgeUrl: "", bridgePort: 3999 });
    expect(r.headers["cache-control"]).toBe("no-store");
  });

  it("answers only GET and HEAD, and nothing outside its directory", async () => {
    expect((await get(built.port, "/", {}, "POST")).status).toBe(405);
    const head = await get(built.port, "/", {}, "HEAD");
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    for (const path of ["/../console-secret.txt", "/%2e%2e/console-secret.txt", "/assets/..%2f..%2fconsole-secret.txt", "/nope.js", "/%zz"]) {
      const r = await get(built.port, path);
      expect(r.status, path).toBe(404);
      expect(r.body.toString()).not.toContain("outside");
    }
  });

  it("says how to build the console when its directory holds no page", async () => {
    const r = await get(empty.port, "/");
    expect(r.status).toBe(503);
    expect(r.body.toString()).toContain("npm run build:console");
  });
});

describe("the bridge's CORS with the console on", () => {
  const cors = createCors(["https://ops.example.com"], 3304);

  it("allows the console of the host name the browser used to reach the bridge", () => {
    expect(cors.headers("http://devbox:3304", "devbox:3303")["access-control-allow-origin"]).toBe("http://devbox:3304");
    expect(cors.headers("http://127.0.0.1:3304", "127.0.0.1:3303")["access-control-allow-origin"]).toBe("http://127.0.0.1:3304");
    expect(cors.headers("http://[::1]:3304", "[::1]:3303")["access-control-allow-origin"]).toBe("http://[::1]:3304");
  });

  it("refuses pages of other hosts or ports, and keeps the configured origins", () => {
    expect(cors.headers("http://evil.example:3304", "devbox:3303")).toEqual({});
    expect(cors.headers("http://devbox:8080", "devbox:3303")).toEqual({});
    expect(cors.headers("http://devbox:3304", undefined)).toEqual({});
    expect(cors.headers("null", "devbox:3303")).toEqual({});
    expect(cors.headers("https://ops.example.com", "bridge.internal:3303")["access-control-allow-origin"]).toBe("https://ops.example.com");
    expect(createCors([]).headers("http://devbox:3304", "devbox:3303")).toEqual({});
  });

  it("adds console.origins to the bridge's origins while the console is on", () => {
    const on = loadConfig({ DISPATCHER_CONSOLE_ORIGINS: "https://ops.example.com", DISPATCHER_BRIDGE_CORS_ORIGINS: "https://app.example.com" }, "");
    expect(on.bridge.corsOrigins).toEqual(["https://app.example.com", "https://ops.example.com"]);
    const off = loadConfig({ DISPATCHER_CONSOLE_ENABLED: "false", DISPATCHER_CONSOLE_ORIGINS: "https://ops.example.com" }, "");
    expect(off.bridge.corsOrigins).toEqual([]);
  });
});

describe("the console at install", () => {
  it("is built by npm ci's postinstall, after generate, into the directory the server serves by default", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
    const steps = (pkg.scripts.postinstall ?? "").split("&&").map((s) => s.trim());
    expect(steps).toContain("node scripts/build-console.mjs");
    expect(steps.indexOf("node scripts/build-console.mjs")).toBeGreaterThan(steps.indexOf("node scripts/generate.mjs"));
    expect(readFileSync(join(ROOT, "scripts", "build-console.mjs"), "utf8")).toContain('join(root, "console", "dist")');
    expect(DEFAULT_CONSOLE_DIR).toBe(join(ROOT, "console", "dist"));
  });
});
