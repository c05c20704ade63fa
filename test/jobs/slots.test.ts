// A worker's job slots: never more taken than the concurrency, a released slot goes to the longest-waiting delivery
// (not back to the pool, where a claim could take it first), and closing lets waiters go without a slot.
import { describe, expect, it, vi } from "vitest";
import { createJobSlots, SLOT_WAIT_WORKING_MS } from "../../src/jobs/slots.js";

describe("job slots", () => {
  it("hands a released slot to the longest-waiting delivery, never freeing it in between", async () => {
    const slots = createJobSlots(2);
    expect(slots.tryTake() && slots.tryTake()).toBe(true);
    expect(slots.tryTake()).toBe(false);
    const order: string[] = [];
    const first = slots.take(() => {}).then((got) => order.push(`first ${got}`));
    const second = slots.take(() => {}).then((got) => order.push(`second ${got}`));
    expect(slots.waiting).toBe(2);
    slots.release();
    expect(slots.free).toBe(0);
    expect(slots.tryTake()).toBe(false);
    await first;
    expect(order).toEqual(["first true"]);
    slots.release();
    await second;
    expect(order).toEqual(["first true", "second true"]);
    expect(slots.taken).toBe(2);
    slots.release();
    expect(slots.taken).toBe(1);
    expect(slots.free).toBe(1);
  });

  it("keeps a waiting delivery alive and lets it go without a slot when closed", async () => {
    vi.useFakeTimers();
    try {
      const slots = createJobSlots(1);
      expect(slots.tryTake()).toBe(true);
      const keepAlive = vi.fn();
      const waiting = slots.take(keepAlive);
      vi.advanceTimersByTime(SLOT_WAIT_WORKING_MS * 2 + 1);
      expect(keepAlive).toHaveBeenCalledTimes(2);
      slots.close();
      await expect(waiting).resolves.toBe(false);
      vi.advanceTimersByTime(SLOT_WAIT_WORKING_MS * 2);
      expect(keepAlive).toHaveBeenCalledTimes(2);
      await expect(slots.take(keepAlive)).resolves.toBe(false);
      expect(slots.free).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
