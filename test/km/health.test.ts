// KM's health says whether it can do its job: a KM whose configured master keys cannot decrypt credentials it holds
// (a version dropped from the configuration while records still use it) answers NOT_SERVING while it refuses them,
// and SERVING again once started with the key that wrote them. (A configured key that is not the one a version was
// recorded with, e.g. a development key made anew, stops KM at start: km.test.ts.)
import { afterAll, beforeAll, expect, it } from "vitest";
import { checkHealth } from "../../src/client/index.js";
import type { KmClient } from "../../src/km/client.js";
import { generateKeyText } from "../../src/km/keys.js";
import { kmClientSettings } from "../../src/km/settings.js";
import { startTestKm, type TestKm } from "./support.js";

const KEY1 = generateKeyText(1);
const KEY2 = generateKeyText(2);

let t: TestKm;
let dispatcher: KmClient;
let worker: KmClient;

beforeAll(async () => {
  t = await startTestKm({ label: "kmhealth", masterKeys: KEY1 });
  dispatcher = t.client("dispatcher");
  worker = t.client("worker");
});

afterAll(async () => {
  await t?.cleanup();
});

/** KM's health over its own mutual TLS, as a probe holding a client certificate sees it. */
function health(): Promise<string> {
  const transport = kmClientSettings(t.config, "worker").transport;
  if (transport.kind !== "tls") throw new Error("the test KM runs mutual TLS");
  return checkHealth(t.address, "", 5_000, transport.credentials);
}

it("NOT_SERVING while stored credentials use a master key version it does not hold; SERVING with the key back", async () => {
  const stored = await dispatcher.storeCredential({ accountId: "acct-h", type: "aws-access-key", fields: { secret_access_key: "s3cr3t-value" }, labels: {}, jobId: "job-h" });
  expect(await health()).toBe("SERVING");
  // Version 2 becomes current; the record stays under version 1 (no re-wrap).
  await t.restart({ masterKeys: `${KEY1},${KEY2}` });
  expect(await t.client("admin").rotateMasterKey()).toEqual({ currentVersion: 2 });
  expect(await health()).toBe("SERVING");

  // Version 1 is gone from the configuration: the record under it cannot be decrypted.
  await t.restart({ masterKeys: KEY2 });
  expect(await health()).toBe("NOT_SERVING");
  await expect(worker.getCredential({ id: stored.id, accountId: "acct-h", jobId: "job-h" })).rejects.toThrow();
  const said = t.logLines.filter((l) => l.msg === "health reports NOT_SERVING").map((l) => String(l.reason));
  expect(said.at(-1)).toMatch(/1 stored credential\(s\) use master key version\(s\) 1, which encryption\.masterKeys does not hold/);

  await t.restart({ masterKeys: `${KEY1},${KEY2}` });
  expect(await health()).toBe("SERVING");
  const back = await worker.getCredential({ id: stored.id, accountId: "acct-h", jobId: "job-h" });
  expect(back.fields.secret_access_key).toBe("s3cr3t-value");
}, 120_000);
