// The quick start's local cloud and account, connected at start: once however often or however many dispatchers run
// it, its key stored through KM and accepted by the local driver, patient with a KM that is still starting, and the
// local:// endpoint accepted for the local driver only.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killLocalServers } from "../../../src/clouds/local/cleanup.js";
import { ensureLocalCloud, type LocalCloudBootstrap } from "../../../src/clouds/local/bootstrap.js";
import { createLocalDriver } from "../../../src/clouds/local/driver.js";
import { InvalidArgumentError, UnavailableError } from "../../../src/errors.js";
import { createAccountService } from "../../../src/provisioning/accounts/service.js";
import { createCloudService } from "../../../src/provisioning/clouds/service.js";
import { FIXTURE_DISCOVERY_INTERVAL_MS, fixedResolve, startProvisioningFixture, type ProvisioningFixture } from "../../provisioning/support.js";
import { callOptions } from "./support.js";

let f: ProvisioningFixture;
let dataDir: string;
const warnings: unknown[] = [];
const log = { info: () => undefined, warn: (...args: unknown[]) => void warnings.push(args) } as unknown as LocalCloudBootstrap["log"];

beforeAll(async () => {
  f = await startProvisioningFixture("local_boot");
  dataDir = mkdtempSync(join(tmpdir(), "local-cloud-boot-"));
});
afterAll(async () => {
  await f?.close();
  if (dataDir) {
    await killLocalServers(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  }
});

const options = (extra: Partial<LocalCloudBootstrap> = {}): LocalCloudBootstrap => ({
  dataDir,
  catalogFile: "",
  clouds: createCloudService(f.dbs.provisioning, { allowInsecure: false, allowLinkLocal: false, resolve: fixedResolve }),
  accounts: createAccountService(f.dbs.provisioning, () => f.km, f.jobs, { discoveryIntervalMs: FIXTURE_DISCOVERY_INTERVAL_MS }),
  log,
  backoffMs: 10,
  ...extra,
});

const counts = async (): Promise<{ clouds: number; accounts: number; jobs: number }> => {
  const db = f.dbs.provisioning;
  return {
    clouds: await db.cloud.count({ where: { name: "local" } }),
    accounts: await db.account.count({ where: { name: "local" } }),
    jobs: await db.job.count({ where: { kind: "account.discover" } }),
  };
};

describe("local cloud bootstrap", () => {
  it("gives up with a warning, and without throwing, while KM stays down", async () => {
    f.km.failWith = new UnavailableError("KM is starting");
    try {
      expect(await ensureLocalCloud(options({ attempts: 3 }))).toBeNull();
    } finally {
      f.km.failWith = null;
    }
    expect(warnings).toHaveLength(1);
    expect(JSON.stringify(warnings)).toContain("KM is starting");
    // The cloud exists already (it needs no KM); no account and no validation job yet.
    expect(await counts()).toEqual({ clouds: 1, accounts: 0, jobs: 0 });
  });

  it("waits for a KM that comes up, then connects the account and starts its validation", async () => {
    f.km.failWith = new UnavailableError("KM is starting");
    setTimeout(() => (f.km.failWith = null), 100);
    const ids = await ensureLocalCloud(options({ attempts: 8 }));
    expect(ids).not.toBeNull();
    expect(await counts()).toEqual({ clouds: 1, accounts: 1, jobs: 1 });

    const cloud = await f.dbs.provisioning.cloud.findUniqueOrThrow({ where: { id: ids?.cloudId as string } });
    expect(cloud).toMatchObject({ name: "local", driver: "local", endpoint: "local://" });
    const account = await f.dbs.provisioning.account.findUniqueOrThrow({ where: { id: ids?.accountId as string } });
    const stored = f.km.stored.get(account.credentialId);
    expect(stored).toMatchObject({ accountId: account.id, type: "local" });
    // The stored key is the one the local driver accepts.
    const driver = createLocalDriver({ dataDir, catalogFile: "", stopGraceMs: 1_000 });
    const target = { cloud: { id: cloud.id, driver: "local", endpoint: "local://" }, account: { id: account.id, providerAccountId: null }, credentials: stored?.fields ?? {} };
    expect((await driver.testContext(target, callOptions())).providerAccountId).toMatch(/^local:/);
  });

  it("changes nothing when run again, or by two dispatchers at once", async () => {
    const before = await counts();
    const first = await ensureLocalCloud(options());
    const racing = await Promise.all([ensureLocalCloud(options()), ensureLocalCloud(options())]);
    expect(racing).toEqual([first, first]);
    expect(await counts()).toEqual(before);
    expect(f.km.stored.size).toBe(1);
  });

  it("races from scratch to one cloud and one account", async () => {
    // A fresh cloud name space: remove what the earlier cases made (the job first, then account and cloud).
    const db = f.dbs.provisioning;
    await db.account.deleteMany({ where: { name: "local" } });
    await db.cloud.deleteMany({ where: { name: "local" } });
    const answers = await Promise.all([1, 2, 3].map(() => ensureLocalCloud(options())));
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(await db.cloud.count({ where: { name: "local" } })).toBe(1);
    expect(await db.account.count({ where: { name: "local" } })).toBe(1);
  });

  it("accepts local:// as the endpoint of local clouds only", async () => {
    const clouds = options().clouds;
    for (const [driver, endpoint] of [["aws", "local://"], ["local", "local://x"], ["local", "file:///etc/passwd"]] as const) {
      const err = await clouds.createCloud({ name: `c-${driver}-${endpoint.length}`, driver, endpoint, regions: [] }).catch((e: unknown) => e);
      expect(err, `${driver} ${endpoint}`).toBeInstanceOf(InvalidArgumentError);
    }
  });
});
