// Real processes: with register.ts loaded first, a grpc-js call between two processes yields one client and one server
// span in one trace — in both start-up forms (node --import flags, and bin/'s tsx API + dynamic import) — and OTLP
// export, sampling and silence when nothing is configured behave as promised.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { SpanRecord } from "../../src/telemetry/file-exporter.js";

const FIXTURE = "test/telemetry/fixtures/grpc-echo.ts";
const FORMS: Record<string, string[]> = {
  "node --import tsx --import register.ts": ["--import", "tsx", "--import", "./src/telemetry/register.ts", FIXTURE],
  "bin form (tsx API, then await import)": ["test/telemetry/fixtures/bin-like.mjs", FIXTURE],
};

const dir = mkdtempSync(join(tmpdir(), "telemetry-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileCounter = 0;
const newFile = () => join(dir, `spans-${++fileCounter}.jsonl`);

/** The environment without any DISPATCHER_* or OTEL_* variable of the caller's, plus `extra`. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("DISPATCHER_") && !k.startsWith("OTEL_")) env[k] = v;
  return { ...env, ...extra };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function collect(child: ChildProcess): Promise<Run> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

/** Starts the echo server, makes one client call from a second process, stops the server; both outputs returned. */
async function callOnce(form: string[], serverEnv: Record<string, string>, clientEnv: Record<string, string>): Promise<{ server: Run; client: Run }> {
  const server = spawn(process.execPath, [...form, "server"], { env: cleanEnv(serverEnv), stdio: ["ignore", "pipe", "pipe"] });
  const serverRun = collect(server);
  const port = await new Promise<string>((resolve, reject) => {
    let seen = "";
    server.stdout.on("data", (d: Buffer) => {
      seen += d.toString();
      const m = /port (\d+)/.exec(seen);
      if (m?.[1]) resolve(m[1]);
    });
    server.on("close", () => reject(new Error(`server exited before listening: ${seen}`)));
  });
  const client = await collect(spawn(process.execPath, [...form, "client", port], { env: cleanEnv(clientEnv), stdio: ["ignore", "pipe", "pipe"] }));
  server.kill("SIGTERM");
  return { server: await serverRun, client };
}

function readSpans(file: string): SpanRecord[] {
  return existsSync(file)
    ? readFileSync(file, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as SpanRecord)
    : [];
}

const grpcSpans = (file: string) => readSpans(file).filter((s) => s.attributes["rpc.system"] === "grpc");

describe.each(Object.entries(FORMS))("%s", (_name, form) => {
  it("produces a client and a server span sharing one trace", async () => {
    const serverFile = newFile();
    const clientFile = newFile();
    const { server, client } = await callOnce(form, { DISPATCHER_TELEMETRY_FILE: serverFile }, { DISPATCHER_TELEMETRY_FILE: clientFile });
    expect(client.stdout).toContain("reply hi");
    expect(client.code).toBe(0);
    expect(server.code).toBe(0);

    const clientSpans = grpcSpans(clientFile);
    const serverSpans = grpcSpans(serverFile);
    // Exactly one each: none would mean grpc-js went uninstrumented, two would mean it was patched twice.
    expect(clientSpans).toHaveLength(1);
    expect(serverSpans).toHaveLength(1);
    const [c] = clientSpans as [SpanRecord];
    const [s] = serverSpans as [SpanRecord];
    expect(c.kind).toBe("CLIENT");
    expect(s.kind).toBe("SERVER");
    expect(c.attributes).toMatchObject({ "rpc.service": "test.v1.EchoService", "rpc.method": "Echo", "rpc.grpc.status_code": 0 });
    expect(s.traceId).toBe(c.traceId);
    expect(s.parentSpanId).toBe(c.spanId);
    expect(s.service).toBe("dispatcher");
    expect(s.pid).not.toBe(c.pid);
  });
});

describe("export and sampling", () => {
  it("exports over OTLP/HTTP protobuf to the configured or the standard endpoint, flushed at shutdown", async () => {
    const posts: { url: string; headers: IncomingHttpHeaders; body: Buffer }[] = [];
    const collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        posts.push({ url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
      });
    });
    await new Promise<void>((r) => collector.listen(0, "127.0.0.1", r));
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    try {
      const clientFile = newFile();
      const form = FORMS["node --import tsx --import register.ts"] as string[];
      await callOnce(
        form,
        { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, DISPATCHER_TELEMETRY_SERVICE_NAME: "otlp-server" },
        { DISPATCHER_TELEMETRY_OTLP_ENDPOINT: `${endpoint}/`, DISPATCHER_TELEMETRY_FILE: clientFile, DISPATCHER_TELEMETRY_SERVICE_NAME: "otlp-client" },
      );
      const [span] = grpcSpans(clientFile);
      expect(span).toBeDefined();
      const traceIdBytes = Buffer.from(span?.traceId ?? "", "hex");
      expect(posts.length).toBeGreaterThanOrEqual(2);
      for (const p of posts) {
        expect(p.url).toBe("/v1/traces");
        expect(p.headers["content-type"]).toBe("application/x-protobuf");
        expect(p.body.includes(traceIdBytes)).toBe(true);
      }
      const services = posts.map((p) => (p.body.includes(Buffer.from("otlp-server")) ? "server" : p.body.includes(Buffer.from("otlp-client")) ? "client" : "?"));
      expect(services.sort()).toEqual(["client", "server"]);
    } finally {
      collector.close();
    }
  });

  it("records nothing for new traces when the sample ratio is 0", async () => {
    const file = newFile();
    const form = FORMS["node --import tsx --import register.ts"] as string[];
    const { client } = await callOnce(form, {}, { DISPATCHER_TELEMETRY_FILE: file, DISPATCHER_TELEMETRY_SAMPLE_RATIO: "0" });
    expect(client.stdout).toContain("reply hi");
    expect(readSpans(file)).toEqual([]);
  });

  it("is silent with nothing configured, and skips tracing when the configuration is invalid", async () => {
    const form = FORMS["node --import tsx --import register.ts"] as string[];
    const file = newFile();
    const { server, client } = await callOnce(form, {}, { DISPATCHER_SERVER_PORT: "not-a-port", DISPATCHER_TELEMETRY_FILE: file });
    expect(client.stdout).toContain("reply hi");
    expect(client.code).toBe(0);
    expect(client.stderr).toBe("");
    expect(server.stderr).toBe("");
    expect(server.stdout).not.toMatch(/span|trace/i);
    expect(existsSync(file)).toBe(false);
  });
});
