// The group-commit batcher behind KM's audit trail and row reads: concurrent items share one batch, no more batches
// run at once than allowed, a batch's failure fails each of its callers (and only them), and batch size is bounded.
import { describe, expect, it } from "vitest";
import { createBatcher } from "../../src/km/batcher.js";

/** A batcher whose batches stay open until the test releases them. */
function gated(maxInFlight: number, maxBatch = 100) {
  const batches: number[][] = [];
  const gates: (() => void)[] = [];
  let running = 0;
  let maxRunning = 0;
  const b = createBatcher<number, number>({
    maxInFlight,
    maxBatch,
    async run(items) {
      batches.push([...items]);
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise<void>((r) => gates.push(r));
      running--;
      if (items.includes(-1)) throw new Error("batch failed");
      return items.map((i) => i * 10);
    },
  });
  // Opens every batch, including the ones that the finished batches start (each on a later turn of the event loop).
  const releaseAll = async (): Promise<void> => {
    for (let i = 0; i < 20; i++) {
      gates.splice(0).forEach((g) => g());
      await new Promise((r) => setImmediate(r));
    }
  };
  return { b, batches, releaseAll, maxRunning: () => maxRunning };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("createBatcher", () => {
  it("puts items submitted together in one batch and answers each with its own result", async () => {
    const g = gated(1);
    const results = Promise.all([1, 2, 3].map((i) => g.b.submit(i)));
    await tick();
    expect(g.batches).toEqual([[1, 2, 3]]);
    await g.releaseAll();
    expect(await results).toEqual([10, 20, 30]);
  });

  it("with one batch in flight, items arriving meanwhile wait and go together in the next batch", async () => {
    const g = gated(1);
    const first = g.b.submit(1);
    await tick();
    const later = [2, 3, 4].map((i) => g.b.submit(i));
    await tick();
    expect(g.batches).toEqual([[1]]);
    await g.releaseAll();
    expect(await Promise.all([first, ...later])).toEqual([10, 20, 30, 40]);
    expect(g.batches).toEqual([[1], [2, 3, 4]]);
    expect(g.maxRunning()).toBe(1);
  });

  it("runs at most maxInFlight batches at once and at most maxBatch items per batch", async () => {
    const g = gated(2, 2);
    const all = Promise.all([1, 2, 3, 4, 5, 6, 7].map((i) => g.b.submit(i)));
    await tick();
    expect(g.batches).toEqual([
      [1, 2],
      [3, 4],
    ]);
    await g.releaseAll();
    expect(await all).toEqual([10, 20, 30, 40, 50, 60, 70]);
    expect(g.batches.every((x) => x.length <= 2)).toBe(true);
    expect(g.maxRunning()).toBe(2);
  });

  it("a failed batch rejects every caller in it, and only them; flush waits for everything submitted", async () => {
    const g = gated(1);
    const a = g.b.submit(1);
    await tick();
    const bad = [g.b.submit(2), g.b.submit(-1)].map((p) => p.then(String, (err: Error) => err.message));
    const flushed = g.b.flush();
    await g.releaseAll();
    await flushed;
    expect(await a).toBe(10);
    expect(await Promise.all(bad)).toEqual(["batch failed", "batch failed"]);
  });

  it("a batch answering the wrong number of results fails its callers instead of answering them wrongly", async () => {
    const b = createBatcher<number, number>({ maxInFlight: 1, maxBatch: 10, run: async () => [1] });
    await expect(Promise.all([b.submit(1), b.submit(2)])).rejects.toThrow(/2 items produced 1 results/);
  });
});
