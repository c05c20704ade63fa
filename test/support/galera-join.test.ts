// The Galera harness's joiner retry: a joiner that exits before it is Synced is started again, twice at most; a joiner
// still running when its wait fails, or the first node, is not (its failure is the answer).
import { describe, expect, it } from "vitest";
import { joinWithRetry, type Joiner } from "./galera.js";

/** A joiner whose waits fail (exiting first) `failures` times, then succeed. */
function joiner(failures: number, options: { stillRunning?: boolean } = {}): Joiner & { restarts: number; waits: number } {
  const node = {
    restarts: 0,
    waits: 0,
    running: true,
    async waitSynced() {
      node.waits++;
      if (node.waits > failures) return;
      node.running = options.stillRunning === true;
      throw new Error(`joiner gave up (wait ${node.waits})`);
    },
    server: {
      async restart(extra: readonly string[], readyTimeoutMs: number) {
        expect(node.running).toBe(false);
        expect([extra, readyTimeoutMs]).toEqual([[], 0]);
        node.restarts++;
        node.running = true;
      },
    },
  };
  return node;
}

describe("joinWithRetry", () => {
  it("starts a joiner that exited before it was Synced again, and waits for it", async () => {
    const node = joiner(2);
    await joinWithRetry(node, 3, 1_000);
    expect([node.restarts, node.waits]).toEqual([2, 3]);
  });

  it("gives up after two restarts with the last failure", async () => {
    const node = joiner(3);
    await expect(joinWithRetry(node, 3, 1_000)).rejects.toThrow("joiner gave up (wait 3)");
    expect(node.restarts).toBe(2);
  });

  it("does not restart a joiner still running, nor the first node", async () => {
    const running = joiner(1, { stillRunning: true });
    await expect(joinWithRetry(running, 2, 1_000)).rejects.toThrow("wait 1");
    const first = joiner(1);
    await expect(joinWithRetry(first, 1, 1_000)).rejects.toThrow("wait 1");
    expect([running.restarts, first.restarts]).toEqual([0, 0]);
  });
});
