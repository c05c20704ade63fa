// A TCP proxy that can delay what it forwards, for the chaos script's network fault: a process reaches one server
// through it, and `delay(ms)` makes that link slow both ways (each chunk held ms before it goes on, order kept) until
// `delay(0)`. It stands for `tc qdisc … netem delay` on one host's interface, without root or a network namespace.
// `cut()` drops its connections and `refusing` drops new ones, as a killed server or a network cut would.
import { createServer, connect, type Server, type Socket } from "node:net";

export class DelayProxy {
  private delayMs = 0;
  /** While true, new connections are dropped at once (the target looks down). */
  refusing = false;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Listens on a free port of 127.0.0.1 and forwards each connection to 127.0.0.1:`targetPort`. */
  static async start(targetPort: number): Promise<DelayProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const proxy = new DelayProxy(server, (server.address() as { port: number }).port);
    server.on("connection", (client) => proxy.accept(client, targetPort));
    return proxy;
  }

  /** Delay added to each direction from now on (0: none). Chunks already held keep their time. */
  delay(ms: number): void {
    this.delayMs = ms;
  }

  /** Drops every connection now, as a network cut or a killed server does. */
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  /** The URL `url` with its port replaced by the proxy's (mysql://root@127.0.0.1:3306/db → …:<proxy port>/db). */
  rewrite(url: string, targetPort: number): string {
    return url.replace(`:${targetPort}/`, `:${this.port}/`);
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise((r) => this.server.close(r));
  }

  private accept(client: Socket, targetPort: number): void {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, "127.0.0.1");
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.setNoDelay(true);
      s.on("close", () => this.sockets.delete(s));
      // A side that fails or closes takes the other with it, as a dropped connection does.
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    this.pipe(client, upstream);
    this.pipe(upstream, client);
  }

  /** Forwards from → to, each chunk after the delay in force when it arrived, never overtaking an earlier one. */
  private pipe(from: Socket, to: Socket): void {
    const held: { at: number; chunk: Buffer | null }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = (): void => {
      timer = undefined;
      const now = Date.now();
      while (held.length > 0 && (held[0]?.at ?? 0) <= now) {
        const { chunk } = held.shift() as { at: number; chunk: Buffer | null };
        if (to.destroyed) continue;
        if (chunk === null) to.end();
        else to.write(chunk);
      }
      const next = held[0];
      if (next) timer = setTimeout(flush, next.at - now);
    };
    const push = (chunk: Buffer | null): void => {
      const last = held.at(-1)?.at ?? 0;
      held.push({ at: Math.max(Date.now() + this.delayMs, last), chunk });
      if (!timer) flush();
    };
    from.on("data", (chunk: Buffer) => push(chunk));
    // A clean end goes on after what was held; an error destroys both sides (accept()), and held chunks go nowhere.
    from.on("end", () => push(null));
  }
}
