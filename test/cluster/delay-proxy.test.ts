// The chaos script's network fault: a proxy that forwards unchanged, then with the delay asked for each way, in order,
// then unchanged again.
import { createServer, connect, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DelayProxy } from "../support/delay-proxy.js";

describe("DelayProxy", () => {
  let echo: Server;
  let proxy: DelayProxy;
  let client: Socket;
  let received = "";

  beforeAll(async () => {
    echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    proxy = await DelayProxy.start((echo.address() as { port: number }).port);
    client = connect(proxy.port, "127.0.0.1");
    client.setNoDelay(true);
    client.on("data", (d: Buffer) => (received += d.toString()));
    await new Promise((r) => client.once("connect", r));
  });

  afterAll(async () => {
    client?.destroy();
    await proxy?.stop();
    await new Promise((r) => echo?.close(r));
  });

  const roundTrip = async (text: string): Promise<number> => {
    const t0 = Date.now();
    client.write(text);
    while (!received.endsWith(text)) await new Promise((r) => setTimeout(r, 5));
    return Date.now() - t0;
  };

  it("adds the delay to each direction while it is on, keeping the order of what it holds", async () => {
    expect(await roundTrip("a")).toBeLessThan(100);
    proxy.delay(150);
    client.write("b");
    client.write("c");
    expect(await roundTrip("d")).toBeGreaterThanOrEqual(290);
    expect(received).toBe("abcd");
    proxy.delay(0);
    expect(await roundTrip("e")).toBeLessThan(100);
    expect(proxy.rewrite("mysql://root@127.0.0.1:3306/db", 3306)).toBe(`mysql://root@127.0.0.1:${proxy.port}/db`);
  });
});
