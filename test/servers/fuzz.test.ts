// Property: random and hostile values in every request field of every method of ServerService, the agent services
// and AnalyticsService (huge strings, unicode, control characters, negative and out-of-range numbers, unknown enum
// values, forged page tokens, absurd dates and durations, hostile env maps) never make the server answer INTERNAL or
// UNKNOWN, nor log an error. Known ids are mixed in, so some launches succeed and values reach the database.
import { Metadata, status, type Client, type MethodDefinition, type ServiceError } from "@grpc/grpc-js";
import { Writable } from "node:stream";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueJoinToken, withJoinTokens } from "../../src/agent/join-tokens.js";
import { agentRpcServices } from "../../src/agent/rpc-services.js";
import { createAnalyticsSql } from "../../src/analytics/db.js";
import { analyticsRpcServices } from "../../src/analytics/rpc-services.js";
import { createDispatcherClients, DispatcherError, type DispatcherClients } from "../../src/client/index.js";
import type { SqlPool } from "../../src/db/sql.js";
import { createApiKeyAuthenticator } from "../../src/iam/api-keys/authenticator.js";
import { createLogger } from "../../src/log.js";
import type { RpcService } from "../../src/rpc/adapter.js";
import { serverRpcServices } from "../../src/servers/rpc-services.js";
import { credentialKeyOf } from "../../src/agent/secrets.js";
import { insecureClient, startTestServer, type TestServer } from "../rpc/fixtures.js";
import { seedAccount, seedBudgetCode, startServersFixture, type ServersFixture } from "./support.js";
import { insertServer } from "../support/rows.js";

let f: ServersFixture;
let analyticsSql: SqlPool;
let server: TestServer;
let services: RpcService[];
let clients: DispatcherClients;
let raw: Client;
let known: string[];
let joinTokens: string[];
let ids: { accountId: string; serverId: string };
/** What the agent services log (the RPC server's own log is server.logLines). */
const agentLogLines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  f = await startServersFixture("servers_fuzz", { run: false });
  f.h.config.agent.credentialKey = Buffer.alloc(32, 7).toString("base64");
  analyticsSql = createAnalyticsSql(f.h.dbs.urls.analytics, 2);
  // The dispatcher role's wiring of these services, behind the same authenticator (join tokens, then API keys).
  services = [
    ...serverRpcServices({ sql: f.h.sql, db: f.h.db, jobs: f.jobs, credentialKey: () => credentialKeyOf(f.h.config) }),
    ...agentRpcServices({ config: f.h.config, sql: f.h.sql, jobs: f.jobs, log: createLogger({ level: "info", destination: lineCollector(agentLogLines) }) }),
    ...analyticsRpcServices({ provisioning: f.h.sql, analytics: analyticsSql }).services,
  ];
  server = await startTestServer({ services, authenticate: withJoinTokens(f.h.sql, createApiKeyAuthenticator(f.h.db)) });
  clients = createDispatcherClients({ address: server.address, token: f.users.operator.secret, retry: false });
  raw = insecureClient(server.address);
  // An ACTIVE account with regions, subscriptions and catalog, a budget code the caller holds, and a server on it.
  const accountId = await seedAccount(f);
  await seedBudgetCode(f, "FUZZ-1", { hard: 10n ** 12n }, [f.users.operator]);
  const serverId = await insertServer(f.h.sql, { accountId, dataCenter: "r1-a", name: "fuzz", imageId: "img-1", budgetCode: "FUZZ-1", privateAddresses: ["127.0.0.1"], hourlyPriceMicros: 10_000n, agentState: "PENDING", createdBy: f.users.operator.id });
  joinTokens = [];
  for (let i = 0; i < 10; i++) joinTokens.push(await issueJoinToken(f.h.sql, serverId, 600_000));
  ids = { accountId, serverId };
  known = [accountId, serverId, "r1", "r2", "r1-a", "small", "big", "img-1", "FUZZ-1", "echo", "/bin/true", "127.0.0.1"];
}, 60_000);
afterAll(async () => {
  clients?.close();
  raw?.close();
  await server?.stop();
  await analyticsSql?.end();
  await f?.close();
});

function lineCollector(lines: Array<Record<string, unknown>>): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
}

/** Hostile strings, plus values valid enough to get past validation into the services and the database. */
const hostileString = (known: string[]): fc.Arbitrary<string> =>
  fc.oneof(
    fc.constantFrom(...known),
    fc.string({ maxLength: 300, unit: "binary" }),
    fc.string({ maxLength: 40, unit: "grapheme" }),
    fc.constantFrom("", " ", "\u0000", "%", "_", "'; DROP TABLE servers; --", "../../etc/passwd", "x".repeat(100_000), "01HZZZZZZZZZZZZZZZZZZZZZZZ", "e30", "bnVsbA", "eyJpZCI6LTF9", "djt_x", "PATH", "LD_PRELOAD"),
    fc.string({ minLength: 255, maxLength: 2000, unit: "grapheme-ascii" }),
    fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$/),
  );
const hostileInt = fc.oneof(fc.integer({ min: -2147483648, max: 2147483647 }), fc.constantFrom(0, 1, 2, 3, 4, 5, 7, 8, 99, -1, 1000, 1001, 65535, 65536, 2147483647, -2147483648));
const hostileDate = fc.date({ min: new Date(-8_000_000_000_000_000), max: new Date(8_000_000_000_000_000), noInvalidDate: true });
const hostileInt64 = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.constantFrom(0n, 1n, 60n, 600n, 601n, -1n, 315_576_000_000n)).map(String);
const hostileDuration = fc.record({ seconds: hostileInt64, nanos: hostileInt });

/** A value of the right shape for the field named `key`: the known rows, so a request of these reaches the services. */
function plausible(key: string, value: unknown, ids: { accountId: string; serverId: string }): fc.Arbitrary<unknown> {
  const tame = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
  const byKey: Record<string, fc.Arbitrary<unknown>> = {
    accountId: fc.constant(ids.accountId),
    regionId: fc.constantFrom("r1", "r1", "r2"),
    dataCenter: fc.constantFrom("", "r1-a", "r1-b"),
    productId: fc.constantFrom("small", "big"),
    imageId: fc.constant("img-1"),
    budgetCode: fc.constantFrom("FUZZ-1", ""),
    id: fc.constant(ids.serverId),
    serverId: fc.constant(ids.serverId),
    idempotencyKey: fc.oneof(fc.constant(""), fc.uuid()),
    pageToken: fc.constant(""),
    pageSize: fc.integer({ min: 0, max: 100 }),
    port: fc.integer({ min: 1, max: 65535 }),
    address: fc.constantFrom("127.0.0.1", "10.0.0.7"),
    command: fc.constantFrom("echo", "/bin/true", "uptime"),
    args: fc.array(tame, { maxLength: 3 }),
    env: fc.dictionary(fc.stringMatching(/^[A-Z][A-Z0-9_]{0,10}$/), tame, { maxKeys: 3 }),
    tags: fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9_-]{0,10}$/), tame, { maxKeys: 3 }),
    set: fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9_-]{0,10}$/), tame, { maxKeys: 3 }),
    remove: fc.array(fc.stringMatching(/^[a-z][a-z0-9_-]{0,10}$/), { maxLength: 2 }),
    firewallIds: fc.array(fc.constant(ids.serverId), { maxLength: 2 }),
    volumes: fc.array(fc.record({ device: fc.constantFrom("/dev/sdf", "/dev/sdg"), volumeId: fc.constant(""), sizeGib: fc.integer({ min: 1, max: 4 }), volumeType: fc.constant(""), snapshotId: fc.constant("") }), { maxLength: 2 }),
    userData: fc.oneof(fc.constant(""), fc.constant("#!/bin/sh\necho fuzz > marker\n")),
    metrics: fc.array(fc.integer({ min: 1, max: 7 }), { maxLength: 3 }),
    timeout: fc.option(fc.record({ seconds: fc.integer({ min: 1, max: 600 }).map(String), nanos: fc.constant(0) }), { nil: undefined }),
    startTime: fc.option(fc.date({ min: new Date(Date.now() - 30 * 86_400_000), max: new Date(Date.now() - 86_400_000), noInvalidDate: true }), { nil: undefined }),
    endTime: fc.option(fc.date({ min: new Date(Date.now() - 86_400_000), max: new Date(Date.now() + 86_400_000), noInvalidDate: true }), { nil: undefined }),
    serverIds: fc.array(fc.constant(ids.serverId), { maxLength: 1 }),
    selector: fc.option(fc.record({ accountId: fc.constant(ids.accountId), regionId: fc.constantFrom("", "r1"), namePrefix: fc.constantFrom("", "fu") }), { nil: undefined }),
  };
  if (value instanceof Uint8Array) return fc.uint8Array({ maxLength: 72 });
  if (key === "signedTimeMs") return fc.integer({ min: -600_000, max: 600_000 }).map((d) => String(Date.now() + d));
  return byKey[key] ?? (typeof value === "number" ? fc.integer({ min: 0, max: 3 }) : tame);
}

/** Request fields declared int64, which the generated code carries as strings. */
const INT64_STRING_FIELDS = new Set(["signedTimeMs"]);

/**
 * An arbitrary request shaped like `template` (a generated message's defaults): either every field hostile, or most
 * fields plausible and a few hostile, so that hostile values also meet requests that get past the first check.
 */
function requestArbitrary(template: Record<string, unknown>, known: string[], ids: { accountId: string; serverId: string }): fc.Arbitrary<Record<string, unknown>> {
  const str = hostileString(known);
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  const mostlyPlausible: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, value] of Object.entries(template)) {
    // An int64 travels as a decimal string: hostile values are any in its range (text would not even serialize).
    if (INT64_STRING_FIELDS.has(key)) fields[key] = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String);
    else if (typeof value === "string") fields[key] = str;
    else if (typeof value === "number") fields[key] = hostileInt;
    else if (key === "metrics") fields[key] = fc.array(hostileInt, { maxLength: 10 });
    else if (key === "volumes") fields[key] = fc.array(fc.record({ device: str, volumeId: str, sizeGib: hostileInt, volumeType: str, snapshotId: str }), { maxLength: 20 });
    else if (Array.isArray(value)) fields[key] = fc.array(str, { maxLength: 20 });
    else if (/time$/i.test(key)) fields[key] = fc.option(hostileDate, { nil: undefined });
    else if (key === "timeout") fields[key] = fc.option(hostileDuration, { nil: undefined });
    else if (key === "env" || key === "tags" || key === "set") fields[key] = fc.dictionary(str, str, { maxKeys: 10 });
    else if (key === "selector") fields[key] = fc.option(fc.record({ accountId: str, regionId: str, namePrefix: str }), { nil: undefined });
    else if (value instanceof Uint8Array) fields[key] = fc.uint8Array({ maxLength: 1024 });
    else throw new Error(`no arbitrary for field ${key}`);
    mostlyPlausible[key] = fc.oneof({ weight: 6, arbitrary: plausible(key, value, ids) }, { weight: 1, arbitrary: fields[key] });
  }
  return fc.oneof(fc.record(fields), fc.record(mostlyPlausible));
}

type AnyClient = Record<string, (request: unknown) => Promise<unknown>>;

/** Register as an agent does: a raw unary call with a join token (fresh, spent or forged) or an API key. */
function register(method: MethodDefinition<unknown, unknown>, request: unknown, token: string): Promise<unknown> {
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) => {
    raw.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, metadata, { deadline: Date.now() + 10_000 }, (err: ServiceError | null, response) => resolve(err ?? response));
  });
}

describe("server, agent and analytics requests full of hostile values", () => {
  it("never answer INTERNAL or UNKNOWN, whatever the field values", async () => {
    const byService: Record<string, string> = { ServerService: "servers", ServerAgentService: "agents", AnalyticsService: "analytics" };
    const byClient = clients as unknown as Record<string, AnyClient>;
    const token = fc.oneof(fc.constantFrom(...joinTokens), fc.constantFrom(f.users.operator.secret, `djt_${"A".repeat(43)}`, "djt_"), fc.stringMatching(/^djt_[A-Za-z0-9_-]{0,60}$/));
    let calls = 0;
    const codes = new Map<number, number>();
    const perMethod: Record<string, number> = {};
    for (const service of services) {
      for (const [key, method] of Object.entries(service.definition) as Array<[string, MethodDefinition<unknown, unknown>]>) {
        const name = method.path.split("/")[1]?.replace("dispatcher.v1.", "") ?? "";
        const client = byClient[byService[name] ?? ""];
        if (!client && name !== "AgentRegistrationService") throw new Error(`no client for ${method.path}`);
        const template = method.requestDeserialize(Buffer.alloc(0)) as Record<string, unknown>;
        await fc.assert(
          fc.asyncProperty(requestArbitrary(template, known, ids), token, async (request, t) => {
            calls++;
            perMethod[method.path] = (perMethod[method.path] ?? 0) + 1;
            const outcome = client ? await (client[key] as (r: unknown) => Promise<unknown>)(request).catch((e: unknown) => e) : await register(method, request, t.replace(/[^\x21-\x7e]/g, "x"));
            const code = outcome instanceof DispatcherError ? outcome.code : outcome instanceof Error ? ((outcome as Partial<ServiceError>).code ?? -1) : status.OK;
            codes.set(code, (codes.get(code) ?? 0) + 1);
            expect([status.INTERNAL, status.UNKNOWN, -1], `${method.path}: ${(outcome as Error).message}`).not.toContain(code);
            // Registration authenticates by join token: anything else is refused, never an internal failure.
            if (!client) expect([status.OK, status.UNAUTHENTICATED, status.INVALID_ARGUMENT, status.PERMISSION_DENIED, status.FAILED_PRECONDITION, status.RESOURCE_EXHAUSTED], `${method.path}: ${(outcome as Error).message}`).toContain(code);
          }),
          { numRuns: 30 },
        );
      }
    }
    expect(Object.keys(perMethod)).toHaveLength(20);
    expect(calls).toBe(20 * 30);
    expect([...server.logLines, ...agentLogLines].filter((l) => l.level === "error" || l.level === "fatal")).toEqual([]);
    // The values reach past validation, too: some calls succeed, some find nothing, some are refused as invalid.
    expect(codes.get(status.OK)).toBeGreaterThan(20);
    expect(codes.get(status.INVALID_ARGUMENT)).toBeGreaterThan(20);
    expect(codes.get(status.NOT_FOUND)).toBeGreaterThan(0);
  }, 120_000);
});
