// src/log.ts: secrets redacted in the service log, lazyChild — a child logger made only when first used that logs
// exactly what log.child would (bindings included, secrets still redacted) — and the request log's lines.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, lazyChild, RequestLog } from "../src/log.js";

function capture(): { log: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const out = new PassThrough();
  let text = "";
  out.on("data", (d: Buffer) => (text += d.toString()));
  const log = createLogger({ level: "info", destination: out });
  return { log, lines: () => text.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("lazyChild", () => {
  it("logs with the bindings and redaction of log.child, and makes the child only when used", async () => {
    const { log, lines } = capture();
    let made = 0;
    const child = log.child.bind(log);
    log.child = ((...args: Parameters<typeof log.child>) => (made++, child(...args))) as typeof log.child;
    const lazy = lazyChild(log, { jobId: "j1", token: "s3cret" });
    expect(made).toBe(0);
    lazy.info({ password: "hunter2", n: 1 }, "hello");
    lazy.warn("again");
    expect(made).toBe(1);
    expect(lazy.isLevelEnabled("debug")).toBe(false);
    await new Promise((r) => setImmediate(r));
    const [first, second] = lines();
    expect(first).toMatchObject({ msg: "hello", jobId: "j1", token: "[redacted]", password: "[redacted]", n: 1, level: "info" });
    expect(second).toMatchObject({ msg: "again", jobId: "j1", level: "warn" });
    expect(JSON.stringify(lines())).not.toMatch(/s3cret|hunter2/);
  });
});

describe("RequestLog", () => {
  it("writes one JSON line per entry, with the count of refusals a sampled refusal line stands for", async () => {
    const dir = mkdtempSync(join(tmpdir(), "request-log-"));
    try {
      const log = new RequestLog(dir);
      const time = new Date("2026-12-04T10:00:00Z");
      const base = { time, method: "/dispatcher.v1.SystemService/WhoAmI", peer: "ipv4:127.0.0.1:1", principal: "u1", durationMs: 1.23456, traceId: "" };
      log.write({ ...base, code: "OK" });
      log.write({ ...base, code: "RESOURCE_EXHAUSTED", refusals: 42 });
      // The file is opened asynchronously: wait for it before closing (which flushes).
      const file = join(dir, "2026_12_04.request.log");
      for (let i = 0; i < 100 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 50));
      log.close();
      const [ok, refused] = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(ok).toEqual({ time: time.toISOString(), method: base.method, peer: base.peer, principal: "u1", code: "OK", duration_ms: 1.235, trace_id: "" });
      expect(refused).toMatchObject({ code: "RESOURCE_EXHAUSTED", refusals: 42 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
