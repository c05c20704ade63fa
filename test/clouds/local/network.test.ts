// The local cloud's networking on this machine, with real connections: each server answers on a loopback address of
// its own only as its firewalls allow (port, source CIDR, source firewall), static addresses are real addresses it
// answers on, and every change is in force when the call returns. Refused means the kernel refused (no listener:
// ECONNREFUSED) or the forwarder reset the connection before the guest saw it (ECONNRESET).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DriverError, type LaunchRequest, type ServerObservation, type ServerRef } from "../../../src/clouds/driver.js";
import type { FirewallRule } from "../../../src/clouds/firewall-rules.js";
import { createLocalDriver } from "../../../src/clouds/local/driver.js";
import { checkLoopback } from "../../../src/clouds/local/network/loopback.js";
import { serviceOf, type FirewallObservation } from "../../../src/clouds/resources.js";
import { callOptions, httpGet, pidAlive, startLocalCloud, type LocalCloudFixture } from "./support.js";
import { until } from "../../support/poll.js";

let f: LocalCloudFixture;
beforeAll(() => {
  f = startLocalCloud("network", { stopGraceMs: 1_000 });
});
afterAll(async () => {
  await f?.cleanup();
});

let n = 0;
const token = (what: string) => `${what}-${++n}-${Date.now()}`;
const firewalls = () => serviceOf(f.driver, "firewalls");
const addresses = () => serviceOf(f.driver, "addresses");
const ref = (providerId: string): ServerRef => ({ regionId: "local", providerId });
const tcp = (port: number, peer: FirewallRule["peer"]): FirewallRule => ({ direction: "INGRESS", protocol: "TCP", ports: { from: port, to: port }, peer });
const failure = async (p: Promise<unknown>): Promise<DriverError> => {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(DriverError);
  return err as DriverError;
};

async function firewall(name: string, rules: FirewallRule[] = []): Promise<FirewallObservation> {
  const fw = await firewalls().create(f.target, { regionId: "local", name: `${name}-${n}`, description: name, clientToken: token("fw"), tags: {} }, callOptions());
  for (const rule of rules) await firewalls().authorize(f.target, ref(fw.providerId), rule, callOptions());
  return fw;
}

async function launch(extra: Partial<LaunchRequest> = {}): Promise<ServerObservation> {
  const s = await f.driver.launch(f.target, { regionId: "local", dataCenter: "", productId: "small", imageId: "basic", name: `net ${++n}`, clientToken: token("srv"), bootstrap: {}, ...extra }, callOptions());
  return until(async () => { const x = await f.driver.getServer(f.target, ref(s.providerId), callOptions()); return x?.state === "RUNNING" ? x : null; }, 30_000, "the server RUNNING");
}

const at = (s: ServerObservation, from?: string) => httpGet(8080, s.addresses.private[0], from);

describe("firewalls on real connections", () => {
  it("admits the allowed port from the allowed sources; other ports and sources are refused; a revoked rule refuses at once", async () => {
    const web = await firewall("web", [tcp(8080, { cidr: "127.0.0.0/8" })]);
    const s = await launch({ firewallIds: [web.providerId] });
    expect(s.firewallIds).toEqual([web.providerId]);
    expect(await at(s)).toBe("200 ok");
    // Nothing opens 9090 (and the guest does not serve it): the kernel refuses.
    expect(await httpGet(9090, s.addresses.private[0])).toBe("ECONNREFUSED");

    // Narrow the source: 127.0.0.1 is turned away before the guest sees it, 127.5.0.9 is let in.
    await firewalls().authorize(f.target, ref(web.providerId), tcp(8080, { cidr: "127.5.0.0/16" }), callOptions());
    await firewalls().revoke(f.target, ref(web.providerId), tcp(8080, { cidr: "127.0.0.0/8" }), callOptions());
    expect(await at(s)).toBe("ECONNRESET");
    expect(await at(s, "127.5.0.9")).toBe("200 ok");

    // Revoking the last rule for the port closes it: refused by the kernel, from anywhere.
    await firewalls().revoke(f.target, ref(web.providerId), tcp(8080, { cidr: "127.5.0.0/16" }), callOptions());
    expect(await at(s, "127.5.0.9")).toBe("ECONNREFUSED");
    const seen = await firewalls().get(f.target, ref(web.providerId), callOptions());
    expect(seen?.rules).toEqual([]);
  });

  it("a rule naming another firewall admits the addresses of the servers in it, and only those", async () => {
    const app = await firewall("app", [tcp(8080, { cidr: "127.0.0.0/8" })]);
    const db = await firewall("db", [tcp(8080, { firewallId: app.providerId })]);
    const [client, other, server] = await Promise.all([launch({ firewallIds: [app.providerId] }), launch(), launch({ firewallIds: [db.providerId] })]);
    expect(await at(server, client.addresses.private[0])).toBe("200 ok");
    expect(await at(server, other.addresses.private[0])).toBe("ECONNRESET");
    expect(await at(server)).toBe("ECONNRESET");
    // The peer is in use: it cannot be deleted while a rule names it.
    expect(await failure(firewalls().delete(f.target, ref(app.providerId), callOptions()))).toMatchObject({ code: "CONFLICT" });
  });

  it("setting a running server's firewalls takes effect before the call returns", async () => {
    const closed = await firewall("closed");
    const open = await firewall("open", [tcp(8080, { cidr: "127.0.0.0/8" })]);
    const s = await launch({ firewallIds: [closed.providerId] });
    expect(await at(s)).toBe("ECONNREFUSED");
    await firewalls().setServerFirewalls(f.target, ref(s.providerId), [closed.providerId, open.providerId], callOptions());
    expect(await at(s)).toBe("200 ok");
    expect((await f.driver.getServer(f.target, ref(s.providerId), callOptions()))?.firewallIds).toEqual([closed.providerId, open.providerId]);
    await firewalls().setServerFirewalls(f.target, ref(s.providerId), [closed.providerId], callOptions());
    expect(await at(s)).toBe("ECONNREFUSED");
    expect(await failure(firewalls().setServerFirewalls(f.target, ref(s.providerId), [], callOptions()))).toMatchObject({ code: "INVALID" });
    expect(await failure(firewalls().setServerFirewalls(f.target, ref(s.providerId), ["fw-0000000000000000"], callOptions()))).toMatchObject({ code: "NOT_FOUND" });
    // In use: not deleted.
    expect(await failure(firewalls().delete(f.target, ref(closed.providerId), callOptions()))).toMatchObject({ code: "CONFLICT", message: expect.stringContaining(s.providerId) });
  });

  it("a stopped server's address refuses; started again, it answers", async () => {
    const s = await launch();
    await f.driver.stop(f.target, ref(s.providerId), callOptions());
    expect(await at(s)).toBe("ECONNREFUSED");
    await f.driver.start(f.target, ref(s.providerId), callOptions());
    const again = await until(async () => { const x = await f.driver.getServer(f.target, ref(s.providerId), callOptions()); return x?.state === "RUNNING" ? x : null; }, 30_000, "the server RUNNING again");
    expect(again.addresses).toEqual(s.addresses);
    expect(await at(again)).toBe("200 ok");
  });

  it("a forwarder killed behind the cloud's back comes back on the next look", async () => {
    const s = await launch();
    const daemon = JSON.parse(readFileSync(join(s.details.workDir as string, "..", "network", "daemon.json"), "utf8")) as { pid: number };
    process.kill(daemon.pid, "SIGKILL");
    await until(() => !pidAlive(daemon.pid), 10_000, "the forwarder gone");
    // Unreachable (refused, or reset while the dying process's sockets close).
    expect(["ECONNREFUSED", "ECONNRESET"]).toContain(await at(s));
    await until(async () => {
      await f.driver.getServer(f.target, ref(s.providerId), callOptions());
      return (await at(s)) === "200 ok";
    }, 30_000, "the server answering again");
  });

  it("keeps rules it cannot enforce out, saying why, and validates the rest", async () => {
    const fw = await firewall("checks");
    const authorize = (rule: FirewallRule) => failure(firewalls().authorize(f.target, ref(fw.providerId), rule, callOptions()));
    expect(await authorize({ ...tcp(22, { cidr: "0.0.0.0/0" }), direction: "EGRESS" })).toMatchObject({ code: "UNSUPPORTED", message: expect.stringMatching(/ingress rules only/) });
    expect(await authorize({ ...tcp(53, { cidr: "0.0.0.0/0" }), protocol: "UDP" })).toMatchObject({ code: "UNSUPPORTED", message: expect.stringMatching(/TCP only/) });
    expect(await authorize(tcp(22, { cidr: "::/0" }))).toMatchObject({ code: "UNSUPPORTED" });
    expect(await authorize(tcp(0, { cidr: "0.0.0.0/0" }))).toMatchObject({ code: "INVALID", message: "firewall rule ports.from: must be a port from 1 to 65535" });
    expect(await authorize(tcp(22, { cidr: "10.1.2.3/8" }))).toMatchObject({ code: "INVALID", message: expect.stringMatching(/did you mean 10.0.0.0\/8/) });
    expect(await authorize(tcp(22, { firewallId: "fw-0000000000000000" }))).toMatchObject({ code: "NOT_FOUND" });
    // The same rule twice is one rule; revoking one that is not there is fine.
    await firewalls().authorize(f.target, ref(fw.providerId), tcp(22, { cidr: "0.0.0.0/0" }), callOptions());
    await firewalls().authorize(f.target, ref(fw.providerId), { ...tcp(22, { cidr: "0.0.0.0/0" }), description: "again" }, callOptions());
    await firewalls().revoke(f.target, ref(fw.providerId), tcp(23, { cidr: "0.0.0.0/0" }), callOptions());
    expect((await firewalls().get(f.target, ref(fw.providerId), callOptions()))?.rules).toEqual([tcp(22, { cidr: "0.0.0.0/0" })]);
  });

  it("creates idempotently by client token, refuses a second name, lists the default firewall, deletes what is unused", async () => {
    const clientToken = token("fw");
    const req = { regionId: "local", name: `same-${n}`, description: "d", clientToken, tags: { team: "blue" } };
    const [a, b] = await Promise.all([firewalls().create(f.target, req, callOptions()), firewalls().create(f.target, req, callOptions())]);
    expect(b?.providerId).toBe(a?.providerId);
    expect(a).toMatchObject({ name: req.name, state: "AVAILABLE", description: "d", tags: { team: "blue" }, clientToken, rules: [] });
    expect(await failure(firewalls().create(f.target, { ...req, clientToken: token("fw") }, callOptions()))).toMatchObject({ code: "CONFLICT" });
    const all = await firewalls().list(f.target, "local", callOptions());
    const byDefault = all.find((x) => x.name === "default");
    expect(byDefault?.rules).toEqual([{ direction: "INGRESS", protocol: "ALL", ports: null, peer: { cidr: "127.0.0.0/8" }, description: "this machine" }]);
    expect(await failure(firewalls().delete(f.target, ref(byDefault!.providerId), callOptions()))).toMatchObject({ code: "CONFLICT" });
    await firewalls().delete(f.target, ref(a!.providerId), callOptions());
    await firewalls().delete(f.target, ref(a!.providerId), callOptions()); // gone already: fine
    expect(await firewalls().get(f.target, ref(a!.providerId), callOptions())).toBeNull();
    expect(await failure(firewalls().create(f.target, { ...req, regionId: "mars" }, callOptions()))).toMatchObject({ code: "INVALID" });
  });
});

describe("static addresses", () => {
  it("allocates a real address the server answers on once associated, through its firewalls", async () => {
    const clientToken = token("ip");
    const ip = await addresses().allocate(f.target, { regionId: "local", name: "front", clientToken, tags: { role: "front" } }, callOptions());
    expect(ip).toMatchObject({ state: "ALLOCATED", serverProviderId: null, ip: expect.stringMatching(/^127\.(19[2-9]|2[0-4]\d|25[0-4])\./), tags: { role: "front" } });
    expect((await addresses().allocate(f.target, { regionId: "local", name: "front", clientToken, tags: {} }, callOptions())).providerId).toBe(ip.providerId);
    expect(await httpGet(8080, ip.ip)).toBe("ECONNREFUSED");

    const s = await launch();
    await addresses().associate(f.target, ref(ip.providerId), ref(s.providerId), callOptions());
    await addresses().associate(f.target, ref(ip.providerId), ref(s.providerId), callOptions()); // again: fine
    expect(await httpGet(8080, ip.ip)).toBe("200 ok");
    expect((await f.driver.getServer(f.target, ref(s.providerId), callOptions()))?.addresses).toEqual({ private: s.addresses.private, public: [ip.ip] });
    expect(await addresses().get(f.target, ref(ip.providerId), callOptions())).toMatchObject({ state: "ASSOCIATED", serverProviderId: s.providerId });

    // Elsewhere it is taken; released it is not, while associated.
    const other = await launch();
    expect(await failure(addresses().associate(f.target, ref(ip.providerId), ref(other.providerId), callOptions()))).toMatchObject({ code: "CONFLICT" });
    expect(await failure(addresses().delete(f.target, ref(ip.providerId), callOptions()))).toMatchObject({ code: "CONFLICT" });

    await addresses().disassociate(f.target, ref(ip.providerId), callOptions());
    await addresses().disassociate(f.target, ref(ip.providerId), callOptions());
    expect(await httpGet(8080, ip.ip)).toBe("ECONNREFUSED");
    expect(await at(s)).toBe("200 ok");
    await addresses().delete(f.target, ref(ip.providerId), callOptions());
    expect(await addresses().get(f.target, ref(ip.providerId), callOptions())).toBeNull();
    await addresses().delete(f.target, ref(ip.providerId), callOptions());
  });

  it("a second address takes the first one's place on a server; a terminated server gives its address up", async () => {
    const [one, two] = await Promise.all(["one", "two"].map((name) => addresses().allocate(f.target, { regionId: "local", name, clientToken: token("ip"), tags: {} }, callOptions())));
    const s = await launch();
    await addresses().associate(f.target, ref(one!.providerId), ref(s.providerId), callOptions());
    await addresses().associate(f.target, ref(two!.providerId), ref(s.providerId), callOptions());
    expect((await addresses().get(f.target, ref(one!.providerId), callOptions()))?.state).toBe("ALLOCATED");
    expect(await httpGet(8080, one!.ip)).toBe("ECONNREFUSED");
    expect(await httpGet(8080, two!.ip)).toBe("200 ok");
    await f.driver.terminate(f.target, ref(s.providerId), callOptions());
    expect(await addresses().get(f.target, ref(two!.providerId), callOptions())).toMatchObject({ state: "ALLOCATED", serverProviderId: null });
    expect(await httpGet(8080, two!.ip)).toBe("ECONNREFUSED");
    expect((await f.driver.getServer(f.target, ref(s.providerId), callOptions()))?.addresses).toEqual({ private: [], public: [] });
    expect(await failure(addresses().associate(f.target, ref(two!.providerId), ref(s.providerId), callOptions()))).toMatchObject({ code: "CONFLICT" });
  });
});

describe("without addresses of its own (a machine that cannot bind 127.x)", () => {
  it("the driver says at start what this machine allows", async () => {
    const said: Array<[string, string]> = [];
    const log = { info: (m: unknown) => void said.push(["info", String(m)]), warn: (_o: unknown, m?: unknown) => void said.push(["warn", String(m)]) };
    createLocalDriver({ dataDir: f.dataDir, catalogFile: "", stopGraceMs: 1_000, log: log as never });
    createLocalDriver({ dataDir: f.dataDir, catalogFile: "", stopGraceMs: 1_000, log: log as never, addressing: false });
    expect(await checkLoopback()).toEqual({ usable: true });
    await until(() => said.length === 2, 10_000, "two messages");
    expect(said).toEqual(
      expect.arrayContaining([
        ["info", expect.stringMatching(/each server answers on a loopback address of its own/)],
        ["warn", expect.stringMatching(/cannot give servers loopback addresses of their own, so firewalls and static addresses are not offered/)],
      ]),
    );
  });

  it("reports no firewalls or static addresses, refuses them naming the capability, and serves on 127.0.0.1 as before", async () => {
    const plain = startLocalCloud("plain", { addressing: false });
    try {
      const caps = await plain.driver.probeCapabilities(plain.target, "local", callOptions());
      expect(caps).not.toContain("firewalls");
      expect(caps).not.toContain("static_addresses");
      expect(caps).toContain("key_pairs");
      const fw = await failure(serviceOf(plain.driver, "firewalls").create(plain.target, { regionId: "local", name: "x", description: "", clientToken: "t", tags: {} }, callOptions()));
      expect(fw).toMatchObject({ code: "UNSUPPORTED", message: expect.stringMatching(/has no firewalls \(this machine cannot give servers loopback addresses of their own\)/) });
      expect(await failure(serviceOf(plain.driver, "addresses").list(plain.target, "local", callOptions()))).toMatchObject({ code: "UNSUPPORTED" });
      expect(await failure(plain.driver.launch(plain.target, { regionId: "local", dataCenter: "", productId: "small", imageId: "basic", name: "x", clientToken: "t1", bootstrap: {}, firewallIds: ["fw-0000000000000000"] }, callOptions()))).toMatchObject({ code: "UNSUPPORTED" });
      const s = await plain.driver.launch(plain.target, { regionId: "local", dataCenter: "", productId: "small", imageId: "basic", name: "x", clientToken: "t2", bootstrap: {} }, callOptions());
      const up = await until(async () => { const x = await plain.driver.getServer(plain.target, ref(s.providerId), callOptions()); return x?.state === "RUNNING" ? x : null; }, 10_000, "the server RUNNING");
      expect(up.addresses).toEqual({ private: ["127.0.0.1"], public: [] });
      expect(up.firewallIds).toEqual([]);
      expect(await httpGet(Number(up.details.port))).toBe("200 ok");
    } finally {
      await plain.cleanup();
    }
  });
});
