// Provisioning access control and robustness over a real server with the DB-backed authenticator: every provisioning
// method refuses callers without valid credentials, each built-in role is allowed exactly what the permission table
// says, reads are NO_SIDE_EFFECTS, and hostile values in every request field never make the server answer INTERNAL.
import { status, type Client, type MethodDefinition } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatcherError } from "../../src/client/index.js";
import { idempotentMethods, loadDescriptorSet } from "../../src/client/service-config.js";
import { isAllowed, METHOD_PERMISSIONS, roleGrants } from "../../src/iam/permissions.js";
import { insecureClient, rawCall } from "../rpc/fixtures.js";
import { BUILT_IN, startProvisioningFixture, type ProvisioningFixture } from "./support.js";

let f: ProvisioningFixture;
let raw: Client;

beforeAll(async () => {
  f = await startProvisioningFixture("prov_access");
  raw = insecureClient(f.server.address);
});
afterAll(async () => {
  raw?.close();
  await f?.close();
});

const methods = (): Array<MethodDefinition<unknown, unknown>> => f.services.flatMap((s) => Object.values(s.definition) as Array<MethodDefinition<unknown, unknown>>);

describe("provisioning access control", () => {
  it("serves CloudService, BudgetCodeService and AccountService, every method in the permission table", () => {
    const paths = methods().map((m) => m.path);
    expect(paths.filter((p) => p.startsWith("/dispatcher.v1.CloudService/"))).toHaveLength(5);
    expect(paths.filter((p) => p.startsWith("/dispatcher.v1.BudgetCodeService/"))).toHaveLength(7);
    expect(paths.filter((p) => p.startsWith("/dispatcher.v1.AccountService/"))).toHaveLength(6);
    expect(paths.filter((p) => !Object.hasOwn(METHOD_PERMISSIONS, p))).toEqual([]);
  });

  it("answers UNAUTHENTICATED on every method without credentials or with a bad key", async () => {
    for (const token of [undefined, "garbage", `dsp_${"A".repeat(43)}`, f.users.admin.secret.slice(0, -1)]) {
      for (const m of methods()) expect((await rawCall(raw, m.path, m.responseStream, token))?.code, `${m.path} with ${token ?? "no token"}`).toBe(status.UNAUTHENTICATED);
    }
  });

  it("allows each built-in role exactly what the table grants: reads to all, clouds, grants and accounts to admins, budget codes to finance", async () => {
    for (const role of BUILT_IN) {
      for (const m of methods()) {
        const permission = METHOD_PERMISSIONS[m.path] as string;
        const err = await rawCall(raw, m.path, m.responseStream, f.users[role].secret);
        if (isAllowed({ id: "x", kind: "user", roles: [role], displayName: "x" }, permission)) expect([status.PERMISSION_DENIED, status.UNAUTHENTICATED], `${role} ${m.path}`).not.toContain(err?.code);
        else expect(err?.code, `${role} ${m.path}`).toBe(status.PERMISSION_DENIED);
      }
    }
    for (const m of methods()) {
      const verb = m.path.slice(m.path.lastIndexOf("/") + 1);
      const grants = Object.fromEntries(BUILT_IN.map((r) => [r, roleGrants(r, METHOD_PERMISSIONS[m.path] as string)]));
      if (/^(Get|List)/.test(verb)) expect(grants, m.path).toEqual({ admin: true, operator: true, finance: true, reader: true });
      else if (m.path.includes("CloudService") || /^(Grant|Revoke)/.test(verb) || verb === "CreateAccount") expect(grants, m.path).toEqual({ admin: true, operator: false, finance: false, reader: false });
      else if (m.path.includes("BudgetCodeService")) expect(grants, m.path).toEqual({ admin: true, operator: false, finance: true, reader: false });
      else expect(grants, m.path).toEqual({ admin: true, operator: true, finance: false, reader: false });
    }
  });

  it("marks reads NO_SIDE_EFFECTS (retried) and never a Create or Delete", () => {
    const retried = new Set(idempotentMethods(loadDescriptorSet()).map((m) => `/${m.service}/${m.method}`));
    for (const m of methods()) {
      const verb = m.path.slice(m.path.lastIndexOf("/") + 1);
      if (/^(Get|List|Grant|Revoke)/.test(verb)) expect(retried.has(m.path), m.path).toBe(true);
      if (/^(Create|Delete|Update)/.test(verb)) expect(retried.has(m.path), m.path).toBe(false);
    }
  });
});

const hostileString = (known: string[]): fc.Arbitrary<string> =>
  fc.oneof(
    fc.constantFrom(...known),
    fc.string({ maxLength: 300, unit: "binary" }),
    fc.string({ maxLength: 40, unit: "grapheme" }),
    fc.constantFrom("", " ", "\u0000", '"v1"', '"v0"', "x".repeat(100_000), "https://169.254.169.254", "https://api.cloud.test", "http://api.cloud.test", "https://[fe80::1]", "aws", "local", "e30"),
    fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$/),
  );
const hostileInt = fc.oneof(fc.integer({ min: -2147483648, max: 2147483647 }), fc.constantFrom(0, 1, 2, 3, -1, 1001));
const hostileCents = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.constantFrom(0n, 1n, 100n, 10n ** 15n, 10n ** 15n + 1n)).map(String);

function requestArbitrary(template: Record<string, unknown>, known: string[]): fc.Arbitrary<Record<string, unknown>> {
  const str = hostileString(known);
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, value] of Object.entries(template)) {
    if (/Cents$/.test(key)) fields[key] = hostileCents;
    else if (typeof value === "string") fields[key] = str;
    else if (typeof value === "number") fields[key] = hostileInt;
    else if (key === "regions") fields[key] = fc.array(fc.record({ id: str, name: str, dataCenters: fc.array(str, { maxLength: 5 }) }), { maxLength: 5 });
    else if (key === "credentials") fields[key] = fc.option(fc.record({ type: str, fields: fc.dictionary(str, str, { maxKeys: 5 }) }), { nil: undefined });
    else if (key === "updateMask") fields[key] = fc.option(fc.array(fc.oneof(str, fc.constantFrom("name", "endpoint", "regions", "state", "hard_quota_cents", "soft_quota_cents", "finance_code")), { maxLength: 6 }), { nil: undefined });
    else throw new Error(`no arbitrary for field ${key}`);
  }
  return fc.record(fields);
}

type AnyClient = Record<string, (request: unknown) => Promise<unknown>>;

describe("provisioning requests full of hostile values", () => {
  it("never answer INTERNAL or UNKNOWN", async () => {
    const clients = f.client(f.users.admin.secret) as unknown as Record<string, AnyClient>;
    const admin = f.client(f.users.admin.secret);
    const { cloud } = await admin.clouds.createCloud({ name: "fuzz cloud", driver: "aws", endpoint: "https://api.cloud.test" });
    await admin.budgetCodes.createBudgetCode({ code: "FUZZ-1", name: "fuzz", hardQuotaCents: "1000" });
    // An account with a region, a subscription and an event, so the account RPCs' hostile requests also reach rows.
    const { account } = await admin.accounts.createAccount({ name: "fuzz account", cloudId: cloud?.id, credentials: { type: "k", fields: { key: "x" } } });
    const accountId = account?.id ?? "";
    await f.dbs.provisioning.accountRegion.create({ data: { accountId, regionId: "fuzz-r1", name: "Fuzz 1", dataCenters: [], position: 0 } });
    await f.dbs.provisioning.subscription.create({ data: { accountId, regionId: "fuzz-r1", capability: "compute" } });
    await f.dbs.provisioning.accountEvent.create({ data: { accountId, type: "SUBSCRIBED", regionId: "fuzz-r1", message: "compute subscribed in fuzz-r1" } });
    const known = [cloud?.id ?? "", cloud?.etag ?? "", "FUZZ-1", f.users.reader.id, accountId, "fuzz-r1"];
    const byService: Record<string, string> = { CloudService: "clouds", BudgetCodeService: "budgetCodes", AccountService: "accounts" };
    const codes = new Map<number, number>();
    for (const service of f.services) {
      for (const [key, method] of Object.entries(service.definition) as Array<[string, MethodDefinition<unknown, unknown>]>) {
        const client = clients[byService[method.path.split("/")[1]?.replace("dispatcher.v1.", "") ?? ""] ?? ""];
        if (!client) throw new Error(`no client for ${method.path}`);
        const template = method.requestDeserialize(Buffer.alloc(0)) as Record<string, unknown>;
        await fc.assert(
          fc.asyncProperty(requestArbitrary(template, known), async (request) => {
            const outcome = await (client[key] as (r: unknown) => Promise<unknown>)(request).catch((e: unknown) => e);
            const code = outcome instanceof DispatcherError ? outcome.code : outcome instanceof Error ? -1 : status.OK;
            codes.set(code, (codes.get(code) ?? 0) + 1);
            if (outcome instanceof DispatcherError) expect([status.INTERNAL, status.UNKNOWN], `${method.path}: ${outcome.message}`).not.toContain(outcome.code);
            else expect(outcome).not.toBeInstanceOf(Error);
          }),
          { numRuns: 40 },
        );
      }
    }
    expect(f.server.logLines.filter((l) => l.level === "error" || l.level === "fatal")).toEqual([]);
    // The values are random, so how many get past validation varies (4–30 seen); some must, or the fuzz proves little.
    expect(codes.get(status.OK)).toBeGreaterThan(0);
    expect(codes.get(status.INVALID_ARGUMENT)).toBeGreaterThan(20);
  }, 240_000);
});
