// The quick start with its local cloud, as a real `dispatcher start`: the cloud and account named `local` appear
// without anyone creating them, the account's validation job runs the local driver through KM and turns it ACTIVE with
// compute (and no object storage) subscribed. (That a restart adds nothing is bootstrap.test.ts's.)
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killLocalServers } from "../../../src/clouds/local/cleanup.js";
import { createProvisioningClient, type ProvisioningClient } from "../../../src/db/clients.js";
import { createTestEnv, killStrayDispatchers, startDispatcher, type DispatcherProcess, type TestEnv } from "../../support/process.js";
import { until } from "../../support/poll.js";

let t: TestEnv;
let p: DispatcherProcess;
let db: ProvisioningClient;

beforeAll(async () => {
  t = await createTestEnv({ label: "localqs" });
  p = await startDispatcher(t, ["start"], { timeoutMs: 100_000 });
  db = createProvisioningClient(t.urls.provisioning, 2);
}, 120_000);

afterAll(async () => {
  await killStrayDispatchers();
  await db?.$disconnect();
  if (t) await killLocalServers(t.dir);
  await t?.cleanup();
});

const localAccount = () => db.account.findFirst({ where: { name: "local", cloud: { name: "local" } } });

describe("quick start local cloud", () => {
  it("connects the local cloud and account at start and validates it through the local driver", async () => {
    expect(p.running).toBe(true);
    const account = await until(async () => {
      const a = await localAccount();
      return a?.status === "ACTIVE" || a?.status === "FAILED" ? a : undefined;
    }, 45_000, "the local account validated").catch((err: unknown) => {
      throw new Error(`${String(err)}\n${p.output().slice(-4000)}`);
    });
    expect(account?.status, account?.statusMessage ?? "").toBe("ACTIVE");
    expect(account?.providerAccountId).toMatch(/^local:/);
    const cloud = await db.cloud.findFirstOrThrow({ where: { name: "local" } });
    expect(cloud).toMatchObject({ driver: "local", endpoint: "local://" });
    const subscribed = (await db.subscription.findMany({ where: { accountId: account?.id as string } })).map((s) => s.capability);
    expect(subscribed).toContain("compute");
    expect(subscribed).not.toContain("object_storage");
    // The account key went to KM, not into a log line.
    const key = readFileSync(join(t.dir, "local-cloud", "account.key"), "utf8").trim();
    expect(key.length).toBeGreaterThan(20);
    expect(p.output()).not.toContain(key);
  }, 60_000);
});
