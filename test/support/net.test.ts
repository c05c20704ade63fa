// Test ports: outside the ephemeral range, in a block of this worker's own, handed out once each and bindable.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ephemeralRange, freePort, freePorts, ownBlock, portAllocator, portBlock } from "./net.js";

const LINUX_DEFAULT = [32_768, 60_999] as const;

async function listen(port: number): Promise<Server> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => srv.once("error", reject).listen(port, "127.0.0.1", resolve));
  return srv;
}

describe("ephemeralRange", () => {
  it("reads the kernel's range, and assumes the Linux default without one", () => {
    const dir = mkdtempSync(join(tmpdir(), "ports-"));
    try {
      const file = join(dir, "ip_local_port_range");
      writeFileSync(file, "40000\t50000\n");
      expect(ephemeralRange(file)).toEqual([40_000, 50_000]);
      expect(ephemeralRange(join(dir, "no-such-file"))).toEqual(LINUX_DEFAULT);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("portBlock", () => {
  it("gives each vitest worker its own block between 20000 and the ephemeral range", () => {
    const blocks = [1, 2, 3, 4, 5, 6].map((poolId) => portBlock({ poolId, pid: 1 }, LINUX_DEFAULT));
    expect(blocks[0]).toEqual({ first: 20_000, size: 1_000 });
    expect(blocks[1]).toEqual({ first: 21_000, size: 1_000 });
    for (const b of blocks) expect(b.first + b.size - 1).toBeLessThan(LINUX_DEFAULT[0]);
    expect(new Set(blocks.map((b) => b.first)).size).toBe(blocks.length);
  });

  it("puts processes outside vitest in blocks no worker of up to six uses", () => {
    const workers = new Set([1, 2, 3, 4, 5, 6].map((poolId) => portBlock({ poolId, pid: 1 }, LINUX_DEFAULT).first));
    for (let pid = 1000; pid < 1012; pid++) {
      const b = portBlock({ pid }, LINUX_DEFAULT);
      expect(workers.has(b.first)).toBe(false);
      expect(b.first + b.size - 1).toBeLessThan(LINUX_DEFAULT[0]);
    }
  });

  it("goes above an ephemeral range that starts too low, and refuses when there is no room outside it", () => {
    expect(portBlock({ poolId: 1, pid: 1 }, [10_000, 50_000])).toEqual({ first: 50_001, size: 1_000 });
    expect(() => portBlock({ poolId: 1, pid: 1 }, [1_024, 65_535])).toThrow(/no room/);
  });
});

describe("freePort", () => {
  const held: Server[] = [];
  afterEach(async () => {
    await Promise.all(held.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it("hands out distinct bindable ports from this worker's block, none in the ephemeral range", async () => {
    expect(process.env.VITEST_POOL_ID).toMatch(/^\d+$/);
    const block = ownBlock();
    expect(block).toEqual(portBlock({ poolId: Number(process.env.VITEST_POOL_ID), pid: process.pid }, ephemeralRange()));
    const [low, high] = ephemeralRange();
    const ports = [...(await freePorts(20)), ...(await Promise.all(Array.from({ length: 20 }, () => freePort())))];
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports) {
      expect(port >= low && port <= high, `${port} in the ephemeral range`).toBe(false);
      expect(port).toBeGreaterThanOrEqual(block.first);
      expect(port).toBeLessThan(block.first + block.size);
      held.push(await listen(port));
    }
  });

  it("skips ports something listens on, and says so when the block has none left", async () => {
    // Two neighbours, both free and handed to no one else (round-robin gives them at once, unless the block wraps).
    let [first, second] = (await freePorts(2)) as [number, number];
    for (let i = 0; i < 1_000 && second !== first + 1; i++) [first, second] = [second, await freePort()];
    expect(second).toBe(first + 1);
    held.push(await listen(first));
    const next = portAllocator({ first, size: 2 }, 0);
    expect(await next()).toBe(first + 1);
    held.push(await listen(first + 1));
    await expect(next()).rejects.toThrow(/no free port/);
  });
});
