// Property: random and hostile values in every request field of every IAM method (huge strings, unicode, control
// characters, negative and out-of-range numbers, unknown enum values, forged page tokens and etags, absurd dates)
// and malformed bearer tokens never make the server answer INTERNAL or UNKNOWN.
import { status, type MethodDefinition } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DispatcherError } from "../../src/client/index.js";
import { startIamFixture, type IamFixture } from "./support.js";

let f: IamFixture;

beforeAll(async () => {
  f = await startIamFixture("iam_fuzz");
});
afterAll(() => f?.close());

/** Hostile strings, plus values valid enough to get past validation into the services and the database. */
const hostileString = (known: string[]): fc.Arbitrary<string> => fc.oneof(
  fc.constantFrom(...known),
  fc.emailAddress(),
  fc.string({ maxLength: 300, unit: "binary" }),
  fc.string({ maxLength: 40, unit: "grapheme" }),
  fc.constantFrom("", " ", "admin", "reader", "name", "roles", "status", '"v1"', '"v0"', "01HZZZZZZZZZZZZZZZZZZZZZZZ", "a@b", "\u0000", "🙂@🙂", "x".repeat(100_000), "eyJjIjp7ImEiOjF9LCJxIjoiIn0", "e30", "bnVsbA"),
  fc.string({ minLength: 255, maxLength: 2000, unit: "grapheme-ascii" }),
  fc.stringMatching(/^[a-z][a-z0-9 _.-]{0,20}$/),
);
const hostileInt = fc.oneof(fc.integer({ min: -2147483648, max: 2147483647 }), fc.constantFrom(0, 1, 2, 3, -1, 1000, 1001, 2147483647, -2147483648));
const hostileDate = fc.date({ min: new Date(-8_000_000_000_000_000), max: new Date(8_000_000_000_000_000), noInvalidDate: true });

/** An arbitrary request shaped like `template` (a generated message's defaults): every field hostile. */
function requestArbitrary(template: Record<string, unknown>, known: string[]): fc.Arbitrary<Record<string, unknown>> {
  const str = hostileString(known);
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, value] of Object.entries(template)) {
    if (typeof value === "string") fields[key] = str;
    else if (typeof value === "number") fields[key] = hostileInt;
    else if (Array.isArray(value)) fields[key] = fc.array(str, { maxLength: 20 });
    else if (/time$/i.test(key)) fields[key] = fc.option(hostileDate, { nil: undefined });
    else if (key === "updateMask") fields[key] = fc.option(fc.array(str, { maxLength: 20 }), { nil: undefined });
    else throw new Error(`no arbitrary for field ${key}`);
  }
  return fc.record(fields);
}

type AnyClient = Record<string, (request: unknown) => Promise<unknown>>;

/**
 * Ids and etags of some groups and keys that exist, so hostile requests also reach real rows. The keys are the
 * operator's, never the caller's own: a lucky RevokeApiKey would otherwise turn every later call UNAUTHENTICATED once
 * the authenticator's cache let go of the key.
 */
async function knownIds(clients: Record<string, AnyClient>): Promise<string[]> {
  const groups = (await (clients.groups?.listGroups as (r: unknown) => Promise<{ groups: Array<{ id: string; etag: string }> }>)({ pageSize: 5 })).groups;
  const keys = (await (clients.apiKeys?.listApiKeys as (r: unknown) => Promise<{ apiKeys: Array<{ id: string }> }>)({ userId: f.users.operator.id, pageSize: 5 })).apiKeys;
  return [...groups.flatMap((g) => [g.id, g.etag]), ...keys.map((k) => k.id), '"v1"', '"v2"'];
}

describe("IAM requests full of hostile values", () => {
  it("never answer INTERNAL or UNKNOWN, whatever the field values", async () => {
    const clients = f.client(f.users.admin.secret) as unknown as Record<string, AnyClient>;
    const byService: Record<string, string> = { UserService: "users", GroupService: "groups", RoleService: "roles", ApiKeyService: "apiKeys", AuditService: "audit" };
    let calls = 0;
    const codes = new Map<number, number>();
    for (const service of f.services) {
      for (const [key, method] of Object.entries(service.definition) as Array<[string, MethodDefinition<unknown, unknown>]>) {
        const name = method.path.split("/")[1]?.replace("dispatcher.v1.", "") ?? "";
        const client = clients[byService[name] ?? ""];
        if (!client) continue;
        const template = method.requestDeserialize(Buffer.alloc(0)) as Record<string, unknown>;
        // Not the admin making the calls: a lucky DeleteUser would disable it and turn the rest into UNAUTHENTICATED.
        const known = [f.users.operator.id, f.users.reader.id, ...(await knownIds(clients))];
        await fc.assert(
          fc.asyncProperty(requestArbitrary(template, known), async (request) => {
            calls++;
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
    expect(calls).toBeGreaterThanOrEqual(19 * 40);
    expect(f.server.logLines.filter((l) => l.level === "error" || l.level === "fatal")).toEqual([]);
    // The values reach past validation, too: some calls succeed, some find nothing, some are refused as invalid.
    expect(codes.get(status.OK)).toBeGreaterThan(20);
    expect(codes.get(status.INVALID_ARGUMENT)).toBeGreaterThan(20);
    expect(codes.get(status.NOT_FOUND)).toBeGreaterThan(0);
  }, 240_000);

  it("malformed bearer tokens are UNAUTHENTICATED, never INTERNAL", async () => {
    const token = fc.oneof(fc.string({ minLength: 1, maxLength: 200, unit: "grapheme-ascii" }), fc.string({ minLength: 43, maxLength: 43, unit: "grapheme-ascii" }).map((s) => `dsp_${s}`));
    await fc.assert(
      fc.asyncProperty(token, async (t) => {
        const clean = t.replace(/[^\x21-\x7e]/g, "x");
        const outcome = await f.client(clean).roles.listRoles({}).catch((e: unknown) => e);
        expect(outcome).toMatchObject({ code: status.UNAUTHENTICATED });
      }),
      { numRuns: 100 },
    );
  });
});
