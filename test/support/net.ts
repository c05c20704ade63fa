// Ports and waiting for listeners, for tests and scripts that start servers of their own. No vitest here: the chaos
// script imports the cluster harnesses outside the test runner.
import { createServer, Socket } from "node:net";

/** A TCP port nothing listens on (at the moment of asking). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

/** `n` distinct free ports (each asked for separately, so the kernel may hand one out twice: retried). */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
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
