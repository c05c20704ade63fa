// Property: random and hostile values in every request field of every method of FirewallService, AddressService and
// KeyPairService (huge strings, unicode, control characters, out-of-range ports and enum values, hostile tag maps and
// rules, forged page tokens) never make the server answer INTERNAL or UNKNOWN, nor log an error. Known ids are mixed
// in, so some requests get past validation into the services and the database.
import { status, type MethodDefinition } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatcherError, type DispatcherClients } from "../../src/client/index.js";
import { generateKeyPair } from "../../src/clouds/ssh-keys.js";
import { AddressServiceService, FirewallServiceService, KeyPairServiceService } from "../../src/gen/proto/dispatcher/v1/network.js";
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

const hostile: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 300, unit: "binary" }),
  fc.string({ maxLength: 40, unit: "grapheme" }),
  fc.constantFrom("", " ", "\u0000", "%", "'; DROP TABLE resources; --", "x".repeat(100_000), "01HZZZZZZZZZZZZZZZZZZZZZZZ", "e30", "eyJpZCI6LTF9", "10.0.0.0/8", "::/0", "0.0.0.0/0", "300.1.1.1/8", "aws:x", "dispatcher:client-token"),
  fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$/),
);
const hostileInt = fc.oneof(fc.integer({ min: -2147483648, max: 2147483647 }), fc.constantFrom(0, 1, 2, 3, 4, 5, 22, 65535, 65536, -1));
const tags = fc.dictionary(hostile, hostile, { maxKeys: 60 });
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

/** A request shaped like `template`: each field hostile, or (mostly) one of the known values of its name. */
function requestArbitrary(template: Record<string, unknown>): fc.Arbitrary<Record<string, unknown>> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, value] of Object.entries(template)) {
    let wild: fc.Arbitrary<unknown>;
    if (key === "rule") wild = rule;
    else if (key === "change") wild = fc.option(fc.record({ set: tags, remove: fc.array(hostile, { maxLength: 60 }) }), { nil: undefined });
    else if (key === "tags") wild = tags;
    else if (typeof value === "string") wild = hostile;
    else if (typeof value === "number") wild = hostileInt;
    else if (typeof value === "boolean") wild = fc.boolean();
    else throw new Error(`no arbitrary for field ${key}`);
    const tame = known[key];
    fields[key] = tame ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...tame) }, { weight: 1, arbitrary: wild }) : wild;
  }
  return fc.record(fields);
}

type AnyClient = Record<string, (request: unknown) => Promise<unknown>>;

describe("network requests full of hostile values", () => {
  it("never answer INTERNAL or UNKNOWN, whatever the field values", async () => {
    const clients: Array<[object, AnyClient]> = [
      [FirewallServiceService, c.firewalls as unknown as AnyClient],
      [AddressServiceService, c.addresses as unknown as AnyClient],
      [KeyPairServiceService, c.keyPairs as unknown as AnyClient],
    ];
    const codes = new Map<number, number>();
    let methods = 0;
    for (const [definition, client] of clients) {
      for (const [key, method] of Object.entries(definition) as Array<[string, MethodDefinition<unknown, unknown>]>) {
        methods++;
        const template = method.requestDeserialize(Buffer.alloc(0)) as Record<string, unknown>;
        await fc.assert(
          fc.asyncProperty(requestArbitrary(template), async (request) => {
            const outcome = await (client[key] as (r: unknown) => Promise<unknown>)(request).catch((e: unknown) => e);
            const code = outcome instanceof DispatcherError ? outcome.code : outcome instanceof Error ? -1 : status.OK;
            codes.set(code, (codes.get(code) ?? 0) + 1);
            expect([status.INTERNAL, status.UNKNOWN, -1], `${method.path}: ${(outcome as Error).message}`).not.toContain(code);
          }),
          { numRuns: 25 },
        );
      }
    }
    expect(methods).toBe(23);
    expect(f.server.logLines.filter((l) => l.level === "error" || l.level === "fatal")).toEqual([]);
    expect(codes.get(status.OK)).toBeGreaterThan(10);
    expect(codes.get(status.INVALID_ARGUMENT)).toBeGreaterThan(10);
    expect(codes.get(status.NOT_FOUND)).toBeGreaterThan(0);
  }, 180_000);
});
