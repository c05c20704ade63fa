// FirewallService, AddressService and KeyPairService over gRPC with the DB-backed authenticator, a worker and the
// monitor's checks against the fake cloud's resource services: the flows (a rule is added and removed, an address
// associated with a running server, disassociated and released, a key imported, a key pair made whose private key is
// answered once and stored nowhere), each with its history; bad rules, CIDRs and ports as field violations; another
// account's resources NOT_FOUND; readers cannot change anything; a hard quota refuses an allocation with a
// QuotaFailure; and every method of the three services is in the permission table, each role allowed what it says.
import { status, type Client, type MethodDefinition } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AddressServiceService, FirewallServiceService, KeyPairServiceService, KeyType, RuleDirection, RuleProtocol } from "../../src/gen/proto/dispatcher/v1/network.js";
import { METHOD_PERMISSIONS, isAllowed } from "../../src/iam/permissions.js";
import { findResource } from "../../src/resources/repository.js";
import { insecureClient, rawCall } from "../rpc/fixtures.js";
import { seedAccount, seedBudgetCode, startServersFixture, type ServersFixture } from "../servers/support.js";
import { withFakeResources } from "./fake-services.js";
import { generateKeyPair } from "../../src/clouds/ssh-keys.js";

let f: ServersFixture;
let account: string;
let other: string;
let raw: Client;

const REGIONS = [{ id: "r1", dataCenters: ["r1-a"], capabilities: ["compute", "firewalls", "static_addresses", "key_pairs"] }];
const finished = (jobId: string) => f.h.waitForState(jobId, ["SUCCEEDED", "FAILED", "CANCELLED"], 20_000);
const tcp = (port: number, cidr: string) => ({ direction: RuleDirection.RULE_DIRECTION_INGRESS, protocol: RuleProtocol.RULE_PROTOCOL_TCP, fromPort: port, toPort: port, peer: { $case: "cidr" as const, value: cidr }, description: "" });

beforeAll(async () => {
  f = await startServersFixture("net_api", { prepare: (cloud) => void withFakeResources(cloud) });
  await seedBudgetCode(f, "NET", { hard: 10_000_000n }, [f.users.operator, f.users.scoped]);
  account = await seedAccount(f, { defaultBudgetCode: "NET", regions: REGIONS });
  other = await seedAccount(f, { defaultBudgetCode: "NET", regions: REGIONS });
  await f.scope(other);
  raw = insecureClient(f.server.address);
});
afterAll(async () => {
  raw?.close();
  await f?.close();
});

describe("firewalls", () => {
  it("creates a firewall, adds and removes a rule (each job done when the cloud shows it), tags it, deletes it", async () => {
    const c = f.client(f.users.operator);
    const { job, firewall } = await c.firewalls.createFirewall({ accountId: account, regionId: "r1", name: "web", description: "web tier", tags: { app: "shop" }, idempotencyKey: "fw-web" });
    expect((await finished(job!.id)).state).toBe("SUCCEEDED");
    const id = firewall!.info!.id;
    const add = await c.firewalls.addFirewallRule({ id, rule: tcp(8080, "127.0.0.0/8"), idempotencyKey: "" });
    expect((await finished(add.job!.id)).state).toBe("SUCCEEDED");
    const { firewall: seen } = await c.firewalls.getFirewall({ id });
    expect(seen).toMatchObject({ description: "web tier", info: { state: "AVAILABLE", tags: { app: "shop" } }, rules: [{ fromPort: 8080, toPort: 8080, peer: { $case: "cidr", value: "127.0.0.0/8" } }] });
    const rm = await c.firewalls.removeFirewallRule({ id, rule: tcp(8080, "127.0.0.0/8"), idempotencyKey: "" });
    expect((await finished(rm.job!.id)).state).toBe("SUCCEEDED");
    expect((await c.firewalls.getFirewall({ id })).firewall!.rules).toEqual([]);
    const tag = await c.firewalls.setFirewallTags({ id, change: { set: { tier: "edge" }, remove: ["app"] }, idempotencyKey: "" });
    expect((await finished(tag.job!.id)).state).toBe("SUCCEEDED");
    expect((await c.firewalls.listFirewalls({ accountId: account, tags: { tier: "edge" }, pageSize: 10, pageToken: "", regionId: "", includeDeleted: false })).firewalls.map((x) => x.info!.id)).toEqual([id]);
    const del = await c.firewalls.deleteFirewall({ id, idempotencyKey: "" });
    expect((await finished(del.job!.id)).state).toBe("SUCCEEDED");
    const { events } = await c.firewalls.listFirewallEvents({ id, pageSize: 100, pageToken: "" });
    expect(events.map((e) => e.type)).toEqual(["CREATE_REQUESTED", "PROVIDER_ID_ASSIGNED", "STATE_CHANGED", "ACTION_REQUESTED", "DETAILS_CHANGED", "ACTION_REQUESTED", "DETAILS_CHANGED", "ACTION_REQUESTED", "TAGS_CHANGED", "DELETE_REQUESTED", "STATE_CHANGED"]);
    expect(events.find((e) => e.message.includes("rule added"))?.message).toContain("INGRESS TCP 8080-8080 from 127.0.0.0/8");
  });

  it("answers bad rules, CIDRs and ports with field violations", async () => {
    const c = f.client(f.users.operator);
    const { job, firewall } = await c.firewalls.createFirewall({ accountId: account, regionId: "r1", name: "", description: "", tags: {}, idempotencyKey: "" });
    await finished(job!.id);
    const id = firewall!.info!.id;
    const bad = async (rule: Record<string, unknown>) => (await c.firewalls.addFirewallRule({ id, rule: rule as never, idempotencyKey: "" }).catch((e: { codeName: string; fieldViolations: Array<{ field: string }> }) => e)) as { codeName: string; fieldViolations: Array<{ field: string }> };
    expect((await bad(tcp(22, "10.0.0.1/8"))).fieldViolations.map((v) => v.field)).toEqual(["rule.cidr"]);
    expect((await bad(tcp(22, "not-a-cidr"))).codeName).toBe("INVALID_ARGUMENT");
    expect((await bad({ ...tcp(22, "10.0.0.0/8"), fromPort: 100, toPort: 70000 })).fieldViolations.map((v) => v.field)).toEqual(["rule.to_port"]);
    expect((await bad({ ...tcp(0, "10.0.0.0/8") })).fieldViolations.map((v) => v.field)).toEqual(["rule.ports"]);
    expect((await bad({ ...tcp(22, "10.0.0.0/8"), protocol: 0, direction: 0 })).fieldViolations.map((v) => v.field)).toEqual(["rule.direction", "rule.protocol"]);
    expect((await bad({ ...tcp(22, "10.0.0.0/8"), peer: { $case: "firewallId", value: "01HNOSUCHFIREWALL000000000" } })).fieldViolations.map((v) => v.field)).toEqual(["rule.firewall_id"]);
    const created = await c.firewalls.createFirewall({ accountId: account, regionId: "r1", name: "x", description: "", tags: { "aws:no": "1" }, idempotencyKey: "" }).catch((e: { fieldViolations: Array<{ field: string }> }) => e);
    expect((created as { fieldViolations: Array<{ field: string }> }).fieldViolations.map((v) => v.field)).toEqual(['tags["aws:no"]']);
  });
});

describe("static addresses", () => {
  it("allocates, associates with a running server, disassociates and releases, each done on what the cloud shows", async () => {
    const c = f.client(f.users.operator);
    const launched = await c.servers.launchServer({ accountId: account, regionId: "r1", dataCenter: "", productId: "small", imageId: "img-1", name: "", budgetCode: "", idempotencyKey: "" });
    expect((await finished(launched.job!.id)).state).toBe("SUCCEEDED");
    const { job, address } = await c.addresses.allocateAddress({ accountId: account, regionId: "r1", name: "front", budgetCode: "", tags: {}, idempotencyKey: "" });
    expect((await finished(job!.id)).state).toBe("SUCCEEDED");
    const id = address!.info!.id;
    expect(address!.info!.budgetCode).toBe("NET");
    const assoc = await c.addresses.associateAddress({ id, serverId: launched.server!.id, idempotencyKey: "" });
    expect((await finished(assoc.job!.id)).state).toBe("SUCCEEDED");
    expect((await c.addresses.getAddress({ id })).address).toMatchObject({ info: { state: "ASSOCIATED" }, serverId: launched.server!.id, ip: expect.stringMatching(/^198\.51\.100\./) });
    await expect(c.addresses.releaseAddress({ id, idempotencyKey: "" })).rejects.toMatchObject({ codeName: "FAILED_PRECONDITION", errorInfo: { reason: "ADDRESS_ASSOCIATED" } });
    const dis = await c.addresses.disassociateAddress({ id, idempotencyKey: "" });
    expect((await finished(dis.job!.id)).state).toBe("SUCCEEDED");
    const rel = await c.addresses.releaseAddress({ id, idempotencyKey: "" });
    expect((await finished(rel.job!.id)).state).toBe("SUCCEEDED");
    const states = (await c.addresses.listAddressEvents({ id, pageSize: 100, pageToken: "" })).events.filter((e) => e.type === "STATE_CHANGED").map((e) => e.toState);
    expect(states).toEqual(["ALLOCATED", "ASSOCIATED", "ALLOCATED", "DELETED"]);
  });

  it("refuses an allocation past the budget code's hard quota with a QuotaFailure", async () => {
    await seedBudgetCode(f, "NET-TINY", { hard: 50n }, [f.users.operator]);
    const err = await f.client(f.users.operator).addresses.allocateAddress({ accountId: account, regionId: "r1", name: "", budgetCode: "NET-TINY", tags: {}, idempotencyKey: "" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ codeName: "FAILED_PRECONDITION", quotaViolations: [{ subject: "budget_codes/NET-TINY" }] });
  });
});

describe("key pairs", () => {
  it("imports a public key, and makes a key pair whose private key is answered once and stored nowhere", async () => {
    const c = f.client(f.users.operator);
    const pub = generateKeyPair("ed25519", "ann@laptop").publicKey;
    const imported = await c.keyPairs.importKeyPair({ accountId: account, regionId: "r1", name: "ann", publicKey: pub, tags: {}, idempotencyKey: "" });
    expect((await finished(imported.job!.id)).state).toBe("SUCCEEDED");
    expect((await c.keyPairs.getKeyPair({ id: imported.keyPair!.info!.id })).keyPair).toMatchObject({ info: { state: "AVAILABLE" }, fingerprint: expect.stringMatching(/^SHA256:/), keyType: "ed25519" });
    await expect(c.keyPairs.importKeyPair({ accountId: account, regionId: "r1", name: "bad", publicKey: "ssh-rsa nonsense", tags: {}, idempotencyKey: "" })).rejects.toMatchObject({ codeName: "INVALID_ARGUMENT", fieldViolations: [{ field: "public_key" }] });

    const made = await c.keyPairs.createKeyPair({ accountId: account, regionId: "r1", name: "deploy", keyType: KeyType.KEY_TYPE_ED25519, tags: {}, idempotencyKey: "kp-deploy" });
    expect(made.privateKey).toContain("BEGIN OPENSSH PRIVATE KEY");
    expect((await finished(made.job!.id)).state).toBe("SUCCEEDED");
    const again = await c.keyPairs.createKeyPair({ accountId: account, regionId: "r1", name: "deploy", keyType: KeyType.KEY_TYPE_ED25519, tags: {}, idempotencyKey: "kp-deploy" });
    expect([again.job!.id, again.keyPair!.info!.id, again.privateKey]).toEqual([made.job!.id, made.keyPair!.info!.id, ""]);
    const body = made.privateKey.split("\n").slice(1, 3).join("");
    const dumps = {
      jobs: await f.h.sql.query`SELECT payload, result, error_message, error_details, progress_message FROM jobs`,
      job_events: await f.h.sql.query`SELECT message FROM job_events`,
      outbox: await f.h.sql.query`SELECT payload, headers FROM outbox_entries`,
      published: f.publications(),
      resources: await f.h.sql.query`SELECT name, tags, details FROM resources`,
      resource_events: await f.h.sql.query`SELECT message, details FROM resource_events`,
    };
    for (const [table, rows] of Object.entries(dumps)) expect(JSON.stringify(rows), table).not.toContain(body.slice(0, 40));
    expect(f.publications().some((m) => m.includes(made.job!.id)), "the job's message was seen on NATS").toBe(true);
    expect(JSON.stringify(f.h.lines)).not.toContain(body.slice(0, 40));
    const row = await findResource(f.h.sql, made.keyPair!.info!.id);
    expect(row?.state).toBe("AVAILABLE");
    const del = await c.keyPairs.deleteKeyPair({ id: row!.id, idempotencyKey: "" });
    expect((await finished(del.job!.id)).state).toBe("SUCCEEDED");
  });
});

describe("access", () => {
  it("answers NOT_FOUND for another account's firewall, address or key pair, and lists none of them", async () => {
    const op = f.client(f.users.operator);
    const fw = await op.firewalls.createFirewall({ accountId: account, regionId: "r1", name: "", description: "", tags: {}, idempotencyKey: "" });
    const ad = await op.addresses.allocateAddress({ accountId: account, regionId: "r1", name: "", budgetCode: "", tags: {}, idempotencyKey: "" });
    const kp = await op.keyPairs.importKeyPair({ accountId: account, regionId: "r1", name: "k", publicKey: generateKeyPair("ed25519", "").publicKey, tags: {}, idempotencyKey: "" });
    await Promise.all([fw, ad, kp].map((x) => finished(x.job!.id)));
    const outsider = f.client(f.users.scoped);
    const calls: Array<() => Promise<unknown>> = [
      () => outsider.firewalls.getFirewall({ id: fw.firewall!.info!.id }),
      () => outsider.firewalls.deleteFirewall({ id: fw.firewall!.info!.id, idempotencyKey: "" }),
      () => outsider.firewalls.addFirewallRule({ id: fw.firewall!.info!.id, rule: tcp(22, "10.0.0.0/8"), idempotencyKey: "" }),
      () => outsider.firewalls.listFirewallEvents({ id: fw.firewall!.info!.id, pageSize: 10, pageToken: "" }),
      () => outsider.addresses.getAddress({ id: ad.address!.info!.id }),
      () => outsider.addresses.releaseAddress({ id: ad.address!.info!.id, idempotencyKey: "" }),
      () => outsider.addresses.disassociateAddress({ id: ad.address!.info!.id, idempotencyKey: "" }),
      () => outsider.addresses.setAddressTags({ id: ad.address!.info!.id, change: { set: { a: "b" }, remove: [] }, idempotencyKey: "" }),
      () => outsider.keyPairs.getKeyPair({ id: kp.keyPair!.info!.id }),
      () => outsider.keyPairs.deleteKeyPair({ id: kp.keyPair!.info!.id, idempotencyKey: "" }),
      () => outsider.firewalls.createFirewall({ accountId: account, regionId: "r1", name: "", description: "", tags: {}, idempotencyKey: "" }),
    ];
    for (const call of calls) await expect(call()).rejects.toMatchObject({ codeName: "NOT_FOUND" });
    const listed = await outsider.firewalls.listFirewalls({ accountId: "", regionId: "", tags: {}, includeDeleted: true, pageSize: 1000, pageToken: "" });
    expect(listed.firewalls.every((x) => x.info!.accountId === other)).toBe(true);
  });

  it("refuses readers every change, and lets them read", async () => {
    const reader = f.client(f.users.reader);
    await expect(reader.firewalls.createFirewall({ accountId: account, regionId: "r1", name: "", description: "", tags: {}, idempotencyKey: "" })).rejects.toMatchObject({ codeName: "PERMISSION_DENIED" });
    await expect(reader.addresses.allocateAddress({ accountId: account, regionId: "r1", name: "", budgetCode: "", tags: {}, idempotencyKey: "" })).rejects.toMatchObject({ codeName: "PERMISSION_DENIED" });
    await expect(reader.keyPairs.createKeyPair({ accountId: account, regionId: "r1", name: "", keyType: KeyType.KEY_TYPE_ED25519, tags: {}, idempotencyKey: "" })).rejects.toMatchObject({ codeName: "PERMISSION_DENIED" });
    expect((await reader.addresses.listAddresses({ accountId: account, regionId: "", tags: {}, includeDeleted: false, pageSize: 10, pageToken: "" })).addresses.length).toBeGreaterThan(0);
  });

  it("names every method in the permission table and allows each built-in role exactly what the table grants", async () => {
    const methods = [FirewallServiceService, AddressServiceService, KeyPairServiceService].flatMap((s) => Object.values(s) as Array<MethodDefinition<unknown, unknown>>);
    expect(methods).toHaveLength(23);
    const users = { admin: f.users.admin, operator: f.users.operator, reader: f.users.reader };
    for (const m of methods) {
      const permission = METHOD_PERMISSIONS[m.path];
      expect(permission, m.path).toMatch(/^(firewalls|addresses|keypairs)\.(read|write)$/);
      expect(permission!.endsWith(".read"), m.path).toBe(/\/(Get|List)/.test(m.path));
      for (const [role, user] of Object.entries(users)) {
        const allowed = isAllowed({ id: "x", kind: "user", roles: [role], displayName: "x" }, permission!);
        expect(allowed, `${role} ${m.path}`).toBe(role !== "reader" || permission!.endsWith(".read"));
        const err = await rawCall(raw, m.path, m.responseStream, user.secret);
        if (allowed) expect([status.PERMISSION_DENIED, status.UNAUTHENTICATED], `${role} ${m.path}`).not.toContain(err?.code);
        else expect(err?.code, `${role} ${m.path}`).toBe(status.PERMISSION_DENIED);
      }
      expect((await rawCall(raw, m.path, m.responseStream, undefined))?.code, m.path).toBe(status.UNAUTHENTICATED);
    }
  });
});
