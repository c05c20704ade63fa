// The health probe's own connection against a real MariaDB behind a TCP link this test can cut: a connection dropped
// while idle (the server killed, a failover, a network cut) must never throw out of the driver's socket handler — that
// ended the dispatcher process — and the next probe fails, then the one after the link is back connects afresh.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createDatabaseProbe } from "../../src/db/probe.js";
import { DelayProxy } from "../support/delay-proxy.js";
import { until } from "../support/poll.js";

let link: DelayProxy;
let url: string;
beforeAll(async () => {
  const server = new URL(loadConfig(process.env, "").provisioning.url);
  link = await DelayProxy.start(Number(server.port || 3306));
  server.port = String(link.port);
  server.pathname = "/mysql";
  url = server.toString();
});
afterAll(() => link?.stop());

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
