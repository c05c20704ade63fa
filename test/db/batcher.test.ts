// The one group-commit batcher (job creates, starts and completions; KM's row reads and audit trail): concurrent items
// share one batch, no more batches run at once than allowed, a batch's failure fails each of its callers (and only
// them), an item may fail alone, and batch size is bounded.
import { describe, expect, it } from "vitest";
import { createBatcher, fulfilled } from "../../src/db/batcher.js";

/** A batcher whose batches stay open until the test releases them. */
function gated(maxInFlight: number, maxBatch = 100) {
  const batches: number[][] = [];
  const gates: (() => void)[] = [];
  let running = 0;
  let maxRunning = 0;
  const b = createBatcher<number, number>({
    maxInFlight,
    maxBatch,
    gather: "turn",
    async run(items) {
      batches.push([...items]);
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise<void>((r) => gates.push(r));
      running--;
      if (items.includes(-1)) throw new Error("batch failed");
      return fulfilled(items.map((i) => i * 10));
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
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("createBatcher, gathering for a turn of the event loop", () => {
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
    const b = createBatcher<number, number>({ maxInFlight: 1, maxBatch: 10, run: async () => fulfilled([1]) });
    await expect(Promise.all([b.submit(1), b.submit(2)])).rejects.toThrow(/2 items produced 1 results/);
  });
});

describe("createBatcher, gathering for the current tick", () => {
  it("sends calls that arrive while a batch commits in the next batch, in order, and rejects a failed batch's calls", async () => {
    const seen: number[][] = [];
    const b = createBatcher<number, number>({
      maxBatch: 3,
      maxInFlight: 1,
      run: async (items) => {
        seen.push(items);
        await sleep(20);
        if (items.includes(99)) throw new Error("bad batch");
        return items.map((x) => (x === 6 ? { status: "rejected", reason: new Error("six alone") } : { status: "fulfilled", value: x * 10 }));
      },
    });
    const out = await Promise.allSettled([1, 2, 3, 4, 5, 99, 6].map((x) => b.submit(x)));
    expect(seen).toEqual([
      [1, 2, 3],
      [4, 5, 99],
      [6],
    ]);
    expect(out.map((o) => (o.status === "fulfilled" ? o.value : "x"))).toEqual([10, 20, 30, "x", "x", "x", "x"]);
    expect(b.stats()).toEqual({ batches: 3, items: 7 });
  });

  it("starts a lone call's batch at once; calls made while it commits form the next batch together", async () => {
    const seen: { items: number[]; at: number }[] = [];
    const t0 = Date.now();
    const b = createBatcher<number, number>({
      maxBatch: 10,
      run: async (items) => {
        seen.push({ items, at: Date.now() - t0 });
        await sleep(40);
        return items.map((value) => ({ status: "fulfilled", value }));
      },
    });
    const first = b.submit(1);
    await sleep(10);
    const later = [b.submit(2), b.submit(3)];
    await sleep(10);
    later.push(b.submit(4));
    await Promise.all([first, ...later]);
    expect(seen.map((s) => s.items)).toEqual([[1], [2, 3, 4]]);
    expect(seen[0]!.at).toBeLessThan(10);
    expect(seen[1]!.at).toBeGreaterThanOrEqual(35);
  });
});
