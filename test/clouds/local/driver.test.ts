// The local cloud driver against real processes: every state it reports is checked against the process itself (pid
// alive, port answering), and the records on disk never hold a bootstrap secret.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DriverError, type DriverTarget, type LaunchRequest, type ServerObservation, type ServerRef } from "../../../src/clouds/driver.js";
import { BUILT_IN_CATALOG } from "../../../src/clouds/local/catalog.js";
import { killLocalServers } from "../../../src/clouds/local/cleanup.js";
import { callOptions, httpGet, pidAlive, startLocalCloud, type LocalCloudFixture } from "./support.js";
import { until } from "../../support/poll.js";

let f: LocalCloudFixture;
beforeAll(() => {
  f = startLocalCloud("driver", { stopGraceMs: 400 });
  // A guest that ignores SIGTERM, to prove stop escalates to SIGKILL.
  f.writeCatalog({
    ...BUILT_IN_CATALOG,
    images: [
      ...BUILT_IN_CATALOG.images,
      { id: "stubborn", name: "ignores SIGTERM", platform: "linux", env: {}, port: 8080, command: ["{node}", "-e", "process.on('SIGTERM',()=>{});require('http').createServer((q,s)=>s.end('ok')).listen(Number(process.argv[1]),process.argv[2])", "{port}", "{bind}"] },
      { id: "broken", name: "no such program", platform: "linux", env: {}, port: 8080, command: ["{dir}/does-not-exist"] },
    ],
  });
});
afterAll(async () => {
  await f?.cleanup();
});

const SECRET = "join-secret-4f1d9c";
let n = 0;
const request = (extra: Partial<LaunchRequest> = {}): LaunchRequest => ({
  regionId: "local",
  dataCenter: "local-a",
  productId: "small",
  imageId: "basic",
  name: `web ${++n}`,
  clientToken: `token-${n}-${Date.now()}`,
  bootstrap: { DISPATCHER_AGENT_JOIN_TOKEN: SECRET },
  ...extra,
});
const refOf = (s: ServerObservation): ServerRef => ({ regionId: s.regionId, providerId: s.providerId });
const get = (ref: ServerRef): Promise<ServerObservation | null> => f.driver.getServer(f.target, ref, callOptions());
const running = async (ref: ServerRef): Promise<ServerObservation> => until(async () => ((await get(ref))?.state === "RUNNING" ? get(ref) : undefined), 10_000, "the server RUNNING") as Promise<ServerObservation>;
const pidOf = (s: ServerObservation): number => Number(s.details.pid);
/** GET / on the server's own address and port. */
const answer = (s: ServerObservation): Promise<string> => httpGet(Number(s.details.port), s.addresses.private[0]);
const driverError = async (p: Promise<unknown>): Promise<DriverError> => {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(DriverError);
  return err as DriverError;
};

describe("local cloud: account and catalog", () => {
  it("accepts the account key and names the account by machine and user", async () => {
    const answer = await f.driver.testContext(f.target, callOptions());
    expect(answer.providerAccountId).toMatch(/^local:[^:]+:\d+$/);
    expect(readFileSync(join(f.dataDir, "local-cloud", "account.key"), "utf8").trim()).toBe(f.target.credentials.key);
    expect(statSync(join(f.dataDir, "local-cloud", "account.key")).mode & 0o777).toBe(0o600);
  });

  it("refuses a wrong or missing key with AUTH on every call, without echoing it", async () => {
    const wrong: Array<Record<string, string>> = [{ key: `${f.target.credentials.key}x` }, { key: "" }, {}, { secret: f.target.credentials.key as string }];
    for (const credentials of wrong) {
      const target: DriverTarget = { ...f.target, credentials };
      const err = await driverError(f.driver.testContext(target, callOptions()));
      expect(err.code).toBe("AUTH");
      expect(err.retryable).toBe(false);
      expect(err.message).not.toContain(f.target.credentials.key);
      expect((await driverError(f.driver.launch(target, request(), callOptions()))).code).toBe("AUTH");
      expect((await driverError(f.driver.listServers(target, "local", callOptions()))).code).toBe("AUTH");
    }
  });

  it("lists the catalog, and a capability removed from the catalog file is gone on the next probe", async () => {
    expect(await f.driver.listRegions(f.target, callOptions())).toEqual([{ id: "local", name: "This machine", dataCenters: ["local-a"] }]);
    expect((await f.driver.probeCapabilities(f.target, "local", callOptions())).sort()).toEqual(["block_storage", "compute", "firewalls", "key_pairs", "networking", "static_addresses"]);
    const products = await f.driver.listProducts(f.target, "local", callOptions());
    expect(products.find((p) => p.id === "small")).toMatchObject({ cpus: 1, memoryMb: 512, hourlyPriceMicros: 10_000, accruesWhenStopped: false });
    expect((await f.driver.listImages(f.target, "local", callOptions())).map((i) => i.id)).toContain("basic");
    expect((await driverError(f.driver.probeCapabilities(f.target, "mars", callOptions()))).code).toBe("NOT_FOUND");

    const original = JSON.parse(readFileSync(f.catalogFile, "utf8")) as typeof BUILT_IN_CATALOG;
    try {
      f.writeCatalog({ ...original, regions: [{ ...(original.regions[0] as (typeof original.regions)[0]), capabilities: ["compute", "networking", "object_storage"] }] });
      expect((await f.driver.probeCapabilities(f.target, "local", callOptions())).sort()).toEqual(["compute", "networking", "object_storage"]);
      f.writeCatalog({ ...original, regions: [{ ...(original.regions[0] as (typeof original.regions)[0]), capabilities: ["networking"] }] });
      expect(await f.driver.probeCapabilities(f.target, "local", callOptions())).toEqual(["networking"]);
      // Without compute the region launches nothing.
      expect((await driverError(f.driver.launch(f.target, request(), callOptions()))).code).toBe("UNSUPPORTED");
    } finally {
      f.writeCatalog(original);
    }
  });

  it("refuses launches outside the catalog as INVALID", async () => {
    for (const bad of [{ regionId: "mars" }, { productId: "huge" }, { imageId: "windows" }, { dataCenter: "local-z" }, { clientToken: "" }, { bootstrap: { "BAD NAME": "x" } }]) {
      expect((await driverError(f.driver.launch(f.target, request(bad), callOptions()))).code, JSON.stringify(bad)).toBe("INVALID");
    }
  });
});

describe("local cloud: servers are processes", () => {
  it("launches a process that becomes RUNNING when it answers on its own address, with bootstrap only in its environment", async () => {
    const launched = await f.driver.launch(f.target, request(), callOptions());
    expect(["PENDING", "RUNNING"]).toContain(launched.state);
    expect(launched.providerId).toMatch(/^ls-/);
    const s = await running(refOf(launched));
    // Its own loopback address, the image's port, through the default firewall (everything from this machine).
    expect(s.addresses).toEqual({ private: [expect.stringMatching(/^127\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.\d+$/)], public: [] });
    expect(s.details.port).toBe("8080");
    expect(await answer(s)).toBe("200 ok");
    expect(s).toMatchObject({ regionId: "local", dataCenter: "local-a", productId: "small", imageId: "basic", tags: {}, keyPairName: null, firewallIds: [expect.stringMatching(/^fw-/)] });
    const dir = s.details.workDir as string;
    expect(dir.startsWith(join(f.dataDir, "local-cloud"))).toBe(true);
    expect(s.details.root).toBe(join(dir, "root"));
    const state = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as Record<string, unknown>;
    expect(state).toMatchObject({ pid: pidOf(s), port: 8080, productId: "small", imageId: "basic", regionId: "local", clientToken: launched.clientToken, address: s.addresses.private[0] });
    // The guest lives in its root: its HOME and working directory.
    expect(readFileSync(`/proc/${pidOf(s)}/environ`, "utf8").split("\0")).toContain(`HOME=${join(dir, "root")}`);
    // The secret reached the guest's environment, and nowhere on disk.
    expect(readFileSync(`/proc/${pidOf(s)}/environ`, "utf8").split("\0")).toContain(`DISPATCHER_AGENT_JOIN_TOKEN=${SECRET}`);
    for (const file of filesUnder(dir)) expect(readFileSync(file, "utf8"), file).not.toContain(SECRET);
    // Nor the dispatcher's own environment.
    expect(readFileSync(`/proc/${pidOf(s)}/environ`, "utf8")).not.toMatch(/DISPATCHER_PROVISIONING_URL|VITEST/);
  });

  it("launches one server per client token, however many launches race", async () => {
    const req = request();
    const answers = await Promise.all([1, 2, 3, 4].map(() => f.driver.launch(f.target, req, callOptions())));
    expect(new Set(answers.map((a) => a.providerId)).size).toBe(1);
    const s = await running(refOf(answers[0] as ServerObservation));
    const again = await f.driver.launch(f.target, req, callOptions());
    expect(again.providerId).toBe(s.providerId);
    expect(pidOf(await running(refOf(again)))).toBe(pidOf(s));
    const same = (await f.driver.listServers(f.target, "local", callOptions())).filter((x) => x.clientToken === req.clientToken);
    expect(same).toHaveLength(1);
    expect((await driverError(f.driver.launch(f.target, { ...req, productId: "medium" }, callOptions()))).code).toBe("CONFLICT");
    // A retry still finds its server after the catalog stopped offering the image.
    const catalog = JSON.parse(readFileSync(f.catalogFile, "utf8")) as typeof BUILT_IN_CATALOG;
    try {
      f.writeCatalog({ ...catalog, images: catalog.images.filter((i) => i.id !== "basic") });
      expect((await f.driver.launch(f.target, req, callOptions())).providerId).toBe(s.providerId);
      expect((await driverError(f.driver.launch(f.target, request(), callOptions()))).code).toBe("INVALID");
    } finally {
      f.writeCatalog(catalog);
    }
  });

  it("stops, starts, reboots and terminates the real process", async () => {
    const s = await running(refOf(await f.driver.launch(f.target, request(), callOptions())));
    const ref = refOf(s);
    const pid1 = pidOf(s);

    await f.driver.stop(f.target, ref, callOptions());
    expect(pidAlive(pid1)).toBe(false);
    expect((await get(ref))?.state).toBe("STOPPED");
    expect(await answer(s)).toBe("ECONNREFUSED");
    await f.driver.stop(f.target, ref, callOptions()); // stopping a stopped server is fine
    expect((await driverError(f.driver.reboot(f.target, ref, callOptions()))).code).toBe("CONFLICT");

    await f.driver.start(f.target, ref, callOptions());
    const s2 = await running(ref);
    const pid2 = pidOf(s2);
    expect(pid2).not.toBe(pid1);
    expect(s2.addresses).toEqual(s.addresses);
    expect(await answer(s2)).toBe("200 ok");
    await f.driver.start(f.target, ref, callOptions()); // already running: same process
    expect(pidOf(await running(ref))).toBe(pid2);

    await f.driver.reboot(f.target, ref, callOptions());
    expect(pidAlive(pid2)).toBe(false);
    const s3 = await running(ref);
    expect(pidOf(s3)).not.toBe(pid2);
    expect(Number(s3.details.boots)).toBe(3);

    await f.driver.terminate(f.target, ref, callOptions());
    expect(pidAlive(pidOf(s3))).toBe(false);
    const gone = await get(ref);
    expect(gone?.state).toBe("TERMINATED");
    expect(readdirSync(s.details.workDir as string)).toEqual(["state.json"]);
    expect((await f.driver.listServers(f.target, "local", callOptions())).find((x) => x.providerId === ref.providerId)?.state).toBe("TERMINATED");
    await f.driver.terminate(f.target, ref, callOptions()); // terminating a terminated server succeeds
    await f.driver.terminate(f.target, { regionId: "local", providerId: "ls-0000000000000000" }, callOptions());
    expect((await driverError(f.driver.start(f.target, ref, callOptions()))).code).toBe("CONFLICT");
  });

  it("kills a guest that ignores SIGTERM once the grace is over", async () => {
    const s = await running(refOf(await f.driver.launch(f.target, request({ imageId: "stubborn" }), callOptions())));
    const started = Date.now();
    await f.driver.stop(f.target, refOf(s), callOptions());
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(pidAlive(pidOf(s))).toBe(false);
    expect((await get(refOf(s)))?.state).toBe("STOPPED");
  });

  it("reports STOPPED for a process killed behind its back, and for a recycled pid", async () => {
    const s = await running(refOf(await f.driver.launch(f.target, request(), callOptions())));
    process.kill(pidOf(s), "SIGKILL");
    await until(async () => (await get(refOf(s)))?.state === "STOPPED", 10_000, "the server STOPPED");
    expect((await f.driver.listServers(f.target, "local", callOptions())).find((x) => x.providerId === s.providerId)?.state).toBe("STOPPED");
    // The record now names a live process that is not the server (this test's own pid): still STOPPED.
    const file = join(s.details.workDir as string, "state.json");
    const state = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...state, pid: process.pid, pidStart: "1" }));
    expect((await get(refOf(s)))?.state).toBe("STOPPED");
    await f.driver.start(f.target, refOf(s), callOptions()); // and start spawns a new one rather than adopting it
    expect(pidOf(await running(refOf(s)))).not.toBe(process.pid);
  });

  it("serialises concurrent operations on one server", async () => {
    const s = await running(refOf(await f.driver.launch(f.target, request(), callOptions())));
    const ref = refOf(s);
    await Promise.all([f.driver.stop(f.target, ref, callOptions()), f.driver.stop(f.target, ref, callOptions()), get(ref)]);
    expect((await get(ref))?.state).toBe("STOPPED");
    await Promise.all([f.driver.start(f.target, ref, callOptions()), f.driver.start(f.target, ref, callOptions())]);
    const s2 = await running(ref);
    const leaders = readdirSync("/proc").filter((p) => /^\d+$/.test(p) && environOf(p).includes(`=${s.details.workDir}`));
    expect(leaders).toEqual([String(pidOf(s2))]);

    // A lock held by a live process makes a call wait, up to its deadline; one left by a dead process is broken.
    const lock = join(s.details.workDir as string, "..", "locks", `${s.providerId}.lock`);
    writeFileSync(lock, `${process.pid} - held`);
    const waited = await driverError(f.driver.stop(f.target, ref, callOptions(300)));
    expect(waited.code).toBe("TIMEOUT");
    expect((await get(ref))?.state).toBe("RUNNING");
    const dead = spawnSync(process.execPath, ["-e", "0"]).pid as number;
    writeFileSync(lock, `${dead} - held`);
    await f.driver.stop(f.target, ref, callOptions());
    expect((await get(ref))?.state).toBe("STOPPED");
  });

  it("answers NOT_FOUND or null for unknown servers, and a failed spawn is a permanent error", async () => {
    const ref = { regionId: "local", providerId: "ls-0123456789abcdef" };
    expect(await get(ref)).toBeNull();
    expect(await get({ regionId: "local", providerId: "../../etc" })).toBeNull();
    expect((await driverError(f.driver.stop(f.target, ref, callOptions()))).code).toBe("NOT_FOUND");
    const err = await driverError(f.driver.launch(f.target, request({ imageId: "broken" }), callOptions()));
    expect(err).toMatchObject({ code: "INTERNAL", retryable: false, providerCode: "ENOENT" });
  });

  it("honours the call's signal and deadline", async () => {
    const aborted = new AbortController();
    aborted.abort();
    expect((await driverError(f.driver.listServers(f.target, "local", { signal: aborted.signal, deadline: new Date(Date.now() + 10_000) }))).code).toBe("TIMEOUT");
    expect((await driverError(f.driver.launch(f.target, request(), { signal: new AbortController().signal, deadline: new Date(Date.now() - 1) }))).code).toBe("TIMEOUT");
  });

  it("kills every server of the data directory on cleanup", async () => {
    const s = await running(refOf(await f.driver.launch(f.target, request(), callOptions())));
    expect(await killLocalServers(f.dataDir)).toBeGreaterThanOrEqual(1);
    expect(pidAlive(pidOf(s))).toBe(false);
    const leftovers = readdirSync("/proc").filter((p) => /^\d+$/.test(p) && environOf(p).includes(`=${join(f.dataDir, "local-cloud")}`));
    expect(leftovers).toEqual([]);
    expect(existsSync(join(s.details.workDir as string, "state.json"))).toBe(true);
  });
});

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

function environOf(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8");
  } catch {
    return "";
  }
}
