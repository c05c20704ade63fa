// Validation helpers: each bad field becomes a field violation; page tokens are bound to their query.
import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import { encodePageToken, requireEnum, requirePage, requireString, Violations } from "../../src/rpc/validate.js";

const STATES = { 1: "queued", 2: "running" } as const;

function violations(fn: () => unknown): Array<{ field: string; description: string }> {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return (err as InvalidArgumentError).violations;
  }
  throw new Error("expected InvalidArgumentError");
}

describe("validation helpers", () => {
  it("requireString: required, bounded, patterned", () => {
    expect(requireString("id", "j-1", { max: 10, pattern: /^[a-z0-9-]+$/ })).toBe("j-1");
    expect(violations(() => requireString("id", ""))).toEqual([{ field: "id", description: "is required" }]);
    expect(violations(() => requireString("id", undefined))).toEqual([{ field: "id", description: "is required" }]);
    expect(violations(() => requireString("id", "x".repeat(11), { max: 10 }))).toEqual([{ field: "id", description: "must be at most 10 characters" }]);
    expect(violations(() => requireString("id", "A B", { pattern: /^[a-z]+$/, patternHint: "lowercase letters only" }))).toEqual([{ field: "id", description: "lowercase letters only" }]);
  });

  it("requireEnum rejects UNSPECIFIED and unknown values and maps the rest", () => {
    expect(requireEnum("state", 2, STATES)).toBe("running");
    expect(violations(() => requireEnum("state", 0, STATES))).toEqual([{ field: "state", description: "must be specified" }]);
    expect(violations(() => requireEnum("state", 9, STATES))).toEqual([{ field: "state", description: "unknown value 9" }]);
    const v = new Violations();
    expect(v.optionalEnum("state", 0, STATES)).toBeUndefined();
    expect(v.list).toEqual([]);
  });

  it("page size: 0 → default, above max → max, negative → violation", () => {
    expect(requirePage({ pageSize: 0 }, {}).pageSize).toBe(50);
    expect(requirePage({ pageSize: 5000 }, {}).pageSize).toBe(1000);
    expect(requirePage({ pageSize: 20 }, {}, { max: 10 }).pageSize).toBe(10);
    expect(violations(() => requirePage({ pageSize: -1 }, {}))).toEqual([{ field: "page_size", description: "must not be negative" }]);
  });

  it("page token: round-trips for the same query, rejected for another query or garbage", () => {
    const token = encodePageToken({ after: "j-41", n: 41 }, { kind: "diag" });
    expect(requirePage({ pageToken: token }, { kind: "diag" }).cursor).toEqual({ after: "j-41", n: 41 });
    expect(requirePage({ pageToken: "" }, { kind: "diag" }).cursor).toBeNull();
    expect(violations(() => requirePage({ pageToken: token }, { kind: "other" }))).toEqual([{ field: "page_token", description: "is not a page token of this query" }]);
    expect(violations(() => requirePage({ pageToken: "%%%" }, {}))).toHaveLength(1);
  });

  it("Violations collects every bad field before throwing once", () => {
    const v = new Violations();
    v.string("name", "");
    v.int("count", 7, 1, 5);
    v.optionalString("note", "");
    expect(violations(() => v.check())).toEqual([
      { field: "name", description: "is required" },
      { field: "count", description: "must be an integer from 1 to 5" },
    ]);
    expect(() => new Violations().check()).not.toThrow();
  });
});
