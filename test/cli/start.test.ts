// The quick start as a real process: `dispatcher start` on free ports serves gRPC, `dispatcher health` exits 0,
// reflection lists what the port serves and a generic reflection client can call it with an API key, every RPC gets a
// request-log line, and SIGTERM or SIGINT stops it with exit code 0.
import { randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status, type ServiceError } from "@grpc/grpc-js";
import { checkHealth } from "../../src/client/index.js";
import { packageVersion } from "../../src/system/service.js";
import { bootstrapToken, createTestEnv, freePort, killStrayDispatchers, runDispatcher, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";
import { readRequestLog } from "./request-log.js";
import { callUnaryByReflection, filesContaining, listServices } from "./reflection-client.js";

const HEALTH = "grpc.health.v1.Health";
const SYSTEM = "dispatcher.v1.SystemService";

let t: TestEnv;
let p: DispatcherProcess;
let token: string;
/** trace id → what the request log must say about the call made with it. */
const sent = new Map<string, { method: string; code: string; authenticated: boolean }>();

function traceparent(): { header: string; traceId: string } {
  const traceId = randomBytes(16).toString("hex");
  return { header: `00-${traceId}-${randomBytes(8).toString("hex")}-01`, traceId };
}

beforeAll(async () => {
  t = await createTestEnv({ label: "start" });
  p = await startDispatcher(t);
  token = bootstrapToken(p) ?? "";
});

afterAll(async () => {
  await killStrayDispatchers();
  await t?.cleanup();
});

describe("dispatcher start", () => {
  it("migrates a new database, prints the bootstrap admin key once, and says it is ready", async () => {
    expect(token, p.output()).toMatch(/^dsp_[A-Za-z0-9_-]{43}$/);
    expect(p.stderr).toContain("applying database migrations");
    // Health turns SERVING as the last role starts; the ready line follows it on stderr, a moment later under load.
    await p.waitForOutput(new RegExp(`ready: roles .*dispatcher.*gRPC on 127\\.0\\.0\\.1:${t.ports.server}`));
    // The key is for the terminal only: never in the service log.
    expect(p.stdout).not.toContain(token);
  });

  it("also writes the admin key to <dataDir>/admin-key, readable by its owner only, and says where", () => {
    const file = join(t.dir, "admin-key");
    expect(readFileSync(file, "utf8")).toBe(`${token}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(p.stderr).toContain(`It is also in ${file}, readable by you only`);
  });

  it("`dispatcher health` exits 0 and prints SERVING; against a port where nothing listens it exits 1", async () => {
    const closed = await freePort();
    const [ok, down] = await Promise.all([runDispatcher(["health"], t.env), runDispatcher(["health", "-a", `127.0.0.1:${closed}`, "-t", "1000"], t.env)]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim()).toBe("SERVING");
    expect(down.code).toBe(1);
    expect(down.stderr).toContain(`127.0.0.1:${closed}`);
  });

  it("reflection refuses a caller without a key, and lists exactly the services the port serves, each with its descriptor", async () => {
    await expect(listServices(t.address)).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    const services = await listServices(t.address, token);
    expect(services).toContain(SYSTEM);
    expect(services).toContain(HEALTH);
    for (const name of services.filter((s) => s !== HEALTH)) {
      // Health knows what the server serves: every listed service reports SERVING, so the list is not made up.
      expect(await checkHealth(t.address, name), name).toBe("SERVING");
      const files = await filesContaining(t.address, name, token);
      const [pkg, svc] = [name.slice(0, name.lastIndexOf(".")), name.slice(name.lastIndexOf(".") + 1)];
      expect(files.some((f) => f.package === pkg && f.service.some((s) => s.name === svc)), name).toBe(true);
    }
  });

  it("a generic reflection-driven client calls SystemService.GetServerInfo with the API key, and is refused without it", async () => {
    const tp = traceparent();
    const info = await callUnaryByReflection(t.address, SYSTEM, "GetServerInfo", {}, { token, traceparent: tp.header });
    sent.set(tp.traceId, { method: `/${SYSTEM}/GetServerInfo`, code: "OK", authenticated: true });
    expect(info.version).toBe(packageVersion());
    expect(info.roles).toContain("dispatcher");
    // Field names as the server's descriptors spell them: this client was never compiled against dispatcher's protos.
    expect(info.instance_id).toMatch(new RegExp(`^${p.pid}-`));
    const started = Number((info.start_time as { seconds: string }).seconds) * 1000;
    expect(Math.abs(Date.now() - started)).toBeLessThan(60_000);

    const who = traceparent();
    const me = await callUnaryByReflection(t.address, SYSTEM, "WhoAmI", {}, { token, traceparent: who.header });
    sent.set(who.traceId, { method: `/${SYSTEM}/WhoAmI`, code: "OK", authenticated: true });
    expect(me.roles).toContain("admin");

    const anon = traceparent();
    // Reflection itself wants a key; the call is made without one.
    const refused = await callUnaryByReflection(t.address, SYSTEM, "GetServerInfo", {}, { traceparent: anon.header, reflectionToken: token }).catch((e: unknown) => e);
    sent.set(anon.traceId, { method: `/${SYSTEM}/GetServerInfo`, code: "UNAUTHENTICATED", authenticated: false });
    expect((refused as ServiceError).code).toBe(status.UNAUTHENTICATED);
  });

  it("SIGTERM: exits 0, and the request log has one JSON line per RPC with time, method, peer, principal, code, duration_ms, trace_id", async () => {
    const exit = await p.stop("SIGTERM");
    expect(exit, p.output()).toEqual({ code: 0, signal: null });
    expect(p.stderr).toMatch(/SIGTERM received/);
    expect(p.stderr).toMatch(/stopped/);

    const lines = readRequestLog(t.logDir);
    expect(lines.length).toBeGreaterThan(0);
    for (const entry of lines) expect(entry.peer).toMatch(/127\.0\.0\.1:\d+/);
    // Exactly one line for each call this file made, saying what happened.
    const ours = lines.filter((l) => sent.has(String(l.trace_id)));
    expect(ours).toHaveLength(sent.size);
    expect(sent.size).toBe(3);
    for (const line of ours) {
      const want = sent.get(String(line.trace_id));
      expect(line.method).toBe(want?.method);
      expect(line.code).toBe(want?.code);
      if (want?.authenticated) expect(line.principal).toMatch(/^[0-9A-Za-z]{26}$/);
      else expect(line.principal).toBe("-");
    }
  });
});

describe("dispatcher start, again on the same databases", () => {
  it("finds the schema up to date, prints no new admin key, serves, and exits 0 on SIGINT (Ctrl-C)", async () => {
    const again = await startDispatcher(t);
    expect(bootstrapToken(again)).toBeUndefined();
    expect(again.stderr).toMatch(/provisioning: up to date/);
    expect(await checkHealth(t.address)).toBe("SERVING");
    const exit = await again.stop("SIGINT");
    expect(exit, again.output()).toEqual({ code: 0, signal: null });
    expect(again.stderr).toMatch(/SIGINT received/);
    // Nothing listens any more.
    await expect(checkHealth(t.address, "", 1_000)).rejects.toBeDefined();
  });
});
