// src/log.ts: secrets redacted in the service log, and lazyChild — a child logger made only when first used that
// logs exactly what log.child would (bindings included, secrets still redacted).
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, lazyChild } from "../src/log.js";

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
