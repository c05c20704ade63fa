// Ports and waiting for listeners, for tests and scripts that start servers of their own. No vitest here: the chaos
// script imports the cluster harnesses outside the test runner.
import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, Socket } from "node:net";

// A port is chosen here and bound later by a child process. Asking the kernel for port 0 would hand out a port from
// the ephemeral range, which is also where every outgoing connection (to MariaDB, NATS, between test processes) takes
// its source port, and where every other test file asks at the same time: either can take the port before the child
// binds it. So ports come from outside the ephemeral range, from a block of their own per vitest worker.

/** The consecutive ports `first` … `first + size - 1`. */
export interface PortBlock {
  first: number;
  size: number;
}

const BLOCK_SIZE = 1_000;
// Above the well-known services on a development machine (MariaDB 3306, NATS 4222, PostgreSQL 5432, Redis 6379, the
// product's own defaults, metrics 9464); the bind check skips whatever else happens to listen in a block.
const BLOCKS_FROM = 20_000;
const LINUX_DEFAULT_EPHEMERAL: readonly [number, number] = [32_768, 60_999];

/** The kernel's ephemeral port range (the Linux default where /proc does not say). */
export function ephemeralRange(file = "/proc/sys/net/ipv4/ip_local_port_range"): readonly [number, number] {
  try {
    const [low, high] = readFileSync(file, "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low as number, high as number];
  } catch {
    // No /proc (not Linux): assume the default.
  }
  return LINUX_DEFAULT_EPHEMERAL;
}

/**
 * The block of ports a process hands out. The blocks lie between 20000 and the ephemeral range (or above it, where
 * the range starts too low). A vitest worker takes block `poolId - 1` of the lower half: vitest numbers the workers
 * running at once 1 … maxWorkers, so two files running side by side never share a block. Any other process (the
 * chaos script, a benchmark) takes a block of the upper half by its process id, so one started beside the test suite
 * does not share a worker's block either; with more workers than the lower half has blocks, they wrap and share, and
 * only the bind check and the random start keep them apart.
 */
export function portBlock(owner: { poolId?: number; pid: number }, ephemeral: readonly [number, number]): PortBlock {
  const [low, high] = ephemeral;
  const below = Math.floor((low - BLOCKS_FROM) / BLOCK_SIZE);
  const above = Math.floor((65_535 - high) / BLOCK_SIZE);
  const [from, count] = below >= 2 ? [BLOCKS_FROM, below] : [high + 1, above];
  if (count < 2) throw new Error(`no room for test ports outside the ephemeral range ${low}–${high}`);
  const workers = Math.ceil(count / 2);
  const index = owner.poolId !== undefined ? (owner.poolId - 1) % workers : workers + (owner.pid % (count - workers));
  return { first: from + index * BLOCK_SIZE, size: BLOCK_SIZE };
}

/** Whether a server could listen on 127.0.0.1:`port` right now. */
function bindable(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/**
 * Hands out the ports of `block` round-robin from `start`, skipping any that cannot be bound right now. The start is
 * random because vitest runs several files one after another in the same worker, each with a fresh copy of this
 * module: each file starting at the block's first port would hand out again the ports whose processes the file
 * before may not have finished closing.
 */
export function portAllocator(block: PortBlock, start = randomInt(block.size)): () => Promise<number> {
  let next = start % block.size;
  return async () => {
    for (let tried = 0; tried < block.size; tried++) {
      // Advanced before the check, so calls made at the same time get different ports.
      const port = block.first + next;
      next = (next + 1) % block.size;
      if (await bindable(port)) return port;
    }
    throw new Error(`no free port in ${block.first}–${block.first + block.size - 1}`);
  };
}

/** This process's block: by vitest worker inside the test runner, by process id outside it. */
export function ownBlock(): PortBlock {
  const poolId = Number(process.env.VITEST_POOL_ID);
  return portBlock({ ...(Number.isInteger(poolId) && poolId >= 1 ? { poolId } : {}), pid: process.pid }, ephemeralRange());
}

let allocate: (() => Promise<number>) | undefined;

/** A TCP port nothing listens on (at the moment of asking), from this process's block, not yet handed out by it. */
export async function freePort(): Promise<number> {
  allocate ??= portAllocator(ownBlock());
  return allocate();
}

/** `n` distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) {
    const port = await freePort();
    if (ports.has(port)) throw new Error(`fewer than ${n} free ports in this process's block`);
    ports.add(port);
  }
  return [...ports];
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` now. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = new Socket();
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
    s.connect(port, "127.0.0.1");
  });
}

/**
 * Resolves once 127.0.0.1:`port` accepts connections. Rejects after `timeoutMs`, or as soon as `alive()` says the
 * process that should listen there has gone (so a crash at start fails fast, with `what` in the message).
 */
export async function waitForPort(port: number, timeoutMs = 5_000, what = "server", alive: () => boolean = () => true): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await portOpen(port)) return;
    if (!alive()) throw new Error(`${what} exited before listening on ${port}`);
    if (Date.now() > until) throw new Error(`${what} did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
