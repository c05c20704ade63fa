// Property: random and hostile values in every request field of every method of VolumeService, SnapshotService and
// ImageService (huge strings, unicode, control characters, out-of-range sizes, hostile device names and tag maps,
// forged page tokens) never make the server answer INTERNAL or UNKNOWN, nor log an error. Known ids are mixed in, so
// some requests get past validation into the services and the database.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DispatcherClients } from "../../src/client/index.js";
import { ImageServiceService, SnapshotServiceService, VolumeServiceService } from "../../src/gen/proto/dispatcher/v1/storage.js";
import { expectAnswersSpread, fuzzServices, hostileInts, hostileStrings, hostileTagChange, hostileTags } from "../support/fuzz.js";
import { seedAccount, seedBudgetCode, startServersFixture, type ServersFixture } from "../servers/support.js";

let f: ServersFixture;
let c: DispatcherClients;
let known: Record<string, Array<string | number>>;

beforeAll(async () => {
  f = await startServersFixture("storage_fuzz", { run: false });
  const accountId = await seedAccount(f, { defaultBudgetCode: "FUZZ-S", regions: [{ id: "r1", dataCenters: ["r1-a"], capabilities: ["compute", "block_storage"] }] });
  await seedBudgetCode(f, "FUZZ-S", { hard: 10n ** 12n }, [f.users.operator]);
  c = f.client(f.users.operator);
  const vol = await c.volumes.createVolume({ accountId, regionId: "r1", name: "fuzz", sizeGib: 1, volumeType: "", dataCenter: "", snapshotId: "", budgetCode: "", tags: {}, idempotencyKey: "" });
  const server = await c.servers.launchServer({ accountId, regionId: "r1", dataCenter: "", productId: "small", imageId: "img-1", name: "", budgetCode: "", idempotencyKey: "" });
  const volumeId = vol.volume!.info!.id;
  known = { accountId: [accountId], regionId: ["r1", "r2"], id: [volumeId], volumeId: [volumeId], serverId: [server.server!.id], snapshotId: ["", volumeId], budgetCode: ["FUZZ-S", ""], device: ["/dev/sdf", "/dev/xvdg"], sizeGib: [1, 8, 16_384] };
}, 60_000);
afterAll(async () => {
  await f?.close();
});

const hostile = hostileStrings(["eyJpZCI6LTF9", "10.0.0.0/8", "::/0", "0.0.0.0/0", "300.1.1.1/8", "/dev/sdf", "/dev/../etc", "/dev/", "gp3"]);
const hostileInt = hostileInts([0, 1, 2, 16_384, 16_385, 65536, -1]);
const tags = hostileTags(hostile);

describe("storage requests full of hostile values", () => {
  it("never answer INTERNAL or UNKNOWN, whatever the field values", async () => {
    const { methods, codes } = await fuzzServices(
      [
        [VolumeServiceService, c.volumes],
        [SnapshotServiceService, c.snapshots],
        [ImageServiceService, c.images],
      ],
      { string: hostile, int: hostileInt, known, fields: { tags, change: hostileTagChange(hostile) } },
    );
    expect(methods).toBe(18);
    expect(f.server.logLines.filter((l) => l.level === "error" || l.level === "fatal")).toEqual([]);
    expectAnswersSpread(codes);
  }, 180_000);
});
