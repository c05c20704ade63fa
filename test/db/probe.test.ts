// The health probe's own connection against a real MariaDB behind a TCP link this test can cut: a connection dropped
// while idle (the server killed, a failover, a network cut) must never throw out of the driver's socket handler — that
// ended the dispatcher process — and the next probe fails, then the one after the link is back connects afresh.
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createDatabaseProbe } from "../../src/db/probe.js";
import { until } from "../support/poll.js";

/** Forwards 127.0.0.1:<port> to the database server; cut() drops every connection, `refusing` refuses new ones. */
class CuttableLink {
  readonly sockets = new Set<Socket>();
  refusing = false;
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async open(target: URL): Promise<CuttableLink> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const link = new CuttableLink(server, (server.address() as { port: number }).port);
    server.on("connection", (client) => {
      if (link.refusing) return client.destroy();
      const upstream = connect(Number(target.port || 3306), target.hostname);
      for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
        link.sockets.add(a);
        a.on("data", (chunk) => b.write(chunk));
        a.on("close", () => b.destroy());
        a.on("error", () => b.destroy());
      }
    });
    return link;
  }

  cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((r) => this.server.close(() => r()));
  }
}

let link: CuttableLink;
let url: string;
beforeAll(async () => {
  const server = new URL(loadConfig(process.env, "").provisioning.url);
  link = await CuttableLink.open(new URL(server));
  server.port = String(link.port);
  server.pathname = "/mysql";
  url = server.toString();
});
afterAll(() => link?.close());

describe("the database probe", () => {
  it("survives its idle connection being dropped, fails while the link is down, and reconnects after", async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => void uncaught.push(err);
    process.on("uncaughtException", onUncaught);
    const probe = createDatabaseProbe(url);
    try {
      await probe.probe();
      link.refusing = true;
      link.cut();
      // The driver learns of the close on its own socket, between probes.
      await new Promise((r) => setTimeout(r, 300));
      expect(uncaught).toEqual([]);
      await expect(probe.probe()).rejects.toThrow();
      link.refusing = false;
      await until(() => probe.probe().then(() => true, () => false), 5_000, "the probe to connect again");
      expect(uncaught).toEqual([]);
    } finally {
      process.off("uncaughtException", onUncaught);
      await probe.close();
    }
  });
});
