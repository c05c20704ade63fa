// End to end on the local cloud, one real `dispatcher start`: create a volume (through the CLI, --wait); launch an
// agent server with the volume attached; through the agent write a file to the mount; snapshot the volume; a new
// volume from the snapshot, attached to a second server, shows the file; an image of the first server, and a server
// launched from it has the first one's root marker; then delete everything, and nothing of it is left on disk.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { JobState, type Job } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { AccountStatus } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import { runCli } from "../support/cli.js";
import { until } from "../support/poll.js";
import { bootstrapToken, createTestEnv, jobEnd, killStrayDispatchers, pidAlive, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";

let t: TestEnv;
let p: DispatcherProcess;
let c: DispatcherClients;
let token: string;
let account: string;
const pids = new Set<number>();

const succeeded = async (job: Job | undefined, timeoutMs = 60_000): Promise<Job> => {
  const ended = await jobEnd(c, job, timeoutMs);
  expect(ended.state, `${ended.kind}: ${JSON.stringify(ended.error)}`).toBe(JobState.JOB_STATE_SUCCEEDED);
  return ended;
};

beforeAll(async () => {
  t = await createTestEnv({ label: "storage_e2e" });
  p = await startDispatcher(t, ["start"], { env: t.with({ DISPATCHER_LOCAL_CLOUD_STOP_GRACE_MS: "2000" }), timeoutMs: 60_000 });
  const admin = bootstrapToken(p);
  if (!admin) throw new Error(`no admin token printed\n${p.output()}`);
  token = admin;
  c = createDispatcherClients({ address: t.address, token, retry: false });
  account = (await until(async () => (await c.accounts.listAccounts({ pageSize: 100 })).accounts.find((a) => a.name === "local" && a.status === AccountStatus.ACCOUNT_STATUS_ACTIVE), 60_000, "the local account")).id;
  await c.budgetCodes.createBudgetCode({ code: "DISKS", name: "disks", financeCode: "F-2", hardQuotaCents: "100000000", softQuotaCents: "0" });
  for (const u of (await c.users.listUsers({ pageSize: 100 })).users) await c.budgetCodes.grantBudgetCode({ code: "DISKS", userId: u.id });
}, 120_000);

afterAll(async () => {
  c?.close();
  await p?.stop("SIGTERM").catch(() => undefined);
  await killStrayDispatchers();
  for (const pid of pids) if (pidAlive(pid)) process.kill(pid, "SIGKILL");
  await t?.cleanup();
});

/** An agent server, RUNNING with its agent registered. */
async function agentServer(imageId = "agent"): Promise<string> {
  const { job, server } = await c.servers.launchServer({ accountId: account, regionId: "local", dataCenter: "", productId: "small", imageId, name: "", budgetCode: "DISKS", idempotencyKey: "" });
  await succeeded(job);
  const running = (await c.servers.getServer({ id: server!.id })).server!;
  pids.add(Number(running.details.pid));
  await until(async () => (await c.agents.getServerAgent({ serverId: server!.id }).catch(() => null))?.agent, 20_000, "the agent to register");
  return server!.id;
}

/** Runs a shell command on the server through its agent, in the guest's root (its working directory); its stdout. */
async function sh(serverId: string, script: string): Promise<string> {
  const { job } = await c.agents.runServerScript({ serverId, command: "sh", args: ["-c", script], env: {}, idempotencyKey: "" });
  const ran = await succeeded(job);
  expect(ran.result).toMatchObject({ exitCode: 0 });
  return String((ran.result as { stdout?: unknown }).stdout ?? "");
}

describe("storage under dispatcher start", () => {
  it("a volume's file reaches a second server through a snapshot, an image carries a server's root, and deleting leaves nothing", async () => {
    // The volume through the CLI, as an operator would.
    const created = await runCli(t.address, token, ["volumes", "create", "--account", account, "--region", "local", "--size", "1", "--name", "data", "--budget-code", "DISKS", "--wait", "--json"]);
    expect(created.code, created.err + created.out).toBe(0);
    const volumeId = (JSON.parse(created.out.split("\n")[0] as string) as { volume: { info: { id: string } } }).volume.info.id;

    // Launched with the volume: its attach job waits for the server, and is done when the volume is seen attached.
    const launched = await c.servers.launchServer({ accountId: account, regionId: "local", dataCenter: "", productId: "small", imageId: "agent", name: "", budgetCode: "DISKS", idempotencyKey: "first", volumes: [{ device: "/dev/sdf", volumeId, sizeGib: 0, volumeType: "", snapshotId: "" }] });
    expect(launched.volumeJobs.map((j) => j.resource?.id)).toEqual([volumeId]);
    await succeeded(launched.job);
    await succeeded(launched.volumeJobs[0]);
    const first = launched.server!.id;
    pids.add(Number((await c.servers.getServer({ id: first })).server!.details.pid));
    await until(async () => (await c.agents.getServerAgent({ serverId: first }).catch(() => null))?.agent, 20_000, "the agent to register");
    expect((await c.volumes.getVolume({ id: volumeId })).volume).toMatchObject({ info: { state: "IN_USE" }, attachment: { serverId: first, device: "/dev/sdf" } });
    await sh(first, 'echo "written on the first server" > mnt/sdf/hello.txt && echo first-root > root-marker.txt');
    const refused = await runCli(t.address, token, ["volumes", "delete", volumeId]);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain(`FAILED_PRECONDITION: volume ${volumeId} is attached to server ${first} as /dev/sdf: detach it first`);

    const snap = await c.snapshots.createSnapshot({ volumeId, name: "with-hello", description: "", budgetCode: "DISKS", tags: {}, idempotencyKey: "" });
    await succeeded(snap.job);
    const copy = await c.volumes.createVolume({ accountId: account, regionId: "local", name: "copy", sizeGib: 1, volumeType: "", dataCenter: "", snapshotId: snap.snapshot!.info!.id, budgetCode: "DISKS", tags: {}, idempotencyKey: "" });
    await succeeded(copy.job);
    const second = await agentServer();
    const attached = await runCli(t.address, token, ["volumes", "attach", copy.volume!.info!.id, "--server", second, "--device", "/dev/sdg", "--wait"]);
    expect(attached.code, attached.err + attached.out).toBe(0);
    expect(await sh(second, 'cat mnt/sdg/hello.txt')).toBe("written on the first server\n");

    const image = await c.images.createImage({ serverId: first, name: "first-root", description: "", budgetCode: "DISKS", tags: {}, idempotencyKey: "" });
    await succeeded(image.job);
    const third = await agentServer(image.image!.info!.id);
    expect(await sh(third, 'cat root-marker.txt')).toBe("first-root\n");
    // Volumes are not part of an image: the third server has no mount of the first one's.
    expect(await sh(third, 'ls mnt 2>/dev/null | wc -l')).toBe("0\n");

    // Delete everything: detach, delete the volumes, the snapshot and the image, terminate the servers.
    await succeeded((await c.volumes.detachVolume({ id: volumeId, idempotencyKey: "" })).job);
    await succeeded((await c.volumes.detachVolume({ id: copy.volume!.info!.id, idempotencyKey: "" })).job);
    for (const id of [volumeId, copy.volume!.info!.id]) await succeeded((await c.volumes.deleteVolume({ id, idempotencyKey: "" })).job);
    await succeeded((await c.snapshots.deleteSnapshot({ id: snap.snapshot!.info!.id, idempotencyKey: "" })).job);
    const deregistered = await runCli(t.address, token, ["images", "delete", image.image!.info!.id, "--wait"]);
    expect(deregistered.code, deregistered.err + deregistered.out).toBe(0);
    for (const id of [first, second, third]) await succeeded((await c.servers.terminateServer({ id, idempotencyKey: "" })).job);

    const listed = await c.volumes.listVolumes({ accountId: account, regionId: "", tags: {}, includeDeleted: false, pageSize: 100, pageToken: "" });
    expect(listed.volumes).toEqual([]);
    expect((await c.images.listMachineImages({ accountId: account, regionId: "local", ownOnly: true, includeDeleted: false, pageSize: 100, pageToken: "" })).images).toEqual([]);
    const root = join(t.dir, "local-cloud");
    const accountDir = join(root, readdirSync(root).find((d) => /^[0-9a-f]{16}$/.test(d)) as string);
    const left = (sub: string) => (existsSync(join(accountDir, sub)) ? readdirSync(join(accountDir, sub)) : []);
    expect({ storage: left("storage"), volumes: left("volumes"), snapshots: left("snapshots"), images: left("images") }).toEqual({ storage: [], volumes: [], snapshots: [], images: [] });
    // The volume's history tells the story.
    const { events } = await c.volumes.listVolumeEvents({ id: volumeId, pageSize: 100, pageToken: "" });
    expect(events.filter((e) => e.type === "STATE_CHANGED").map((e) => e.toState)).toEqual(["AVAILABLE", "IN_USE", "AVAILABLE", "DELETED"]);
  }, 300_000);
});
