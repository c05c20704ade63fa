// Row ids: 26 Crockford base32 characters, the first ten the creation millisecond (so ids sort by creation time).
import { describe, expect, it } from "vitest";
import { isId, newId } from "../../src/db/ids.js";

describe("newId", () => {
  it("makes well-formed, distinct ids that sort by their millisecond", () => {
    const ids = Array.from({ length: 10_000 }, () => newId());
    expect(ids.every(isId)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(newId(0).slice(0, 10)).toBe("0000000000");
    expect(newId(2 ** 48 - 1).slice(0, 10)).toBe("7ZZZZZZZZZ");
    expect(newId(1_000) < newId(1_001)).toBe(true);
  });

  it("spreads the random part over the whole alphabet in every position", () => {
    const seen = Array.from({ length: 16 }, () => new Set<string>());
    for (let i = 0; i < 5_000; i++) [...newId().slice(10)].forEach((c, p) => seen[p]?.add(c));
    expect(seen.map((s) => s.size)).toEqual(Array(16).fill(32));
  });
});
