// What a local server's guest gets from its launch, checked in the guest's root on disk: the key pair's public key in
// ~/.ssh/authorized_keys, the user data script run once at first boot (never again, and written nowhere but the
// guest), and tags on the server and every resource. Key pairs themselves: imported and created, checked by ssh-keygen.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DriverError, MAX_USER_DATA_BYTES, type LaunchRequest, type ServerObservation, type ServerRef } from "../../../src/clouds/driver.js";
import { serviceOf } from "../../../src/clouds/resources.js";
import { generateKeyPair } from "../../../src/clouds/ssh-keys.js";
import { callOptions, startLocalCloud, type LocalCloudFixture } from "./support.js";
import { until } from "../../support/poll.js";

let f: LocalCloudFixture;
beforeAll(() => {
  f = startLocalCloud("guest", { stopGraceMs: 1_000 });
});
afterAll(async () => {
  await f?.cleanup();
});

let n = 0;
const token = (what: string) => `${what}-${++n}-${Date.now()}`;
const keys = () => serviceOf(f.driver, "keyPairs");
const ref = (providerId: string): ServerRef => ({ regionId: "local", providerId });
const failure = async (p: Promise<unknown>): Promise<DriverError> => {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(DriverError);
  return err as DriverError;
};
const observe = (id: string) => f.driver.getServer(f.target, ref(id), callOptions());

async function launch(extra: Partial<LaunchRequest> = {}): Promise<ServerObservation> {
  const s = await f.driver.launch(f.target, { regionId: "local", dataCenter: "", productId: "small", imageId: "basic", name: `guest ${++n}`, clientToken: token("srv"), bootstrap: {}, ...extra }, callOptions());
  return until(async () => { const x = await observe(s.providerId); return x?.state === "RUNNING" ? x : null; }, 30_000, "the server RUNNING");
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

describe("key pairs", () => {
  it("imports an OpenSSH key with its SHA256 fingerprint; the same name and key again is the same key pair", async () => {
    const made = generateKeyPair("ed25519", "alice@laptop");
    const clientToken = token("kp");
    const imported = await keys().importKey(f.target, { regionId: "local", name: "alice", clientToken, tags: { owner: "alice" }, publicKey: made.publicKey }, callOptions());
    expect(imported).toMatchObject({ name: "alice", state: "AVAILABLE", keyType: "ed25519", fingerprint: made.fingerprint, tags: { owner: "alice" }, clientToken });
    expect((await keys().importKey(f.target, { regionId: "local", name: "alice", clientToken, tags: {}, publicKey: made.publicKey }, callOptions())).providerId).toBe(imported.providerId);
    expect((await keys().importKey(f.target, { regionId: "local", name: "alice", clientToken: token("kp"), tags: {}, publicKey: made.publicKey }, callOptions())).providerId).toBe(imported.providerId);
    const other = generateKeyPair("ed25519", "").publicKey;
    expect(await failure(keys().importKey(f.target, { regionId: "local", name: "alice", clientToken: token("kp"), tags: {}, publicKey: other }, callOptions()))).toMatchObject({ code: "CONFLICT" });
    expect(await failure(keys().importKey(f.target, { regionId: "local", name: "bad", clientToken: token("kp"), tags: {}, publicKey: "ssh-dss AAAA" }, callOptions()))).toMatchObject({ code: "INVALID", message: expect.stringMatching(/^public key: unsupported key type/) });
    expect((await keys().list(f.target, "local", callOptions())).map((k) => k.name)).toContain("alice");
  });

  it("creates a key pair whose private key (returned once, stored nowhere) ssh-keygen accepts; a retry replaces it", async () => {
    const clientToken = token("kp");
    const { keyPair, privateKey } = await keys().create(f.target, { regionId: "local", name: "made", clientToken, tags: {}, keyType: "ed25519" }, callOptions());
    const file = join(f.dataDir, "made.key");
    writeFileSync(file, privateKey, { mode: 0o600 });
    expect(execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", file], { encoding: "utf8" })).toContain(keyPair.fingerprint);
    const body = privateKey.split("\n")[1] as string;
    for (const path of filesUnder(join(f.dataDir, "local-cloud"))) expect(readFileSync(path, "utf8"), path).not.toContain(body);
    const again = await keys().create(f.target, { regionId: "local", name: "made", clientToken, tags: {}, keyType: "ed25519" }, callOptions());
    expect(again.keyPair.providerId).toBe(keyPair.providerId);
    expect(again.keyPair.fingerprint).not.toBe(keyPair.fingerprint);
    await keys().delete(f.target, ref(keyPair.providerId), callOptions());
    expect(await keys().get(f.target, ref(keyPair.providerId), callOptions())).toBeNull();
  });
});

describe("launch options in the guest", () => {
  it("installs the key pair's public key in the guest's authorized_keys", async () => {
    const made = generateKeyPair("rsa", "ops@dispatcher");
    const name = `ops-${Date.now()}`;
    await keys().importKey(f.target, { regionId: "local", name, clientToken: token("kp"), tags: {}, publicKey: made.publicKey }, callOptions());
    const s = await launch({ keyPairName: name });
    expect(s.keyPairName).toBe(name);
    const authorized = readFileSync(join(s.details.root as string, ".ssh", "authorized_keys"), "utf8");
    expect(authorized).toBe(`${made.publicKey}\n`);
    expect(await failure(f.driver.launch(f.target, { regionId: "local", dataCenter: "", productId: "small", imageId: "basic", name: "x", clientToken: token("srv"), bootstrap: {}, keyPairName: "nobody" }, callOptions()))).toMatchObject({ code: "INVALID" });
  });

  it("runs user data once, at first boot, in the guest's root; the script is nowhere but the guest", async () => {
    const secret = `s3cret-${Date.now()}`;
    const script = `#!/bin/sh\necho "boot $(date +%s%N)" >> boots.log\necho ${secret} > marker\nexit 3\n`;
    const s = await launch({ userData: script, tags: { role: "worker" } });
    const root = s.details.root as string;
    await until(async () => (await observe(s.providerId))?.details.userData === "exited 3", 10_000, "user data exited 3");
    expect(readFileSync(join(root, "marker"), "utf8")).toBe(`${secret}\n`);
    await f.driver.reboot(f.target, ref(s.providerId), callOptions());
    await until(async () => { const x = await observe(s.providerId); return x?.state === "RUNNING" && x.details.boots === "2"; }, 30_000, "the second boot RUNNING");
    await new Promise((r) => setTimeout(r, 300));
    expect(readFileSync(join(root, "boots.log"), "utf8").trim().split("\n")).toHaveLength(1);
    // In the guest's own files only (the script and what it wrote), never in the cloud's records or logs.
    const holders = filesUnder(join(f.dataDir, "local-cloud")).filter((p) => readFileSync(p, "utf8").includes(secret));
    expect(holders.sort()).toEqual([join(root, "marker"), join(root, "var", "lib", "cloud", "user-data")].sort());
    expect(readFileSync(join(s.details.workDir as string, "state.json"), "utf8")).toContain('"userData": true');
  });

  it("a script without a shebang runs with /bin/sh; oversized user data is refused without quoting it", async () => {
    const s = await launch({ userData: "echo plain > plain.txt" });
    await until(async () => (await observe(s.providerId))?.details.userData === "exited 0", 10_000, "user data exited 0");
    expect(existsSync(join(s.details.root as string, "plain.txt"))).toBe(true);
    const big = `#!/bin/sh\n# ${"x".repeat(MAX_USER_DATA_BYTES)}`;
    const err = await failure(f.driver.launch(f.target, { regionId: "local", dataCenter: "", productId: "small", imageId: "basic", name: "x", clientToken: token("srv"), bootstrap: {}, userData: big }, callOptions()));
    expect(err).toMatchObject({ code: "INVALID", message: `user data is limited to ${MAX_USER_DATA_BYTES} bytes` });
  });
});

describe("tags", () => {
  it("launch tags show on the server; set and remove work on servers and resources; reserved keys are refused", async () => {
    const tags = serviceOf(f.driver, "tags");
    const s = await launch({ tags: { env: "dev", team: "blue" } });
    expect(s.tags).toEqual({ env: "dev", team: "blue" });
    await tags.set(f.target, { type: "server", ...ref(s.providerId) }, { env: "prod", cost: "42" }, callOptions());
    await tags.remove(f.target, { type: "server", ...ref(s.providerId) }, ["team", "absent"], callOptions());
    expect((await observe(s.providerId))?.tags).toEqual({ env: "prod", cost: "42" });

    const fw = await serviceOf(f.driver, "firewalls").create(f.target, { regionId: "local", name: `tagged-${n}`, description: "", clientToken: token("fw"), tags: { a: "1" } }, callOptions());
    await tags.set(f.target, { type: "firewall", ...ref(fw.providerId) }, { b: "2" }, callOptions());
    expect((await serviceOf(f.driver, "firewalls").get(f.target, ref(fw.providerId), callOptions()))?.tags).toEqual({ a: "1", b: "2" });

    expect(await failure(tags.set(f.target, { type: "server", ...ref(s.providerId) }, { "dispatcher:client-token": "x" }, callOptions()))).toMatchObject({ code: "INVALID" });
    expect(await failure(tags.set(f.target, { type: "firewall", ...ref("fw-0000000000000000") }, { a: "b" }, callOptions()))).toMatchObject({ code: "NOT_FOUND" });
    expect(await failure(tags.set(f.target, { type: "server", ...ref("../../etc") }, { a: "b" }, callOptions()))).toMatchObject({ code: "NOT_FOUND" });
    expect(await failure(tags.set(f.target, { type: "volume", ...ref("vol-1") }, { a: "b" }, callOptions()))).toMatchObject({ code: "NOT_FOUND" });
    expect(await failure(f.driver.launch(f.target, { regionId: "local", dataCenter: "", productId: "small", imageId: "basic", name: "x", clientToken: token("srv"), bootstrap: {}, tags: { "aws:x": "y" } }, callOptions()))).toMatchObject({ code: "INVALID" });
  });
});
