// The SQL pools' sockets: writes made in one tick wait in the socket and leave together at the end of the tick, in
// order; a write in a later tick is not held back by an earlier one.
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { coalescedSocket } from "../../src/db/socket.js";

let server: Server;
let port: number;
const received: Buffer[] = [];
beforeAll(async () => {
  server = createServer((peer: Socket) => peer.on("data", (chunk) => received.push(chunk)));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const nextTick = (): Promise<void> => new Promise((r) => process.nextTick(r));

describe("coalescedSocket", () => {
  it("holds a tick's writes until the tick ends, then sends them in order", async () => {
    const socket = coalescedSocket("127.0.0.1", port);
    await new Promise<void>((r) => socket.once("connect", () => r()));
    received.length = 0;
    socket.write("one,");
    socket.write("two,");
    await Promise.resolve(); // a microtask of the same tick: still held
    socket.write("three");
    expect(socket.writableCorked).toBe(1);
    expect(socket.writableLength).toBe("one,two,three".length);
    await nextTick();
    expect(socket.writableCorked).toBe(0);
    await expect.poll(() => Buffer.concat(received).toString()).toBe("one,two,three");

    // The next tick's first write corks afresh and is released in its own tick.
    socket.write("four");
    expect(socket.writableCorked).toBe(1);
    await nextTick();
    expect(socket.writableCorked).toBe(0);
    await expect.poll(() => Buffer.concat(received).toString()).toBe("one,two,threefour");
    socket.destroy();
  });
});
