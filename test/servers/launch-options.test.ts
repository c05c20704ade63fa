// Launch options over gRPC with a worker and the monitor's checks against the fake cloud and its resource services:
// a launch with firewalls, a key pair, user data, an address and tags reaches the driver with the provider's ids and
// the script intact, is done only once the address is seen associated, and each resource's history names the launch
// job; a retried launch answers the same job; the user data is sealed in the job and appears in no row, log line or
// error; bad options are field violations, another account's firewall, key pair or address is NOT_FOUND, a missing
// capability FAILED_PRECONDITION; SetServerFirewalls is done when the cloud shows the new set; SetKeyPairTags tags.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatcherError } from "../../src/client/index.js";
import { generateKeyPair } from "../../src/clouds/ssh-keys.js";
import { ServerState } from "../../src/gen/proto/dispatcher/v1/servers.js";
import { withFakeResources } from "../resources/fake-services.js";
import { seedAccount, seedBudgetCode, startServersFixture, type ServersFixture } from "./support.js";

let f: ServersFixture;
let account: string;
let other: string;
let bare: string;

const NET = ["compute", "firewalls", "static_addresses", "key_pairs"];
const finished = (jobId: string) => f.h.waitForState(jobId, ["SUCCEEDED", "FAILED", "CANCELLED"], 20_000);
const launch = (over: Record<string, unknown> = {}) => ({ accountId: account, regionId: "r1", dataCenter: "", productId: "small", imageId: "img-1", name: "", budgetCode: "", idempotencyKey: "", ...over });

async function failure(p: Promise<unknown>): Promise<DispatcherError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof DispatcherError) return err;
    throw err;
  }
  throw new Error("the call succeeded");
}

/** A firewall, an address and a key pair of `accountId` in `regionId`, each created through the API and done. */
async function networkOf(accountId: string, regionId = "r1"): Promise<{ firewall: string; address: string; key: string }> {
  const c = f.client(f.users.admin);
  const fw = await c.firewalls.createFirewall({ accountId, regionId, name: `fw-${accountId.slice(-6)}`, description: "", tags: {}, idempotencyKey: "" });
  const ad = await c.addresses.allocateAddress({ accountId, regionId, name: "", budgetCode: "", tags: {}, idempotencyKey: "" });
  const kp = await c.keyPairs.importKeyPair({ accountId, regionId, name: `key-${accountId.slice(-6)}`, publicKey: generateKeyPair("ed25519", "ops").publicKey, tags: {}, idempotencyKey: "" });
  for (const job of [fw.job, ad.job, kp.job]) expect((await finished(job!.id)).state).toBe("SUCCEEDED");
  return { firewall: fw.firewall!.info!.id, address: ad.address!.info!.id, key: kp.keyPair!.info!.id };
}

beforeAll(async () => {
  f = await startServersFixture("launch_opts", { prepare: (cloud) => void withFakeResources(cloud) });
  await seedBudgetCode(f, "LNC", { hard: 100_000_000n }, [f.users.admin, f.users.operator, f.users.scoped]);
  const regions = [
    { id: "r1", dataCenters: ["r1-a"], capabilities: NET },
    { id: "r2", dataCenters: ["r2-a"], capabilities: NET },
  ];
  account = await seedAccount(f, { defaultBudgetCode: "LNC", regions });
  other = await seedAccount(f, { defaultBudgetCode: "LNC", regions });
  bare = await seedAccount(f, { defaultBudgetCode: "LNC", regions: [{ id: "r1", dataCenters: ["r1-a"], capabilities: ["compute"] }] });
  await f.scope(other);
}, 60_000);
afterAll(async () => {
  await f?.close();
});

describe("LaunchServer with options", () => {
  it("hands the cloud the firewalls, key pair, user data and tags, associates the address once running, and tells it in every history", async () => {
    const net = await networkOf(account);
    const script = `#!/bin/sh\necho launched-${Date.now()} > marker\n`;
    const c = f.client(f.users.operator);
    const { job, server } = await c.servers.launchServer(launch({ firewallIds: [net.firewall], keyPairId: net.key, userData: script, addressId: net.address, tags: { app: "shop", tier: "web" }, idempotencyKey: "launch-opts-1" }));
    expect(server!.tags).toEqual({ app: "shop", tier: "web" });
    const done = await finished(job!.id);
    expect(done.state, JSON.stringify(done)).toBe("SUCCEEDED");

    const [fw, kp, ad] = await Promise.all([c.firewalls.getFirewall({ id: net.firewall }), c.keyPairs.getKeyPair({ id: net.key }), c.addresses.getAddress({ id: net.address })]);
    const obs = [...f.cloud.servers.values()].find((s) => s.obs.clientToken === server!.id)!.obs;
    expect(obs).toMatchObject({ firewallIds: [fw.firewall!.info!.providerId], keyPairName: kp.keyPair!.info!.name, tags: { app: "shop", tier: "web" } });
    expect(f.cloud.userData.get(server!.id)).toBe(script);
    expect(ad.address).toMatchObject({ info: { state: "ASSOCIATED" }, serverId: server!.id, serverProviderId: obs.providerId });

    const { server: seen } = await c.servers.getServer({ id: server!.id });
    expect(seen).toMatchObject({ state: ServerState.SERVER_STATE_RUNNING, tags: { app: "shop", tier: "web" }, details: { firewalls: fw.firewall!.info!.providerId, keyPair: kp.keyPair!.info!.name } });
    const serverEvents = (await c.servers.listServerEvents({ id: server!.id, pageSize: 100, pageToken: "" })).events;
    expect(serverEvents[0]!.message).toContain(`in firewalls ${fw.firewall!.info!.name}, with key pair ${kp.keyPair!.info!.name}, with address`);
    expect(serverEvents.find((e) => e.type === "ADDRESS_ASSOCIATED")).toMatchObject({ jobId: job!.id });
    const addressEvents = (await c.addresses.listAddressEvents({ id: net.address, pageSize: 100, pageToken: "" })).events;
    expect(addressEvents.filter((e) => e.jobId === job!.id).map((e) => [e.type, e.toState])).toEqual([
      ["ACTION_REQUESTED", ""],
      ["STATE_CHANGED", "ASSOCIATED"],
      ["DETAILS_CHANGED", ""],
    ]);
    for (const id of [net.firewall, net.key]) {
      const events = id === net.firewall ? (await c.firewalls.listFirewallEvents({ id, pageSize: 100, pageToken: "" })).events : (await c.keyPairs.listKeyPairEvents({ id, pageSize: 100, pageToken: "" })).events;
      expect(events.find((e) => e.jobId === job!.id)?.message).toContain(`server ${server!.id} launched`);
    }
    expect((await c.servers.listServers({ accountId: account, tags: { tier: "web" }, pageSize: 10 })).servers.map((s) => s.id)).toEqual([server!.id]);
    expect((await c.servers.listServers({ accountId: account, tags: { tier: "db" }, pageSize: 10 })).servers).toEqual([]);

    // A retry with the same key: the same job and server, and the cloud asked once.
    const again = await c.servers.launchServer(launch({ firewallIds: [net.firewall], keyPairId: net.key, userData: script, addressId: net.address, tags: { app: "shop", tier: "web" }, idempotencyKey: "launch-opts-1" }));
    expect([again.job!.id, again.server!.id]).toEqual([job!.id, server!.id]);
    expect(f.cloud.calls.filter((x) => x === `launch ${server!.id}`)).toHaveLength(1);

    // The script is in the job only sealed, and nowhere else.
    const payload = (await f.h.job(job!.id)).payload as Record<string, unknown>;
    expect(payload).toMatchObject({ serverId: server!.id, firewallIds: [net.firewall], keyPairId: net.key, addressId: net.address, userData: expect.stringMatching(/^v1\./) });
    const secret = script.split("\n")[1]!;
    const dumps = {
      jobs: await f.h.sql.query`SELECT payload, result, error_message, error_details, progress_message FROM jobs`,
      job_events: await f.h.sql.query`SELECT message FROM job_events`,
      outbox: await f.h.sql.query`SELECT payload, headers FROM outbox_entries`,
      published: f.publications(),
      servers: await f.h.sql.query`SELECT name, details, tags FROM servers`,
      server_events: await f.h.sql.query`SELECT message, details FROM server_events`,
      resource_events: await f.h.sql.query`SELECT message, details FROM resource_events`,
      dead_letters: await f.h.sql.query`SELECT * FROM dead_letters`,
    };
    for (const [table, rows] of Object.entries(dumps)) expect(JSON.stringify(rows), table).not.toContain(secret);
    expect(f.publications().some((m) => m.includes(job!.id)), "the job's message was seen on NATS").toBe(true);
    expect(JSON.stringify(f.h.lines)).not.toContain(secret);
  });

  it("refuses bad options with field violations that never quote the user data", async () => {
    const c = f.client(f.users.operator);
    const big = `#!/bin/sh\n# ${"s3cr3t".repeat(3000)}\n`;
    const err = await failure(c.servers.launchServer(launch({ userData: big, tags: { "aws:x": "1", "": "no" }, firewallIds: ["a", "b", "c", "d", "e", "f"] })));
    expect(err.codeName).toBe("INVALID_ARGUMENT");
    expect(err.fieldViolations.map((v) => v.field).sort()).toEqual(["firewall_ids", "tags", 'tags["aws:x"]', "user_data"].sort());
    expect(JSON.stringify(err)).not.toContain("s3cr3t");
    expect(err.message).not.toContain("s3cr3t");
    // The limit is 12 KiB exactly.
    const atLimit = await c.servers.launchServer(launch({ userData: "x".repeat(12 * 1024) }));
    expect(atLimit.job!.kind).toBe("server.launch");
  });

  it("answers NOT_FOUND for another account's firewall, key pair or address, and a violation for one in another region", async () => {
    const theirs = await networkOf(other);
    const c = f.client(f.users.operator);
    const servers = async () => (await f.h.sql.query<{ n: number }>`SELECT COUNT(*) AS n FROM servers`)[0]!.n;
    const before = await servers();
    for (const over of [{ firewallIds: [theirs.firewall] }, { keyPairId: theirs.key }, { addressId: theirs.address }, { firewallIds: ["01HNOSUCHFIREWALL000000000"] }]) {
      expect((await failure(c.servers.launchServer(launch(over)))).codeName, JSON.stringify(over)).toBe("NOT_FOUND");
    }
    // The scoped operator sees `other` only: the first account's resources do not exist for it.
    const mine = await networkOf(account, "r2");
    const scoped = f.client(f.users.scoped);
    expect((await failure(scoped.servers.launchServer(launch({ accountId: other, keyPairId: mine.key })))).codeName).toBe("NOT_FOUND");
    const wrongRegion = await failure(c.servers.launchServer(launch({ firewallIds: [mine.firewall], keyPairId: mine.key, addressId: mine.address })));
    expect(wrongRegion.codeName).toBe("INVALID_ARGUMENT");
    expect(wrongRegion.fieldViolations.map((v) => v.field)).toEqual(["firewall_ids[0]"]);
    const wrongKey = await failure(c.servers.launchServer(launch({ keyPairId: mine.key, addressId: mine.address })));
    expect(wrongKey.fieldViolations.map((v) => v.field)).toEqual(["key_pair_id", "address_id"]);
    // The refusals wrote no server.
    expect(await servers()).toBe(before);
  });

  it("refuses firewalls where the region lacks the capability, and an address already associated", async () => {
    const c = f.client(f.users.admin);
    const fw = await networkOf(account);
    const err = await failure(c.servers.launchServer(launch({ accountId: bare, firewallIds: [fw.firewall] })));
    expect(err).toMatchObject({ codeName: "FAILED_PRECONDITION", errorInfo: { reason: "CAPABILITY_MISSING", metadata: { capability: "firewalls" } } });
    const first = await c.servers.launchServer(launch({ addressId: fw.address }));
    expect((await finished(first.job!.id)).state).toBe("SUCCEEDED");
    const taken = await failure(c.servers.launchServer(launch({ addressId: fw.address })));
    expect(taken).toMatchObject({ codeName: "FAILED_PRECONDITION", errorInfo: { reason: "ADDRESS_NOT_ALLOCATED" } });
  });
});

describe("SetServerFirewalls", () => {
  it("puts a running server in exactly the firewalls named, done when the cloud shows it; readers and strangers cannot", async () => {
    const c = f.client(f.users.operator);
    const a = await networkOf(account);
    const b = await networkOf(account);
    const { job, server } = await c.servers.launchServer(launch({ firewallIds: [a.firewall] }));
    expect((await finished(job!.id)).state).toBe("SUCCEEDED");
    const set = await c.servers.setServerFirewalls({ id: server!.id, firewallIds: [b.firewall, a.firewall], idempotencyKey: "set-fw-1" });
    expect(set.job!.kind).toBe("server.set_firewalls");
    expect((await finished(set.job!.id)).state).toBe("SUCCEEDED");
    const providerIds = await Promise.all([a.firewall, b.firewall].map(async (id) => (await c.firewalls.getFirewall({ id })).firewall!.info!.providerId));
    expect((await c.servers.getServer({ id: server!.id })).server!.details.firewalls).toBe([...providerIds].sort().join(","));
    const events = (await c.servers.listServerEvents({ id: server!.id, pageSize: 100, pageToken: "" })).events.filter((e) => e.jobId === set.job!.id);
    expect(events.map((e) => e.type)).toEqual(["FIREWALLS_REQUESTED", "DETAILS_CHANGED"]);
    expect((await c.servers.setServerFirewalls({ id: server!.id, firewallIds: [a.firewall], idempotencyKey: "set-fw-1" })).job!.id).toBe(set.job!.id);

    expect((await failure(c.servers.setServerFirewalls({ id: server!.id, firewallIds: [], idempotencyKey: "" }))).fieldViolations.map((v) => v.field)).toEqual(["firewall_ids"]);
    expect((await failure(f.client(f.users.reader).servers.setServerFirewalls({ id: server!.id, firewallIds: [a.firewall], idempotencyKey: "" }))).codeName).toBe("PERMISSION_DENIED");
    const theirs = await networkOf(other);
    expect((await failure(c.servers.setServerFirewalls({ id: server!.id, firewallIds: [theirs.firewall], idempotencyKey: "" }))).codeName).toBe("NOT_FOUND");
    expect((await failure(f.client(f.users.scoped).servers.setServerFirewalls({ id: server!.id, firewallIds: [theirs.firewall], idempotencyKey: "" }))).codeName).toBe("NOT_FOUND");
  });
});

describe("SetServerTags", () => {
  it("sets and removes a server's tags on its cloud, done when the cloud shows them; readers cannot; reserved keys are refused", async () => {
    const c = f.client(f.users.operator);
    const { job, server } = await c.servers.launchServer(launch({ tags: { app: "shop", old: "1" } }));
    expect((await finished(job!.id)).state).toBe("SUCCEEDED");
    const tag = await c.servers.setServerTags({ id: server!.id, set: { tier: "retagged" }, remove: ["old"], idempotencyKey: "" });
    expect(tag.job!.kind).toBe("server.tag");
    expect((await finished(tag.job!.id)).state).toBe("SUCCEEDED");
    expect((await c.servers.getServer({ id: server!.id })).server!.tags).toEqual({ app: "shop", tier: "retagged" });
    const events = (await c.servers.listServerEvents({ id: server!.id, pageSize: 100, pageToken: "" })).events.filter((e) => e.jobId === tag.job!.id);
    expect(events.map((e) => e.type)).toEqual(["TAGS_REQUESTED", "TAGS_CHANGED"]);
    expect((await c.servers.listServers({ accountId: account, tags: { tier: "retagged" }, pageSize: 10 })).servers.map((s) => s.id)).toEqual([server!.id]);
    expect((await failure(c.servers.setServerTags({ id: server!.id, set: { "aws:x": "1" }, remove: ["dispatcher:client-token"], idempotencyKey: "" }))).fieldViolations.map((v) => v.field)).toEqual(['set["aws:x"]', "remove"]);
    expect((await failure(f.client(f.users.reader).servers.setServerTags({ id: server!.id, set: { x: "y" }, remove: [], idempotencyKey: "" }))).codeName).toBe("PERMISSION_DENIED");
    expect((await failure(f.client(f.users.scoped).servers.setServerTags({ id: server!.id, set: { x: "y" }, remove: [], idempotencyKey: "" }))).codeName).toBe("NOT_FOUND");
  });
});

describe("SetKeyPairTags", () => {
  it("sets and removes a key pair's tags, done when the cloud shows them, and lists by tag", async () => {
    const c = f.client(f.users.operator);
    const { key } = await networkOf(account);
    const tag = await c.keyPairs.setKeyPairTags({ id: key, change: { set: { owner: "ops" }, remove: [] }, idempotencyKey: "" });
    expect((await finished(tag.job!.id)).state).toBe("SUCCEEDED");
    expect((await c.keyPairs.getKeyPair({ id: key })).keyPair!.info!.tags).toEqual({ owner: "ops" });
    expect((await c.keyPairs.listKeyPairs({ accountId: account, tags: { owner: "ops" }, pageSize: 10, pageToken: "", regionId: "", includeDeleted: false })).keyPairs.map((k) => k.info!.id)).toEqual([key]);
    expect((await failure(f.client(f.users.reader).keyPairs.setKeyPairTags({ id: key, change: { set: { x: "y" }, remove: [] }, idempotencyKey: "" }))).codeName).toBe("PERMISSION_DENIED");
  });
});
