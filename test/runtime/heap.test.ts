// setHeapGrowing sets how far the old generation grows between full collections, from inside a running process.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { setHeapGrowing } from "../../src/runtime/heap.js";

/**
 * In a fresh process that keeps everything it allocates, growing from ~30 MB to ~200 MB in small steps after
 * setHeapGrowing(percent): the heap's size at each full collection divided by its size at the one before (each
 * collection frees nothing, so the next one comes when the heap reaches the limit the factor set).
 */
function growthBetweenFullCollections(percent: number): number[] {
  const script = `
    require(${JSON.stringify(require.resolve("tsx/cjs"))});
    const { setHeapGrowing } = require(${JSON.stringify(new URL("../../src/runtime/heap.ts", import.meta.url).pathname)});
    const { PerformanceObserver, constants } = require("node:perf_hooks");
    const v8 = require("node:v8");
    const sizes = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) sizes.push(old());
    }).observe({ entryTypes: ["gc"] });
    const kept = [];
    const chunk = () => { const a = new Array(20000); for (let i = 0; i < a.length; i++) a[i] = { i, s: "k" + i }; kept.push(a); };
    const old = () => v8.getHeapSpaceStatistics().filter((s) => s.space_name !== "new_space").reduce((n, s) => n + s.space_used_size, 0);
    (async () => {
      while (old() < 30e6) chunk();
      setHeapGrowing(${percent});
      global.gc();
      await new Promise((r) => setImmediate(r));
      sizes.length = 0;
      while (old() < 200e6) { chunk(); await new Promise((r) => setImmediate(r)); }
      await new Promise((r) => setTimeout(r, 50));
      // Collections reported in one callback share a size: count each size once.
      const distinct = sizes.filter((s, i) => i === 0 || s > sizes[i - 1] * 1.02);
      process.stdout.write(JSON.stringify(distinct.slice(1).map((s, i) => s / distinct[i])));
    })();
  `;
  return JSON.parse(execFileSync(process.execPath, ["--expose-gc", "-e", script], { encoding: "utf8", timeout: 60_000 })) as number[];
}

describe("setHeapGrowing", () => {
  it("spaces full collections by the factor it sets", () => {
    const doubling = growthBetweenFullCollections(100);
    const tight = growthBetweenFullCollections(10);
    expect(doubling.length).toBeGreaterThan(0);
    for (const g of doubling) expect(g).toBeGreaterThan(1.8);
    // V8 grows a small heap by a minimum step whatever the factor: by 200 MB a tenth's steps are well under 1.5.
    expect(tight.length).toBeGreaterThan(2);
    expect(tight.at(-1)).toBeLessThan(1.5);
  });

  it("leaves V8's own choice at 0 and refuses what is not a percent", () => {
    const flags: string[] = [];
    setHeapGrowing(0, (f) => flags.push(f));
    setHeapGrowing(100, (f) => flags.push(f));
    expect(flags).toEqual(["--heap-growing-percent=100"]);
    expect(() => setHeapGrowing(-1, () => undefined)).toThrow(RangeError);
    expect(() => setHeapGrowing(1.5, () => undefined)).toThrow(RangeError);
  });
});
