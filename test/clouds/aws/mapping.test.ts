// EC2's shapes in the dispatcher's terms, case by case: user data (environment file, or MIME multipart with a user
// script), tags as shown, and firewall rules to IpPermissions and back.
import { describe, expect, it } from "vitest";
import { permissionOf, rulesOf } from "../../../src/clouds/aws/firewalls.js";
import { tagsFor, userData, userTags } from "../../../src/clouds/aws/mapping.js";
import type { FirewallRule } from "../../../src/clouds/firewall-rules.js";

const decode = (b64: string | undefined) => Buffer.from(b64 ?? "", "base64").toString("utf8");

describe("user data", () => {
  it("is nothing without bootstrap or script, the environment file with bootstrap only", () => {
    expect(userData({})).toBeUndefined();
    expect(userData({}, "")).toBeUndefined();
    expect(decode(userData({ B: "2", A: "it's" }))).toBe("# dispatcher bootstrap environment\nA='it'\\''s'\nB='2'\n");
  });

  it("with a script: a multipart whose first part writes the environment file, whatever the values hold", () => {
    const evil = "x'\nEOF\nrm -rf /\n";
    const text = decode(userData({ TOKEN: evil }, "#cloud-config\nruncmd: [touch, /tmp/x]\n"));
    const boundary = /boundary="([^"]+)"/.exec(text)?.[1] as string;
    expect(text.endsWith(`--${boundary}--\r\n`)).toBe(true);
    const [bootstrap, script] = text.split(`--${boundary}`).slice(1, -1);
    expect(bootstrap).not.toContain("rm -rf");
    const env = Buffer.from(/echo '([^']+)' \| base64 -d/.exec(bootstrap!)?.[1] ?? "", "base64").toString("utf8");
    expect(env).toContain(`TOKEN='x'\\''\nEOF\nrm -rf /\n'`);
    expect(script).toContain('Content-Type: text/cloud-config; charset="utf-8"');
    // Only the script when there is no bootstrap; the same input gives the same bytes.
    expect(decode(userData({}, "#!/bin/sh\necho hi\n")).split("Content-Type: text/x-shellscript")).toHaveLength(2);
    expect(userData({ A: "1" }, "echo")).toBe(userData({ A: "1" }, "echo"));
    expect(userData({ A: "1" }, "echo")).not.toBe(userData({ A: "2" }, "echo"));
  });

  it("refuses more than EC2 takes and bad variable names", () => {
    expect(() => userData({}, "x".repeat(16 * 1024))).toThrow(/16384-byte user data limit/);
    expect(() => userData({ "NOT OK": "v" })).toThrow(/not a valid environment variable name/);
  });
});

describe("tags and rules", () => {
  it("shows the user's tags only: not Name, not aws: or dispatcher: ones", () => {
    expect(userTags([{ Key: "Name", Value: "web" }, { Key: "env", Value: "dev" }, { Key: "dispatcher:client-token", Value: "t" }, { Key: "aws:cloudformation:stack-name", Value: "s" }])).toEqual({ env: "dev" });
    expect(tagsFor("web", { env: "dev" }, "tok")).toEqual([{ Key: "Name", Value: "web" }, { Key: "env", Value: "dev" }, { Key: "dispatcher:client-token", Value: "tok" }]);
  });

  it("maps every rule to one IpPermission and back", () => {
    const rules: FirewallRule[] = [
      { direction: "INGRESS", protocol: "TCP", ports: { from: 80, to: 443 }, peer: { cidr: "0.0.0.0/0" }, description: "web" },
      { direction: "INGRESS", protocol: "UDP", ports: { from: 53, to: 53 }, peer: { cidr: "2001:db8::/32" } },
      { direction: "INGRESS", protocol: "ICMP", ports: null, peer: { firewallId: "sg-0123" } },
      { direction: "INGRESS", protocol: "ALL", ports: null, peer: { cidr: "10.0.0.0/8" } },
    ];
    for (const rule of rules) expect(rulesOf([permissionOf(rule)], "INGRESS")).toEqual([rule]);
    expect(permissionOf(rules[3]!)).toEqual({ IpProtocol: "-1", IpRanges: [{ CidrIp: "10.0.0.0/8" }] });
    // EC2 merges peers into one permission and knows protocols by number; unknown protocols and prefix lists are left out.
    expect(rulesOf([{ IpProtocol: "6", FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: "1.2.3.0/24" }, { CidrIp: "5.6.7.0/24" }] }, { IpProtocol: "50", IpRanges: [{ CidrIp: "0.0.0.0/0" }] }, { IpProtocol: "tcp", FromPort: 1, ToPort: 2, PrefixListIds: [{ PrefixListId: "pl-1" }] }], "EGRESS")).toEqual([
      { direction: "EGRESS", protocol: "TCP", ports: { from: 22, to: 22 }, peer: { cidr: "1.2.3.0/24" } },
      { direction: "EGRESS", protocol: "TCP", ports: { from: 22, to: 22 }, peer: { cidr: "5.6.7.0/24" } },
    ]);
  });
});
