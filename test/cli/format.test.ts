// The command line's plain-text formats: aligned fields (a long key such as details.startedAt still gets its space),
// prices per hour and amounts in currency units.
import { describe, expect, it } from "vitest";
import { fields, hourly, money } from "../../src/commands/client-command.js";

describe("command output formats", () => {
  it("aligns values one column past the longest key, so every key is followed by a space", () => {
    const out = fields([["id", "s-1"], ["details.startedAt", "2026-12-04T18:00:00Z"]]);
    expect(out).toBe(`id:${" ".repeat(16)}s-1\ndetails.startedAt: 2026-12-04T18:00:00Z\n`);
  });

  it("prints hourly prices with their unit and amounts in cents as currency units", () => {
    expect(hourly("12000")).toBe("0.0120 per hour");
    expect(hourly(1_234_567)).toBe("1.234567 per hour");
    expect(money("100000")).toBe("1000.00");
    expect(money(5)).toBe("0.05");
  });
});
