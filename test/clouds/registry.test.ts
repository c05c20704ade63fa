// The driver registry's wrapping: every call, resource services' included, is a CLIENT span named after the driver,
// service and method, carrying ids only (never a request's content); a non-DriverError becomes INTERNAL; a service a
// driver lacks is an UNSUPPORTED error naming it.
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { DriverError, type CloudDriver, type DriverCallOptions, type DriverTarget } from "../../src/clouds/driver.js";
import { createDriverRegistry } from "../../src/clouds/registry.js";
import { SERVICE_CAPABILITY, serviceOf, tagViolations, type FirewallService, type KeyPairService } from "../../src/clouds/resources.js";
import { SpanKind } from "../../src/telemetry/spans.js";
import { startInMemoryTracing } from "../telemetry/in-memory.js";

const tracing = startInMemoryTracing();
afterAll(() => tracing.stop());
beforeEach(() => tracing.reset());

const PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm7yB0sWQ1bQXSQ0o1c2VjcmV0LWNvbW1lbnQtbmV2ZXI= someone@laptop";
const target: DriverTarget = { cloud: { id: "c-1", driver: "mock", endpoint: "" }, account: { id: "a-1", providerAccountId: null }, credentials: { key: "k3y-s3cret" } };
const call: DriverCallOptions = { signal: new AbortController().signal, deadline: new Date(Date.now() + 10_000) };
const unsupported = async (): Promise<never> => {
  throw new DriverError("UNSUPPORTED", "no");
};

const firewalls = {
  support: { directions: ["INGRESS"], protocols: ["TCP"], firewallPeers: false, ipv6: false },
  get: async () => null,
  list: async () => [],
  delete: async () => {
    throw new TypeError("boom");
  },
  create: unsupported,
  authorize: async () => undefined,
  revoke: unsupported,
  setServerFirewalls: unsupported,
} satisfies FirewallService;
const keyPairs = {
  get: async () => null,
  list: async () => [],
  delete: unsupported,
  importKey: async (_t, req) => ({ providerId: "kp-1", regionId: req.regionId, name: req.name, state: "AVAILABLE", tags: {}, createdAt: null, clientToken: req.clientToken, details: {}, fingerprint: "SHA256:x", keyType: "ed25519" }),
  create: unsupported,
} satisfies KeyPairService;

const mock: CloudDriver = {
  name: "mock",
  testContext: async () => ({ providerAccountId: "p" }),
  listRegions: async () => [],
  probeCapabilities: async () => ["firewalls"],
  listProducts: async () => [],
  listImages: async () => [],
  launch: unsupported,
  start: unsupported,
  stop: unsupported,
  reboot: unsupported,
  terminate: unsupported,
  getServer: async () => null,
  listServers: async () => [],
  services: { firewalls, keyPairs },
};

describe("driver registry", () => {
  const driver = createDriverRegistry([mock]).get("mock");

  it("traces resource service calls with ids only", async () => {
    await serviceOf(driver, "firewalls").authorize(target, { regionId: "r1", providerId: "fw-9" }, { direction: "INGRESS", protocol: "TCP", ports: { from: 22, to: 22 }, peer: { cidr: "198.51.100.0/24" } }, call);
    await serviceOf(driver, "keyPairs").importKey(target, { regionId: "r1", name: "laptop", clientToken: "tok", tags: { team: "blue" }, publicKey: PUBLIC_KEY }, call);
    const [fw, kp] = tracing.spans();
    expect(fw?.name).toBe("driver.mock.firewalls.authorize");
    expect(fw?.kind).toBe(SpanKind.CLIENT);
    expect(fw?.attributes).toEqual({ "cloud.driver": "mock", "cloud.id": "c-1", "cloud.account.id": "a-1", "cloud.region": "r1", "cloud.resource.provider_id": "fw-9", "cloud.resource.type": "firewall" });
    expect(kp?.name).toBe("driver.mock.keyPairs.importKey");
    expect(kp?.attributes).toEqual({ "cloud.driver": "mock", "cloud.id": "c-1", "cloud.account.id": "a-1", "cloud.region": "r1" });
    const everything = JSON.stringify(tracing.spans().map((s) => ({ a: s.attributes, e: s.events, st: s.status })));
    for (const secret of ["k3y-s3cret", "AAAAC3NzaC1lZDI1", "198.51.100.0", "blue"]) expect(everything).not.toContain(secret);
  });

  it("keeps a service's plain values and classifies what a service throws", async () => {
    expect(serviceOf(driver, "firewalls").support.protocols).toEqual(["TCP"]);
    const err = await serviceOf(driver, "firewalls").delete(target, { regionId: "r1", providerId: "fw-9" }, call).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "DriverError", code: "INTERNAL", retryable: true });
    expect(tracing.spans().at(-1)?.name).toBe("driver.mock.firewalls.delete");
  });

  it("a service the driver does not offer is UNSUPPORTED, naming it", () => {
    expect(() => serviceOf(driver, "addresses")).toThrow(/the mock cloud driver has no addresses service/);
    expect(() => serviceOf(driver, "blobStore")).toThrowError(DriverError);
    expect(SERVICE_CAPABILITY).toMatchObject({ firewalls: "firewalls", addresses: "static_addresses", keyPairs: "key_pairs", volumes: "block_storage", blobStore: "object_storage" });
  });

  it("tags: EC2's limits, the provider's and the dispatcher's prefixes reserved", () => {
    expect(tagViolations({ team: "blue", "cost centre": "" })).toEqual([]);
    expect(tagViolations({ "aws:cloudformation": "x", "dispatcher:client-token": "y", "": "z", k: "v".repeat(257) }).map((v) => v.key)).toEqual(["aws:cloudformation", "dispatcher:client-token", "", "k"]);
    expect(tagViolations({ "dispatcher:client-token": "y" }, { allowReserved: true })).toEqual([]);
    expect(tagViolations(Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, "v"])))[0]).toEqual({ key: "", description: "at most 50 tags" });
  });
});
