// The aws driver's firewalls (security groups), static addresses (Elastic IPs), key pairs, tags and launch options,
// through the real EC2 SDK against the fake EC2 endpoint: each call's request as EC2 receives it (parameter names and
// values), EC2's answers and error codes mapped (a duplicate rule is done, a missing one gone, a group in use or an
// address associated is CONFLICT), idempotent creates where EC2 keeps no client token, and user data kept out of errors.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAwsDriver } from "../../../src/clouds/aws/driver.js";
import { DriverError, type DriverCallOptions, type DriverTarget, type LaunchRequest, type ServerObservation } from "../../../src/clouds/driver.js";
import type { FirewallRule } from "../../../src/clouds/firewall-rules.js";
import { createDriverRegistry } from "../../../src/clouds/registry.js";
import { serviceOf } from "../../../src/clouds/resources.js";
import { generateKeyPair } from "../../../src/clouds/ssh-keys.js";
import { FakeEc2, type RecordedCall } from "./fake-ec2.js";

const ACCESS_KEY = "AKIAIOSFODNN7NETWORK";
const fake = new FakeEc2({ accessKeyIds: [ACCESS_KEY], maxAddresses: 3 });
const driver = createDriverRegistry([createAwsDriver()]).get("aws");
const firewalls = serviceOf(driver, "firewalls");
const addresses = serviceOf(driver, "addresses");
const keys = serviceOf(driver, "keyPairs");
const tags = serviceOf(driver, "tags");
const dir = mkdtempSync(join(tmpdir(), "aws-network-"));
let target: DriverTarget;
const call = (ms = 15_000): DriverCallOptions => ({ signal: new AbortController().signal, deadline: new Date(Date.now() + ms) });
const REGION = "eu-west-1";
const ref = (providerId: string) => ({ regionId: REGION, providerId });
let n = 0;
const token = (what: string) => `${what}-${++n}`;

beforeAll(async () => {
  const url = await fake.start();
  target = { cloud: { id: "c-1", driver: "aws", endpoint: url }, account: { id: "acct-1", providerAccountId: null }, credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYNETWORKKEY" } };
  // The first call loads the SDK (seconds on a busy machine): done here, so no test's deadline pays for it.
  await driver.testContext(target, call(60_000));
  fake.calls.length = 0;
});
afterAll(async () => {
  await fake.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  fake.calls.length = 0;
});

/** The request's parameters, envelope aside, as EC2 received them. */
function params(c: RecordedCall | undefined): Record<string, string> {
  expect(c).toBeDefined();
  const out = Object.fromEntries(c!.params);
  delete out.Action;
  delete out.Version;
  return out;
}
const last = (action: string) => fake.callsOf(action).at(-1);
const failure = async (p: Promise<unknown>): Promise<DriverError> => {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(DriverError);
  return err as DriverError;
};

async function running(extra: Partial<LaunchRequest> = {}): Promise<ServerObservation> {
  const s = await driver.launch(target, { regionId: REGION, dataCenter: "", productId: "t3.micro", imageId: "ami-1a2b3c4d", name: `vm-${++n}`, clientToken: token("srv"), bootstrap: {}, ...extra }, call());
  return (await driver.getServer(target, ref(s.providerId), call())) as ServerObservation;
}

describe("security groups", () => {
  const ssh: FirewallRule = { direction: "INGRESS", protocol: "TCP", ports: { from: 22, to: 22 }, peer: { cidr: "203.0.113.0/24" }, description: "office" };

  it("creates a group tagged with its client token, looked for first, so a retry makes no second group", async () => {
    const clientToken = token("fw");
    const fw = await firewalls.create(target, { regionId: REGION, name: "web", description: "web servers", clientToken, tags: { team: "blue" } }, call());
    expect(fake.actions()).toEqual(["DescribeSecurityGroups", "CreateSecurityGroup", "DescribeSecurityGroups"]);
    expect(params(fake.calls[0])).toEqual({ "Filter.1.Name": "tag:dispatcher:client-token", "Filter.1.Value.1": clientToken, MaxResults: "1000" });
    expect(params(last("CreateSecurityGroup"))).toEqual({
      GroupName: "web",
      GroupDescription: "web servers",
      "TagSpecification.1.ResourceType": "security-group",
      "TagSpecification.1.Tag.1.Key": "team",
      "TagSpecification.1.Tag.1.Value": "blue",
      "TagSpecification.1.Tag.2.Key": "dispatcher:client-token",
      "TagSpecification.1.Tag.2.Value": clientToken,
    });
    expect(params(fake.calls[2])).toEqual({ "GroupId.1": fw.providerId });
    expect(fw).toMatchObject({ providerId: expect.stringMatching(/^sg-/), regionId: REGION, name: "web", description: "web servers", state: "AVAILABLE", clientToken, tags: { team: "blue" }, details: { vpcId: "vpc-1a2b3c4d" } });
    // A new VPC group lets everything out.
    expect(fw.rules).toEqual([{ direction: "EGRESS", protocol: "ALL", ports: null, peer: { cidr: "0.0.0.0/0" } }]);

    fake.calls.length = 0;
    expect((await firewalls.create(target, { regionId: REGION, name: "web", description: "web servers", clientToken, tags: {} }, call())).providerId).toBe(fw.providerId);
    expect(fake.actions()).toEqual(["DescribeSecurityGroups"]);
    const taken = await failure(firewalls.create(target, { regionId: REGION, name: "web", description: "", clientToken: token("fw"), tags: {} }, call()));
    expect(taken).toMatchObject({ code: "CONFLICT", providerCode: "InvalidGroup.Duplicate", retryable: false });
    // EC2 wants a description: the name stands in for an empty one.
    expect(params(last("CreateSecurityGroup")).GroupDescription).toBe("web");
  });

  it("authorizes and revokes one rule per IpPermission, in EC2's shapes; a duplicate is done, a missing one gone", async () => {
    const fw = await firewalls.create(target, { regionId: REGION, name: "rules", description: "r", clientToken: token("fw"), tags: {} }, call());
    const other = await firewalls.create(target, { regionId: REGION, name: "peers", description: "p", clientToken: token("fw"), tags: {} }, call());
    fake.calls.length = 0;
    await firewalls.authorize(target, ref(fw.providerId), ssh, call());
    expect(params(last("AuthorizeSecurityGroupIngress"))).toEqual({
      GroupId: fw.providerId,
      "IpPermissions.1.IpProtocol": "tcp",
      "IpPermissions.1.FromPort": "22",
      "IpPermissions.1.ToPort": "22",
      "IpPermissions.1.IpRanges.1.CidrIp": "203.0.113.0/24",
      "IpPermissions.1.IpRanges.1.Description": "office",
    });
    const rules: FirewallRule[] = [
      { direction: "INGRESS", protocol: "TCP", ports: { from: 5432, to: 5432 }, peer: { firewallId: other.providerId } },
      { direction: "INGRESS", protocol: "UDP", ports: { from: 60000, to: 61000 }, peer: { cidr: "2001:db8::/32" } },
      { direction: "INGRESS", protocol: "ICMP", ports: null, peer: { cidr: "0.0.0.0/0" } },
      { direction: "EGRESS", protocol: "TCP", ports: { from: 443, to: 443 }, peer: { cidr: "10.0.0.0/8" } },
    ];
    for (const rule of rules) await firewalls.authorize(target, ref(fw.providerId), rule, call());
    const [, group, v6, icmp] = fake.callsOf("AuthorizeSecurityGroupIngress").map(params);
    expect(group).toEqual({ GroupId: fw.providerId, "IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "5432", "IpPermissions.1.ToPort": "5432", "IpPermissions.1.Groups.1.GroupId": other.providerId });
    expect(v6).toMatchObject({ "IpPermissions.1.IpProtocol": "udp", "IpPermissions.1.Ipv6Ranges.1.CidrIpv6": "2001:db8::/32" });
    expect(icmp).toEqual({ GroupId: fw.providerId, "IpPermissions.1.IpProtocol": "icmp", "IpPermissions.1.FromPort": "-1", "IpPermissions.1.ToPort": "-1", "IpPermissions.1.IpRanges.1.CidrIp": "0.0.0.0/0" });
    expect(params(last("AuthorizeSecurityGroupEgress"))).toMatchObject({ GroupId: fw.providerId, "IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.IpRanges.1.CidrIp": "10.0.0.0/8" });
    const seen = await firewalls.get(target, ref(fw.providerId), call());
    expect(seen?.rules).toEqual(expect.arrayContaining([ssh, ...rules]));
    expect(seen?.rules).toHaveLength(6);

    // The same rule again: EC2 says InvalidPermission.Duplicate, the driver says done.
    fake.calls.length = 0;
    await firewalls.authorize(target, ref(fw.providerId), ssh, call());
    expect(fake.actions()).toEqual(["AuthorizeSecurityGroupIngress"]);
    await firewalls.revoke(target, ref(fw.providerId), ssh, call());
    expect(params(last("RevokeSecurityGroupIngress"))).toMatchObject({ GroupId: fw.providerId, "IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "22", "IpPermissions.1.IpRanges.1.CidrIp": "203.0.113.0/24" });
    await firewalls.revoke(target, ref(fw.providerId), ssh, call()); // InvalidPermission.NotFound: gone already
    await firewalls.revoke(target, ref(fw.providerId), rules[3]!, call());
    expect(params(last("RevokeSecurityGroupEgress"))).toMatchObject({ GroupId: fw.providerId, "IpPermissions.1.FromPort": "443" });
    expect((await firewalls.get(target, ref(fw.providerId), call()))?.rules).toHaveLength(4);
  });

  it("refuses a bad rule before calling EC2, and maps EC2's refusals", async () => {
    fake.calls.length = 0;
    const bad = await failure(firewalls.authorize(target, ref("sg-0123456789abcdef0"), { ...ssh, ports: { from: 80, to: 22 } }, call()));
    expect(bad).toMatchObject({ code: "INVALID", message: "firewall rule ports.to: must not be below ports.from" });
    expect(fake.calls).toEqual([]);
    expect(await failure(firewalls.authorize(target, ref("sg-0123456789abcdef0"), ssh, call()))).toMatchObject({ code: "NOT_FOUND", providerCode: "InvalidGroup.NotFound" });
    fake.failNext(1, "RequestLimitExceeded", { action: "AuthorizeSecurityGroupIngress" });
    expect(await failure(firewalls.authorize(target, ref("sg-0123456789abcdef0"), ssh, call()))).toMatchObject({ code: "THROTTLED", retryable: true });
    expect(await firewalls.get(target, ref("sg-0123456789abcdef0"), call())).toBeNull();
  });

  it("deletes an unused group (gone is fine); one in use, or the default, is CONFLICT", async () => {
    const fw = await firewalls.create(target, { regionId: REGION, name: "doomed", description: "d", clientToken: token("fw"), tags: {} }, call());
    const s = await running({ firewallIds: [fw.providerId] });
    expect(await failure(firewalls.delete(target, ref(fw.providerId), call()))).toMatchObject({ code: "CONFLICT", providerCode: "DependencyViolation" });
    expect(params(last("DeleteSecurityGroup"))).toEqual({ GroupId: fw.providerId });
    expect(await failure(firewalls.delete(target, ref("sg-1a2b3c4d"), call()))).toMatchObject({ code: "CONFLICT", providerCode: "CannotDelete" });
    await driver.terminate(target, ref(s.providerId), call());
    await driver.getServer(target, ref(s.providerId), call()); // shutting-down → terminated
    await firewalls.delete(target, ref(fw.providerId), call());
    await firewalls.delete(target, ref(fw.providerId), call());
    expect(await firewalls.get(target, ref(fw.providerId), call())).toBeNull();
  });

  it("sets a running server's groups with ModifyInstanceAttribute", async () => {
    const [a, b] = await Promise.all(["ma", "mb"].map((name) => firewalls.create(target, { regionId: REGION, name, description: name, clientToken: token("fw"), tags: {} }, call())));
    const s = await running();
    expect(s.firewallIds).toEqual(["sg-1a2b3c4d"]);
    await firewalls.setServerFirewalls(target, ref(s.providerId), [a!.providerId, b!.providerId], call());
    expect(params(last("ModifyInstanceAttribute"))).toEqual({ InstanceId: s.providerId, "GroupId.1": a!.providerId, "GroupId.2": b!.providerId });
    expect((await driver.getServer(target, ref(s.providerId), call()))?.firewallIds).toEqual([a!.providerId, b!.providerId]);
    expect(await failure(firewalls.setServerFirewalls(target, ref(s.providerId), ["sg-0000000000000000a"], call()))).toMatchObject({ code: "NOT_FOUND" });
    const all = await firewalls.list(target, REGION, call());
    expect(all.map((g) => g.name)).toEqual(expect.arrayContaining(["default", "ma", "mb"]));
  });
});

describe("Elastic IPs", () => {
  it("allocates once per client token, associates with a running instance, and cleans up", async () => {
    const clientToken = token("ip");
    const ip = await addresses.allocate(target, { regionId: REGION, name: "front", clientToken, tags: { role: "lb" } }, call());
    expect(fake.actions()).toEqual(["DescribeAddresses", "AllocateAddress"]);
    expect(params(fake.calls[0])).toEqual({ "Filter.1.Name": "tag:dispatcher:client-token", "Filter.1.Value.1": clientToken });
    expect(params(last("AllocateAddress"))).toEqual({
      Domain: "vpc",
      "TagSpecification.1.ResourceType": "elastic-ip",
      "TagSpecification.1.Tag.1.Key": "Name",
      "TagSpecification.1.Tag.1.Value": "front",
      "TagSpecification.1.Tag.2.Key": "role",
      "TagSpecification.1.Tag.2.Value": "lb",
      "TagSpecification.1.Tag.3.Key": "dispatcher:client-token",
      "TagSpecification.1.Tag.3.Value": clientToken,
    });
    expect(ip).toMatchObject({ providerId: expect.stringMatching(/^eipalloc-/), ip: expect.stringMatching(/^198\.51\.100\./), state: "ALLOCATED", name: "front", tags: { role: "lb" }, clientToken, serverProviderId: null });
    fake.calls.length = 0;
    expect((await addresses.allocate(target, { regionId: REGION, name: "front", clientToken, tags: {} }, call())).providerId).toBe(ip.providerId);
    expect(fake.actions()).toEqual(["DescribeAddresses"]);

    const s = await running();
    fake.calls.length = 0;
    await addresses.associate(target, ref(ip.providerId), ref(s.providerId), call());
    expect(fake.actions()).toEqual(["DescribeAddresses", "AssociateAddress"]);
    expect(params(fake.calls[0])).toEqual({ "AllocationId.1": ip.providerId });
    expect(params(last("AssociateAddress"))).toEqual({ AllocationId: ip.providerId, InstanceId: s.providerId, AllowReassociation: "false" });
    const associated = await addresses.get(target, ref(ip.providerId), call());
    expect(associated).toMatchObject({ state: "ASSOCIATED", serverProviderId: s.providerId, details: { associationId: expect.stringMatching(/^eipassoc-/), domain: "vpc" } });
    expect((await driver.getServer(target, ref(s.providerId), call()))?.addresses.public).toEqual([ip.ip]);
    // Again with the same instance: nothing to do. With another: CONFLICT, and no AssociateAddress sent.
    fake.calls.length = 0;
    await addresses.associate(target, ref(ip.providerId), ref(s.providerId), call());
    const other = await running();
    const moved = await failure(addresses.associate(target, ref(ip.providerId), ref(other.providerId), call()));
    expect(moved.code).toBe("CONFLICT");
    expect(fake.callsOf("AssociateAddress")).toEqual([]);
    expect(await failure(addresses.delete(target, ref(ip.providerId), call()))).toMatchObject({ code: "CONFLICT", providerCode: "InvalidIPAddress.InUse" });

    fake.calls.length = 0;
    await addresses.disassociate(target, ref(ip.providerId), call());
    expect(params(last("DisassociateAddress"))).toEqual({ AssociationId: associated!.details.associationId });
    await addresses.disassociate(target, ref(ip.providerId), call());
    expect(fake.callsOf("DisassociateAddress")).toHaveLength(1);
    await addresses.delete(target, ref(ip.providerId), call());
    expect(params(last("ReleaseAddress"))).toEqual({ AllocationId: ip.providerId });
    await addresses.delete(target, ref(ip.providerId), call()); // InvalidAllocationID.NotFound: released already
    expect(await addresses.get(target, ref(ip.providerId), call())).toBeNull();
  });

  it("an account out of addresses is QUOTA, not retried; a terminated instance gives its address up", async () => {
    const held = await addresses.list(target, REGION, call());
    expect(params(last("DescribeAddresses"))).toEqual({ "Filter.1.Name": "domain", "Filter.1.Value.1": "vpc" });
    const more = [];
    for (let i = held.length; i < 3; i++) more.push(await addresses.allocate(target, { regionId: REGION, name: `a${i}`, clientToken: token("ip"), tags: {} }, call()));
    expect(await failure(addresses.allocate(target, { regionId: REGION, name: "one too many", clientToken: token("ip"), tags: {} }, call()))).toMatchObject({ code: "QUOTA", retryable: false, providerCode: "AddressLimitExceeded" });
    const s = await running();
    await addresses.associate(target, ref(more[0]!.providerId), ref(s.providerId), call());
    await driver.terminate(target, ref(s.providerId), call());
    await driver.getServer(target, ref(s.providerId), call());
    expect(await addresses.get(target, ref(more[0]!.providerId), call())).toMatchObject({ state: "ALLOCATED", serverProviderId: null });
    for (const a of more) await addresses.delete(target, ref(a.providerId), call());
  });
});

describe("key pairs", () => {
  it("imports an OpenSSH key (the key text, base64 on the wire); the same again is the same pair, another key CONFLICT", async () => {
    const made = generateKeyPair("ed25519", "me@laptop");
    const clientToken = token("kp");
    const imported = await keys.importKey(target, { regionId: REGION, name: "laptop", clientToken, tags: { owner: "me" }, publicKey: made.publicKey }, call());
    const sent = params(last("ImportKeyPair"));
    expect(Buffer.from(sent.PublicKeyMaterial!, "base64").toString("utf8")).toBe(made.publicKey.split(" ").slice(0, 2).join(" "));
    expect(sent).toMatchObject({ KeyName: "laptop", "TagSpecification.1.ResourceType": "key-pair", "TagSpecification.1.Tag.1.Key": "owner", "TagSpecification.1.Tag.2.Key": "dispatcher:client-token", "TagSpecification.1.Tag.2.Value": clientToken });
    expect(imported).toMatchObject({ providerId: expect.stringMatching(/^key-/), name: "laptop", keyType: "ed25519", tags: { owner: "me" }, clientToken, fingerprint: expect.any(String) });
    expect(imported.fingerprint.length).toBeGreaterThan(20);

    fake.calls.length = 0;
    const again = await keys.importKey(target, { regionId: REGION, name: "laptop", clientToken: token("kp"), tags: {}, publicKey: made.publicKey }, call());
    expect(again.providerId).toBe(imported.providerId);
    expect(fake.actions()).toEqual(["DescribeKeyPairs", "ImportKeyPair", "DescribeKeyPairs"]);
    expect(params(fake.calls[2])).toEqual({ "KeyName.1": "laptop", IncludePublicKey: "true" });
    const clash = await failure(keys.importKey(target, { regionId: REGION, name: "laptop", clientToken: token("kp"), tags: {}, publicKey: generateKeyPair("ed25519", "").publicKey }, call()));
    expect(clash).toMatchObject({ code: "CONFLICT", providerCode: "InvalidKeyPair.Duplicate" });
    fake.calls.length = 0;
    expect(await failure(keys.importKey(target, { regionId: REGION, name: "x", clientToken: token("kp"), tags: {}, publicKey: "not a key" }, call()))).toMatchObject({ code: "INVALID" });
    expect(fake.calls).toEqual([]);
  });

  it("creates a pair whose private key ssh-keygen reads; a retried create replaces the pair its lost attempt made", async () => {
    const clientToken = token("kp");
    const first = await keys.create(target, { regionId: REGION, name: "made", clientToken, tags: {}, keyType: "ed25519" }, call());
    expect(params(last("CreateKeyPair"))).toEqual({ KeyName: "made", KeyType: "ed25519", KeyFormat: "pem", "TagSpecification.1.ResourceType": "key-pair", "TagSpecification.1.Tag.1.Key": "dispatcher:client-token", "TagSpecification.1.Tag.1.Value": clientToken });
    const file = join(dir, "made");
    writeFileSync(file, first.privateKey, { mode: 0o600 });
    expect(execFileSync("ssh-keygen", ["-y", "-f", file], { encoding: "utf8" })).toMatch(/^ssh-ed25519 /);
    fake.calls.length = 0;
    const second = await keys.create(target, { regionId: REGION, name: "made", clientToken, tags: {}, keyType: "ed25519" }, call());
    expect(fake.actions()).toEqual(["DescribeKeyPairs", "DeleteKeyPair", "CreateKeyPair"]);
    expect(params(fake.callsOf("DeleteKeyPair")[0])).toEqual({ KeyPairId: first.keyPair.providerId });
    expect(second.keyPair.providerId).not.toBe(first.keyPair.providerId);
    expect(second.privateKey).not.toBe(first.privateKey);
    await keys.delete(target, ref(second.keyPair.providerId), call());
    expect(params(last("DeleteKeyPair"))).toEqual({ KeyPairId: second.keyPair.providerId });
    expect(await keys.get(target, ref(second.keyPair.providerId), call())).toBeNull();
    expect(params(last("DescribeKeyPairs"))).toEqual({ "KeyPairId.1": second.keyPair.providerId });
  });
});

describe("launch options and tags", () => {
  it("RunInstances carries the groups, key name, tags and user data (bootstrap and script as a MIME multipart)", async () => {
    const fw = await firewalls.create(target, { regionId: REGION, name: "launch", description: "l", clientToken: token("fw"), tags: {} }, call());
    await keys.importKey(target, { regionId: REGION, name: "ops", clientToken: token("kp"), tags: {}, publicKey: generateKeyPair("ed25519", "").publicKey }, call());
    const script = "#!/bin/sh\necho marker > /root/marker\n";
    const s = await running({ firewallIds: [fw.providerId], keyPairName: "ops", userData: script, tags: { env: "dev" }, bootstrap: { DISPATCHER_AGENT_JOIN_TOKEN: "jt-1" } });
    const sent = params(last("RunInstances"));
    expect(sent).toMatchObject({ "SecurityGroupId.1": fw.providerId, KeyName: "ops", "TagSpecification.1.ResourceType": "instance", "TagSpecification.1.Tag.1.Key": "Name", "TagSpecification.1.Tag.2.Key": "env", "TagSpecification.1.Tag.2.Value": "dev" });
    const text = Buffer.from(sent.UserData!, "base64").toString("utf8");
    const boundary = /boundary="([^"]+)"/.exec(text)?.[1] as string;
    const parts = text.split(`--${boundary}`).slice(1, -1);
    expect(parts).toHaveLength(2);
    expect(parts[0]).toContain('Content-Type: text/x-shellscript; charset="utf-8"');
    const encoded = /echo '([A-Za-z0-9+/=]+)' \| base64 -d > \/etc\/dispatcher\/bootstrap.env/.exec(parts[0]!)?.[1] as string;
    expect(Buffer.from(encoded, "base64").toString("utf8")).toContain("DISPATCHER_AGENT_JOIN_TOKEN='jt-1'\n");
    expect(parts[1]).toContain(`\r\n\r\n${script}\r\n`);
    expect(s).toMatchObject({ firewallIds: [fw.providerId], keyPairName: "ops", tags: { env: "dev" } });

    // The same launch again (a retried job): the same bytes, so EC2's client token matches.
    const again = await driver.launch(target, { regionId: REGION, dataCenter: "", productId: "t3.micro", imageId: "ami-1a2b3c4d", name: s.name, clientToken: s.clientToken!, bootstrap: { DISPATCHER_AGENT_JOIN_TOKEN: "jt-1" }, firewallIds: [fw.providerId], keyPairName: "ops", userData: script, tags: { env: "dev" } }, call());
    expect(again.providerId).toBe(s.providerId);
    expect(params(last("RunInstances")).UserData).toBe(sent.UserData);
    expect(await failure(running({ firewallIds: ["sg-00000000000000000"] }))).toMatchObject({ code: "NOT_FOUND", providerCode: "InvalidGroup.NotFound" });
    expect(await failure(running({ keyPairName: "nobody" }))).toMatchObject({ code: "NOT_FOUND", providerCode: "InvalidKeyPair.NotFound" });
  });

  it("never lets user data into an error, even when EC2 quotes it", async () => {
    const script = "#!/bin/sh\nexport API_TOKEN=ud-s3cret-value\n";
    fake.failNext(1, "InvalidParameterValue", { action: "RunInstances", message: `Invalid user data: ${script} / ${Buffer.from(script).toString("base64")}` });
    const err = await failure(running({ userData: script }));
    expect(err.code).toBe("INVALID");
    for (const text of [err.message, String(err.cause), JSON.stringify(err)]) {
      expect(text).not.toContain("ud-s3cret-value");
      expect(text).not.toContain(Buffer.from(script).toString("base64").slice(0, 20));
    }
    fake.calls.length = 0;
    const big = await failure(running({ userData: `#!/bin/sh\n# ${"y".repeat(17_000)}` }));
    expect(big).toMatchObject({ code: "INVALID", message: expect.stringMatching(/16384-byte user data limit/) });
    expect(fake.callsOf("RunInstances")).toEqual([]);
  });

  it("tags any resource with CreateTags and DeleteTags; the dispatcher's own tags stay", async () => {
    const s = await running({ tags: { a: "1" } });
    await tags.set(target, { type: "server", ...ref(s.providerId) }, { b: "2", c: "3" }, call());
    expect(params(last("CreateTags"))).toEqual({ "ResourceId.1": s.providerId, "Tag.1.Key": "b", "Tag.1.Value": "2", "Tag.2.Key": "c", "Tag.2.Value": "3" });
    await tags.remove(target, { type: "server", ...ref(s.providerId) }, ["a", "dispatcher:client-token"], call());
    expect(params(last("DeleteTags"))).toEqual({ "ResourceId.1": s.providerId, "Tag.1.Key": "a" });
    expect((await driver.getServer(target, ref(s.providerId), call()))?.tags).toEqual({ b: "2", c: "3" });
    const fw = await firewalls.create(target, { regionId: REGION, name: "tagged", description: "t", clientToken: token("fw"), tags: {} }, call());
    await tags.set(target, { type: "firewall", ...ref(fw.providerId) }, { owner: "ops" }, call());
    expect((await firewalls.get(target, ref(fw.providerId), call()))?.tags).toEqual({ owner: "ops" });
    expect(await failure(tags.set(target, { type: "server", ...ref(s.providerId) }, { "aws:x": "y" }, call()))).toMatchObject({ code: "INVALID" });
    expect(await failure(tags.set(target, { type: "bucket", ...ref("files-1") }, { a: "b" }, call()))).toMatchObject({ code: "UNSUPPORTED" });
  });
});
