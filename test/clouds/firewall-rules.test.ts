// Firewall rules as every driver and the local cloud's forwarder read them: validation with the wrong field named,
// canonical CIDRs, rule identity, and which connections a rule set lets in.
import { describe, expect, it } from "vitest";
import { admits, cidrProblem, inCidr, parseCidr, ruleKey, ruleViolations, sameRule, type FirewallRule } from "../../src/clouds/firewall-rules.js";

const tcp = (from: number, to: number, peer: FirewallRule["peer"] = { cidr: "0.0.0.0/0" }): FirewallRule => ({ direction: "INGRESS", protocol: "TCP", ports: { from, to }, peer });

describe("rule validation", () => {
  it("accepts tcp/udp with a port range, icmp and all without one, a CIDR or a firewall as peer", () => {
    expect(ruleViolations(tcp(22, 22))).toEqual([]);
    expect(ruleViolations({ direction: "EGRESS", protocol: "UDP", ports: { from: 1, to: 65535 }, peer: { cidr: "2001:db8::/32" } })).toEqual([]);
    expect(ruleViolations({ direction: "INGRESS", protocol: "ICMP", ports: null, peer: { firewallId: "sg-0123abcd" } })).toEqual([]);
    expect(ruleViolations({ direction: "INGRESS", protocol: "ALL", ports: null, peer: { cidr: "127.0.0.0/8" }, description: "loopback" })).toEqual([]);
  });

  it("names each wrong field", () => {
    const fields = (rule: unknown) => ruleViolations(rule as FirewallRule).map((v) => v.field);
    expect(fields({ ...tcp(22, 22), direction: "SIDEWAYS" })).toEqual(["direction"]);
    expect(fields({ ...tcp(22, 22), protocol: "SCTP" })).toEqual(["protocol"]);
    expect(fields({ ...tcp(22, 22), ports: null })).toEqual(["ports"]);
    expect(fields(tcp(0, 70000))).toEqual(["ports.from", "ports.to"]);
    expect(fields(tcp(443, 80))).toEqual(["ports.to"]);
    expect(fields(tcp(1.5, 2))).toEqual(["ports.from"]);
    expect(fields({ direction: "INGRESS", protocol: "ICMP", ports: { from: 1, to: 2 }, peer: { cidr: "0.0.0.0/0" } })).toEqual(["ports"]);
    expect(fields({ ...tcp(22, 22), peer: {} })).toEqual(["peer"]);
    expect(fields({ ...tcp(22, 22), peer: { cidr: "10.0.0.0/8", firewallId: "sg-1" } })).toEqual(["peer"]);
    expect(fields({ ...tcp(22, 22), peer: { cidr: "10.0.0.1/8" } })).toEqual(["peer.cidr"]);
    expect(fields({ ...tcp(22, 22), peer: { firewallId: "bad id; drop" } })).toEqual(["peer.firewall_id"]);
    expect(fields({ ...tcp(22, 22), description: "x".repeat(256) })).toEqual(["description"]);
  });

  it("wants canonical CIDRs and says which one was meant", () => {
    expect(cidrProblem("10.1.2.3/16")).toBe("host bits are set: did you mean 10.1.0.0/16?");
    expect(cidrProblem("2001:DB8::/32")).toBe("host bits are set: did you mean 2001:db8::/32?");
    expect(cidrProblem("2001:db8:0:0:0:0:0:1/128")).toBe("host bits are set: did you mean 2001:db8::1/128?");
    for (const bad of ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/08", "300.0.0.0/8", "::/129", "example.com/8", " 10.0.0.0/8"]) expect(cidrProblem(bad), bad).toMatch(/must be an IPv4 or IPv6 CIDR/);
    expect(parseCidr("::ffff:10.0.0.0/104")).toEqual({ family: "ipv6", network: "::ffff:a00:0", prefix: 104 });
    expect(parseCidr("0.0.0.0/0")).toEqual({ family: "ipv4", network: "0.0.0.0", prefix: 0 });
  });

  it("two rules are the same rule whatever their descriptions", () => {
    expect(sameRule({ ...tcp(80, 80), description: "a" }, { ...tcp(80, 80), description: "b" })).toBe(true);
    expect(sameRule(tcp(80, 80), tcp(80, 81))).toBe(false);
    expect(sameRule(tcp(80, 80), { ...tcp(80, 80), direction: "EGRESS" })).toBe(false);
    expect(ruleKey({ direction: "INGRESS", protocol: "ALL", ports: null, peer: { firewallId: "fw-1" } })).toBe("INGRESS ALL * firewall:fw-1");
  });
});

describe("admits", () => {
  const none = () => new Set<string>();
  it("lets in what an ingress rule covers: protocol, port range and source", () => {
    const rules = [tcp(8000, 8080, { cidr: "127.0.0.0/8" })];
    expect(admits(rules, { protocol: "TCP", port: 8080, source: "127.0.0.1" }, none)).toBe(true);
    expect(admits(rules, { protocol: "TCP", port: 8081, source: "127.0.0.1" }, none)).toBe(false);
    expect(admits(rules, { protocol: "UDP", port: 8080, source: "127.0.0.1" }, none)).toBe(false);
    expect(admits(rules, { protocol: "TCP", port: 8080, source: "10.0.0.1" }, none)).toBe(false);
    expect(admits(rules, { protocol: "TCP", port: 8080, source: "::ffff:127.9.9.9" }, none)).toBe(true);
    expect(admits([], { protocol: "TCP", port: 8080, source: "127.0.0.1" }, none)).toBe(false);
  });

  it("egress rules let nothing in; ALL covers every protocol and port", () => {
    expect(admits([{ ...tcp(1, 65535), direction: "EGRESS" }], { protocol: "TCP", port: 22, source: "1.2.3.4" }, none)).toBe(false);
    expect(admits([{ direction: "INGRESS", protocol: "ALL", ports: null, peer: { cidr: "0.0.0.0/0" } }], { protocol: "UDP", port: 53, source: "1.2.3.4" }, none)).toBe(true);
  });

  it("a firewall peer admits the addresses of the servers in that firewall only", () => {
    const members = (id: string) => new Set(id === "fw-app" ? ["127.64.0.9", "127.200.0.1"] : []);
    const rules = [tcp(5432, 5432, { firewallId: "fw-app" })];
    expect(admits(rules, { protocol: "TCP", port: 5432, source: "127.64.0.9" }, members)).toBe(true);
    expect(admits(rules, { protocol: "TCP", port: 5432, source: "127.200.0.1" }, members)).toBe(true);
    expect(admits(rules, { protocol: "TCP", port: 5432, source: "127.0.0.1" }, members)).toBe(false);
  });

  it("matches IPv6 sources against IPv6 CIDRs only", () => {
    expect(inCidr("2001:db8::5", "2001:db8::/32")).toBe(true);
    expect(inCidr("2001:db9::5", "2001:db8::/32")).toBe(false);
    expect(inCidr("10.0.0.1", "::/0")).toBe(false);
    expect(inCidr("not an address", "0.0.0.0/0")).toBe(false);
  });
});
