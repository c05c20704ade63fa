// Property: random and hostile values in every request field of every FileService method (huge strings, unicode,
// control characters, forged page tokens and upload ids, hostile tag and metadata maps, out-of-range part numbers,
// upload streams whose first message is anything) never make the server answer INTERNAL or UNKNOWN, nor log an error.
// Known ids and keys are mixed in, so many requests get past validation into the service, the database and the local
// cloud's blob store.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MethodDefinition } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DispatcherClients } from "../../src/client/index.js";
import { createLocalDriver } from "../../src/clouds/local/driver.js";
import type { DriverServices } from "../../src/clouds/resources.js";
import { FileServiceService } from "../../src/gen/proto/dispatcher/v1/files.js";
import { fileRpcServices } from "../../src/storage/files/rpc-services.js";
import { answerCounter, expectAnswersSpread, hostileInts, hostileStrings, hostileTags, requestArbitrary } from "../support/fuzz.js";
import { seedAccount, seedBudgetCode, startServersFixture, type ServersFixture } from "../servers/support.js";

const dataDir = mkdtempSync(join(tmpdir(), "files-fuzz-"));
let f: ServersFixture;
let c: DispatcherClients;
let known: Record<string, unknown[]>;

beforeAll(async () => {
  mkdirSync(join(dataDir, "local-cloud"), { recursive: true });
  writeFileSync(join(dataDir, "local-cloud", "account.key"), "fake-secret\n", { mode: 0o600 });
  const catalogFile = join(dataDir, "catalog.json");
  writeFileSync(catalogFile, JSON.stringify({ regions: [{ id: "local", name: "here", dataCenters: ["local-a"], capabilities: ["compute", "object_storage"] }] }));
  const local = createLocalDriver({ dataDir, catalogFile, stopGraceMs: 500, addressing: false });
  f = await startServersFixture("files_fuzz", {
    prepare: (cloud) => void ((cloud as { services?: DriverServices }).services = { blobStore: (local.services as DriverServices).blobStore }),
    services: ({ jobs, resources }) => fileRpcServices({ sql: resources.sql, db: resources.provisioning, jobs, drivers: resources.drivers, km: resources.km }),
  });
  const accountId = await seedAccount(f, { defaultBudgetCode: "FUZZ-F", regions: [{ id: "local", dataCenters: ["local-a"], capabilities: ["compute", "object_storage"] }] });
  await seedBudgetCode(f, "FUZZ-F", { hard: 10n ** 12n }, [f.users.operator]);
  c = f.client(f.users.operator);
  const { job, bucket } = await c.files.createBucket({ accountId, regionId: "local", name: "fuzz", tags: {}, idempotencyKey: "" });
  await f.h.waitForState(job!.id, ["SUCCEEDED"], 30_000);
  const bucketId = bucket!.info!.id;
  await c.files.uploadObject([{ part: { $case: "header", value: { bucketId, key: "k", contentType: "", metadata: {}, sha256: "" } } }, { part: { $case: "chunk", value: Buffer.from("v") } }]);
  const { uploadId } = await c.files.startUpload({ header: { bucketId, key: "k", contentType: "", metadata: {}, sha256: "" } });
  known = { accountId: [accountId], regionId: ["local"], id: [bucketId], bucketId: [bucketId], key: ["k", "a/b", "k/"], prefix: ["", "k"], uploadId: [uploadId], name: ["fuzz", "ok-name"], partNumber: [1, 2], partCount: [1] };
}, 90_000);
afterAll(async () => {
  await f?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const hostile = hostileStrings(["../../etc/passwd", "WyJhIiwiYiIsImMiXQ", "W10", "text/plain"], /^[a-z0-9][a-z0-9_.-]{0,20}$/);
const hostileInt = hostileInts([0, 1, 2, 1000, 1001, 10_000, 10_001, -1]);
const hostileInt64 = fc.oneof(fc.constantFrom(undefined, "0", "1", "-1", "9223372036854775807"), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String));
const map = hostileTags(hostile, 40);
const header = fc.option(fc.record({ bucketId: fc.oneof(hostile, fc.constant("")), key: hostile, contentType: hostile, metadata: map, sizeBytes: hostileInt64, sha256: hostile }), { nil: undefined });
const bytes = fc.oneof(fc.uint8Array({ maxLength: 2048 }), fc.constant(new Uint8Array(0))).map((u) => Buffer.from(u));

/** An upload stream: a first message of any kind (often a header naming the known bucket), then a few chunks or headers. */
const uploadStream = fc.tuple(
  fc.oneof(
    { weight: 3, arbitrary: header.map((h) => ({ part: { $case: "header" as const, value: h ? { ...h, bucketId: h.bucketId || (known.bucketId![0] as string) } : { bucketId: known.bucketId![0] as string, key: "fuzzed", contentType: "", metadata: {}, sha256: "" } } })) },
    { weight: 1, arbitrary: bytes.map((b) => ({ part: { $case: "chunk" as const, value: b } })) },
    { weight: 1, arbitrary: fc.constant({ part: undefined }) },
  ),
  fc.array(fc.oneof({ weight: 4, arbitrary: bytes.map((b) => ({ part: { $case: "chunk" as const, value: b } })) }, { weight: 1, arbitrary: header.map((h) => ({ part: h ? { $case: "header" as const, value: h } : undefined })) }), { maxLength: 4 }),
).map(([first, rest]) => [first, ...rest]);

type AnyClient = Record<string, (request: unknown) => unknown>;

describe("FileService requests full of hostile values", () => {
  it("never answer INTERNAL or UNKNOWN, whatever the field values", async () => {
    const client = c.files as unknown as AnyClient;
    const { codes, record } = answerCounter();
    let methods = 0;
    for (const [key, method] of Object.entries(FileServiceService) as Array<[string, MethodDefinition<unknown, unknown>]>) {
      methods++;
      if (method.requestStream) {
        await fc.assert(fc.asyncProperty(uploadStream, async (messages) => record(method.path, await (client[key] as (r: unknown) => Promise<unknown>)(messages).catch((e: unknown) => e))), { numRuns: 40 });
        continue;
      }
      const template = method.requestDeserialize(Buffer.alloc(0)) as Record<string, unknown>;
      await fc.assert(
        fc.asyncProperty(requestArbitrary(template, { string: hostile, int: hostileInt, known, fields: { tags: map, header, data: bytes } }), async (request) => {
          const outcome = method.responseStream
            ? await (async () => {
                for await (const _ of client[key]!(request) as AsyncIterable<unknown>) void _;
              })().catch((e: unknown) => e)
            : await (client[key] as (r: unknown) => Promise<unknown>)(request).catch((e: unknown) => e);
          record(method.path, outcome);
        }),
        { numRuns: 25 },
      );
    }
    expect(methods).toBe(14);
    expect(f.server.logLines.filter((l) => l.level === "error" || l.level === "fatal")).toEqual([]);
    expectAnswersSpread(codes);
  }, 240_000);
});
