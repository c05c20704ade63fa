// The sockets of the SQL pools: what one tick of the process sends on a connection leaves in one system call.
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";

/**
 * A TCP connection to `host`:`port` whose writes made in the same tick leave together: the first write of a tick corks
 * the socket and a process.nextTick uncorks it, after the tick's synchronous code and its microtasks. The driver
 * writes each statement of a pipeline (START TRANSACTION with the first statements, a batch's effects, COMMIT with
 * what precedes it) as a write of its own, and each write is a system call that wakes the server's thread: under load
 * those were most of a worker's system calls. Order is kept (a corked socket sends its writes in order), and nothing
 * waits longer than the end of the current tick, before any reply could be read.
 */
export function coalescedSocket(host: string, port: number): Socket {
  const socket = connect(port, host);
  socket.setNoDelay(true);
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  const write = socket.write;
  socket.write = function (this: Socket, ...args: Parameters<Socket["write"]>): boolean {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write.apply(this, args);
  } as Socket["write"];
  return socket;
}

/** The mariadb driver's `stream` option: every connection of a pool made by coalescedSocket. */
export function coalescedStream(host: string, port: number): (callback: (err?: Error, stream?: Duplex) => void) => void {
  return (callback) => callback(undefined, coalescedSocket(host, port));
}
