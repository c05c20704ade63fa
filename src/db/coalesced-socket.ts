// Sockets for the SQL pool's connections that send what one tick wrote in one system call: the driver writes each
// statement as it is queued, so a transaction's pipelined statements (and the commands of several transactions
// started in the same tick) otherwise cost a write each — on this kind of VM the largest single frame of a worker's
// CPU profile.
import { connect, type Socket } from "node:net";
import type { StreamCallback } from "mariadb";

/**
 * The driver's `stream` option: a TCP connection to `host:port` (no Nagle delay, as the driver's own) whose writes
 * are corked until the current tick's synchronous code and queued microtasks have run, then leave together.
 */
export function coalescedStream(host: string, port: number): (callback: StreamCallback) => void {
  return (callback) => {
    const socket = connect(port, host);
    socket.setNoDelay(true);
    coalesceWrites(socket);
    callback(undefined, socket);
  };
}

/** Makes `socket` gather the writes of one tick and send them with one writev when the tick's work is done. */
export function coalesceWrites(socket: Socket): void {
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  let corked = false;
  const release = (): void => {
    corked = false;
    socket.uncork();
  };
  socket.write = ((...args: unknown[]): boolean => {
    if (!corked) {
      corked = true;
      socket.cork();
      // A nextTick callback runs after the current operation's microtasks: every statement queued in this turn of the
      // caller's code goes out with this one, and nothing waits for a later I/O turn.
      process.nextTick(release);
    }
    return write(...args);
  }) as Socket["write"];
}
