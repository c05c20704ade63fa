// Property: random and hostile values in every request field of every method of FirewallService, AddressService and
// KeyPairService (huge strings, unicode, control characters, out-of-range ports and enum values, hostile tag maps and
// rules, forged page tokens) never make the server answer INTERNAL or UNKNOWN, nor log an error. Known ids are mixed
// in, so some requests get past validation into the services and the database.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DispatcherClients } from "../../src/client/index.js";
import { generateKeyPair } from "../../src/clouds/ssh-keys.js";
import { AddressServiceService, FirewallServiceService, KeyPairServiceService } from "../../src/gen/proto/dispatcher/v1/network.js";
import { expectAnswersSpread, fuzzServices, hostileInts, hostileStrings, hostileTagChange, hostileTags } from "../support/fuzz.js";
import { seedAccount, seedBudgetCode, startServersFixture, type ServersFixture } from "../servers/support.js";
import { withFakeResources } from "./fake-services.js";

let f: ServersFixture;
let c: DispatcherClients;
let known: Record<string, string[]>;

beforeAll(async () => {
  f = await startServersFixture("net_fuzz", { run: false, prepare: (cloud) => void withFakeResources(cloud) });
  const accountId = await seedAccount(f, { defaultBudgetCode: "FUZZ-N", regions: [{ id: "r1", dataCenters: ["r1-a"], capabilities: ["compute", "firewalls", "static_addresses", "key_pairs"] }] });
  await seedBudgetCode(f, "FUZZ-N", { hard: 10n ** 12n }, [f.users.operator]);
  c = f.client(f.users.operator);
  const fw = await c.firewalls.createFirewall({ accountId, regionId: "r1", name: "fuzz", description: "", tags: {}, idempotencyKey: "" });
  const ad = await c.addresses.allocateAddress({ accountId, regionId: "r1", name: "fuzz", budgetCode: "", tags: {}, idempotencyKey: "" });
  known = { accountId: [accountId], regionId: ["r1", "r2"], id: [fw.firewall!.info!.id, ad.address!.info!.id], budgetCode: ["FUZZ-N", ""], publicKey: [generateKeyPair("ed25519", "fuzz").publicKey] };
}, 60_000);
afterAll(async () => {
  await f?.close();
});

const hostile = hostileStrings(["eyJpZCI6LTF9", "10.0.0.0/8", "::/0", "0.0.0.0/0", "300.1.1.1/8"]);
const hostileInt = hostileInts([0, 1, 2, 3, 4, 5, 22, 65535, 65536, -1]);
const tags = hostileTags(hostile);
const rule = fc.option(
  fc.record({
    direction: hostileInt,
    protocol: hostileInt,
    fromPort: hostileInt,
    toPort: hostileInt,
    peer: fc.option(fc.oneof(fc.record({ $case: fc.constant("cidr" as const), value: hostile }), fc.record({ $case: fc.constant("firewallId" as const), value: fc.oneof(hostile, fc.constantFrom(...["01HZZZZZZZZZZZZZZZZZZZZZZZ"])) })), { nil: undefined }),
    description: hostile,
  }),
  { nil: undefined },
);

describe("network requests full of hostile values", () => {
  it("never answer INTERNAL or UNKNOWN, whatever the field values", async () => {
    const { methods, codes } = await fuzzServices(
      [
        [FirewallServiceService, c.firewalls],
        [AddressServiceService, c.addresses],
        [KeyPairServiceService, c.keyPairs],
      ],
      { string: hostile, int: hostileInt, known, fields: { rule, tags, change: hostileTagChange(hostile) } },
    );
    expect(methods).toBe(23);
    expect(f.server.logLines.filter((l) => l.level === "error" || l.level === "fatal")).toEqual([]);
    expectAnswersSpread(codes);
  }, 180_000);
});
