// connectNats against real servers: a clear error when NATS is down or lacks JetStream, and logged reconnection.
import { afterEach, describe, expect, it } from "vitest";
import { UnavailableError } from "../../src/errors.js";
import { closeNats, connectNats } from "../../src/mq/nats.js";
import { captureLogger, freePort, sharedNatsUrl, startPrivateNats, type PrivateNats } from "./support.js";
import { until } from "../support/poll.js";

const servers: PrivateNats[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a failure");
}

describe("connectNats", () => {
  it("connects to the shared server and closes (twice is fine)", async () => {
    const { log, lines } = captureLogger();
    const nc = await connectNats({ url: sharedNatsUrl(), name: "test-connect", timeoutMs: 5_000, log });
    expect(nc.info?.jetstream).toBe(true);
    expect(lines.some((l) => l.msg === "connected to NATS")).toBe(true);
    await closeNats(nc);
    await closeNats(nc);
    expect(nc.isClosed()).toBe(true);
  });

  it("says where NATS was expected and how to start it, with JetStream, when nothing listens", async () => {
    const port = await freePort();
    const url = `nats://app:s3cret-pass@127.0.0.1:${port}`;
    const started = Date.now();
    const err = await failure(connectNats({ url, name: "test-down", timeoutMs: 2_000, log: captureLogger().log }));
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toContain(`nats://app:***@127.0.0.1:${port}`);
    expect(err.message).not.toContain("s3cret-pass");
    expect(err.message).toContain(`start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p ${port} -js`);
    expect(err.message).toMatch(/JetStream enabled \(-js\)/);
  });

  it("refuses a server without JetStream, saying to restart it with -js", async () => {
    const plain = await startPrivateNats({ jetstream: false });
    servers.push(plain);
    const err = await failure(connectNats({ url: plain.url, name: "test-nojs", timeoutMs: 2_000, log: captureLogger().log }));
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toMatch(/JetStream disabled; restart nats-server with -js/);
    const nc = await connectNats({ url: plain.url, name: "test-nojs-ok", timeoutMs: 2_000, log: captureLogger().log, requireJetStream: false });
    await closeNats(nc);
  });

  it("logs a disconnect, keeps reconnecting and logs the reconnection", async () => {
    const server = await startPrivateNats();
    servers.push(server);
    const { log, lines } = captureLogger();
    const nc = await connectNats({ url: server.url, name: "test-reconnect", timeoutMs: 2_000, log });
    try {
      await server.kill();
      await until(() => lines.some((l) => l.level === "warn" && l.msg.startsWith("disconnected from NATS")), 5_000, "disconnect log");
      // Down for longer than a few reconnect attempts: the client must not give up (it is set to retry forever).
      await new Promise((r) => setTimeout(r, 2_500));
      expect(nc.isClosed()).toBe(false);
      expect((nc as unknown as { options: { maxReconnectAttempts: number } }).options.maxReconnectAttempts).toBe(-1);
      await server.restart();
      await until(() => lines.some((l) => l.level === "info" && l.msg === "reconnected to NATS"), 10_000, "reconnect log");
      const sub = nc.subscribe("ping.test", { max: 1 });
      nc.publish("ping.test", "x");
      for await (const m of sub) expect(m.string()).toBe("x");
    } finally {
      await closeNats(nc);
    }
  });
});
