// Node 20's AsyncResource.prototype.bind (called by node:http2 for every client request) kept each request alive
// through young-generation collections; installAsyncBind replaces it with an equivalent bind whose requests die young.
import { execFileSync } from "node:child_process";
import { AsyncResource, executionAsyncId } from "node:async_hooks";
import { describe, expect, it } from "vitest";
import { installAsyncBind } from "../../src/runtime/async-bind.js";

const nodeMajor = Number(process.versions.node.split(".")[0]);

/**
 * KB promoted to the old generation per request by 2,000 sequential node:http2 requests in a fresh process with a
 * small young generation (so that scavenges happen), counted at each young collection, with or without the fix.
 */
function promotedPerRequest(fixed: boolean): number {
  const script = `
    const http2 = require("node:http2");
    const v8 = require("node:v8");
    // Promotion counted at each young collection, so that a full collection during the run cannot hide it.
    const oldIn = (side) => side.heapSpaceStatistics.find((s) => s.spaceName === "old_space").spaceUsedSize;
    (async () => {
      ${fixed ? `require(${JSON.stringify(require.resolve("tsx/cjs"))}); require(${JSON.stringify(new URL("../../src/runtime/async-bind.ts", import.meta.url).pathname)}).installAsyncBind();` : ""}
      const server = http2.createServer((req, res) => res.end("ok"));
      await new Promise((r) => server.listen(0, "127.0.0.1", r));
      const session = http2.connect("http://127.0.0.1:" + server.address().port);
      const one = () => new Promise((resolve) => { const s = session.request({ ":path": "/" }); s.resume(); s.on("end", resolve); s.end(); });
      for (let i = 0; i < 200; i++) await one();
      global.gc();
      const profiler = new v8.GCProfiler();
      profiler.start();
      for (let i = 0; i < 2000; i++) await one();
      global.gc({ type: "minor" });
      let promoted = 0;
      for (const gc of profiler.stop().statistics) if (gc.gcType === "Scavenge") promoted += oldIn(gc.afterGC) - oldIn(gc.beforeGC);
      process.stdout.write(String(promoted / 1024 / 2000));
      session.close();
      server.close();
    })();
  `;
  return Number(execFileSync(process.execPath, ["--expose-gc", "--max-semi-space-size=1", "-e", script], { encoding: "utf8", timeout: 60_000 }));
}

describe("installAsyncBind", () => {
  it.runIf(nodeMajor === 20)("lets node:http2 client requests die young (Node 20)", () => {
    const without = promotedPerRequest(false);
    const withFix = promotedPerRequest(true);
    // Measured on Node 20.20, counted at each young collection: 3.46–3.48 KB per request promoted without, 0.53–0.56
    // with (the server's side, in the same process, remains).
    expect(without).toBeGreaterThan(2);
    expect(withFix).toBeLessThan(without / 2.5);
  });

  it("binds as Node's bind does: the resource's async scope, the caller's this or the one given, length, asyncResource", () => {
    installAsyncBind();
    const resource = new AsyncResource("test");
    const seen: { id: number; self: unknown; args: unknown[] }[] = [];
    function probe(this: unknown, a: number, b: number): number {
      seen.push({ id: executionAsyncId(), self: this, args: [a, b] });
      return a + b;
    }
    const bound = resource.bind(probe);
    const target = { bound };
    expect(target.bound(1, 2)).toBe(3);
    const withThis = (resource as unknown as { bind(fn: typeof probe, thisArg: unknown): typeof probe }).bind(probe, "given");
    expect(withThis(3, 4)).toBe(7);
    expect(seen).toEqual([
      { id: resource.asyncId(), self: target, args: [1, 2] },
      { id: resource.asyncId(), self: "given", args: [3, 4] },
    ]);
    expect(bound.length).toBe(2);
    expect((bound as unknown as { asyncResource: AsyncResource }).asyncResource).toBe(resource);
    expect(() => resource.bind(undefined as unknown as () => void)).toThrow(TypeError);
  });
});
