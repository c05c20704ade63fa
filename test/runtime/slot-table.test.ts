// The slot tables behave as the Map and Set subsets node:http2 and grpc-js use (what they do for collections is
// measured where it matters, on a gRPC echo: young-calls.test.ts).
import { describe, expect, it } from "vitest";
import { SlotMap, SlotSet } from "../../src/runtime/slot-table.js";

describe("SlotMap", () => {
  it("gets, sets, replaces and deletes like a Map, reusing freed slots", () => {
    const m = new SlotMap<number, string>();
    expect(m.set(1, "a").set(3, "b").set(5, "c").size).toBe(3);
    expect(m.get(3)).toBe("b");
    m.set(3, "B");
    expect([m.size, m.get(3), m.has(7), m.get(7)]).toEqual([3, "B", false, undefined]);
    expect(m.delete(1)).toBe(true);
    expect(m.delete(1)).toBe(false);
    m.set(7, "d");
    expect([...m.entries()]).toEqual([[7, "d"], [3, "B"], [5, "c"]]);
    expect([...m.keys()]).toEqual([7, 3, 5]);
    expect([...m]).toEqual([[7, "d"], [3, "B"], [5, "c"]]);
    m.clear();
    expect([m.size, [...m.values()]]).toEqual([0, []]);
  });

  it("visits in forEach the entries present when it started, even when the callback deletes them", () => {
    const m = new SlotMap<number, { id: number }>();
    for (let id = 1; id <= 5; id += 2) m.set(id, { id });
    const seen: number[] = [];
    m.forEach((value, key, table) => {
      seen.push(key);
      table.delete(key);
      if (key === 1) table.set(9, { id: 9 });
    });
    expect(seen).toEqual([1, 3, 5]);
    expect([...m.keys()]).toEqual([9]);
  });

  it("grows to the most entries it held and no further", () => {
    const m = new SlotMap<number, number>();
    for (let round = 0; round < 100; round++) {
      for (let i = 0; i < 16; i++) m.set(round * 16 + i, i);
      for (let i = 0; i < 16; i++) m.delete(round * 16 + i);
    }
    expect(m.size).toBe(0);
    expect([...m.entries()]).toEqual([]);
  });
});

describe("SlotSet", () => {
  it("adds, finds, deletes and iterates like a Set", () => {
    const a = { n: 1 };
    const b = { n: 2 };
    const s = new SlotSet<object>();
    s.add(a).add(b).add(a);
    expect([s.size, s.has(a), s.has({ n: 1 })]).toEqual([2, true, false]);
    expect([...s]).toEqual([a, b]);
    const seen: object[] = [];
    s.forEach((v, again, set) => {
      expect(again).toBe(v);
      seen.push(v);
      set.delete(v);
    });
    expect([seen, s.size]).toEqual([[a, b], 0]);
  });
});
