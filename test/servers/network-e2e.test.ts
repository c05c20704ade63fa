// Acceptance of launch options on the real local cloud, under one `dispatcher start` (the quick start), driven through
// the `dispatcher` command line where a user would: a firewall allowing TCP on the agent's port from 127.0.0.0/8, a
// static address, an imported key; an agent server launched with them, a tag and a user-data script that writes a
// marker. Through the agent, the marker and the key are in the guest; the allowed port answers on the server's static
// address and a port no rule opens is refused; once the rule is removed the allowed port is refused too. Then
// disassociate, release, terminate and delete clean up; each resource's history tells the story, and each job's
// stored spans are one trace. The user data and the private half of the key appear in no output of the process.
import { writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { generateKeyPair } from "../../src/clouds/ssh-keys.js";
import { JobState, type Job } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { AccountStatus } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import { ServerState } from "../../src/gen/proto/dispatcher/v1/servers.js";
import { bootstrapToken, createTestEnv, jobEnd, killStrayDispatchers, pidAlive, runDispatcher, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";
import { until } from "../support/poll.js";

let t: TestEnv;
let p: DispatcherProcess;
let c: DispatcherClients;
let account: string;
let token: string;
const pids = new Set<number>();
const AGENT_PORT = 2003;

const finished = (job: Job | undefined, timeoutMs?: number): Promise<Job> => jobEnd(c, job, timeoutMs);

/** Whether a TCP connection to ip:port is accepted (true) or refused (false). */
function reachable(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: ip, port, timeout: 3_000 });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
    s.once("timeout", () => {
      s.destroy();
      resolve(false);
    });
  });
}

/** Runs the CLI against the dispatcher; the JSON lines it printed. */
async function cli(args: string[]): Promise<Array<Record<string, unknown>>> {
  const r = await runDispatcher([...args, "--json"], t.with({ DISPATCHER_CLIENT_TOKEN: token }), 90_000);
  expect(r.code, `${args.join(" ")}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
}

type JsonJob = { id: string; state: string; kind: string };
const lastJob = (lines: Array<Record<string, unknown>>): JsonJob => (lines.at(-1)!.job as JsonJob);

beforeAll(async () => {
  t = await createTestEnv({ label: "net_e2e" });
  p = await startDispatcher(t, ["start"], { env: t.with({ DISPATCHER_LOCAL_CLOUD_STOP_GRACE_MS: "2000", DISPATCHER_AGENT_PING_INTERVAL_MS: "1000" }), timeoutMs: 60_000 });
  token = bootstrapToken(p) ?? "";
  if (!token) throw new Error(`no admin token printed\n${p.output()}`);
  c = createDispatcherClients({ address: t.address, token, retry: false });
  account = (await until(async () => (await c.accounts.listAccounts({ pageSize: 100 })).accounts.find((a) => a.name === "local" && a.status === AccountStatus.ACCOUNT_STATUS_ACTIVE), 60_000, "the local account")).id;
  await c.budgetCodes.createBudgetCode({ code: "NETE2E", name: "network e2e", financeCode: "F-1", hardQuotaCents: "100000000", softQuotaCents: "0" });
  for (const u of (await c.users.listUsers({ pageSize: 100 })).users) await c.budgetCodes.grantBudgetCode({ code: "NETE2E", userId: u.id });
}, 120_000);

afterAll(async () => {
  c?.close();
  await p?.stop("SIGTERM").catch(() => undefined);
  await killStrayDispatchers();
  for (const pid of pids) if (pidAlive(pid)) process.kill(pid, "SIGKILL");
  await t?.cleanup();
});

describe("a server launched with a firewall, a static address, a key, a tag and user data on the local cloud", () => {
  it("is reachable only as its firewall allows, has the marker and the key, and cleans up with every history telling the story", async () => {
    const subs = (await c.accounts.listSubscriptions({ accountId: account })).subscriptions.filter((s) => s.regionId === "local").map((s) => s.capability);
    expect(subs).toEqual(expect.arrayContaining(["firewalls", "static_addresses", "key_pairs"]));

    // The network, through the CLI, each command waiting for its job.
    // The account by its name (the quick start's `local`) as well as by its id.
    const fwLines = await cli(["firewalls", "create", "--account", "local", "--region", "local", "--name", "e2e-agents", "--description", "agents from this machine", "--wait"]);
    const firewallId = (fwLines[0]!.firewall as { info: { id: string } }).info.id;
    expect(lastJob(fwLines).state).toBe("JOB_STATE_SUCCEEDED");
    expect(lastJob(await cli(["firewalls", "add-rule", firewallId, "--protocol", "tcp", "--port", String(AGENT_PORT), "--cidr", "127.0.0.0/8", "--description", "agent", "--wait"])).state).toBe("JOB_STATE_SUCCEEDED");
    const adLines = await cli(["addresses", "allocate", "--account", account, "--region", "local", "--name", "e2e-ip", "--budget-code", "NETE2E", "--wait"]);
    const addressId = (adLines[0]!.address as { info: { id: string } }).info.id;
    expect(lastJob(adLines).state).toBe("JOB_STATE_SUCCEEDED");
    const key = generateKeyPair("ed25519", "e2e@test");
    const pubFile = join(t.dir, "e2e.pub");
    writeFileSync(pubFile, key.publicKey);
    const kpLines = await cli(["keys", "import", "--account", "local", "--region", "local", "--name", "e2e-key", "--public-key-file", pubFile, "--wait"]);
    const keyId = (kpLines[0]!.keyPair as { info: { id: string } }).info.id;
    expect(lastJob(kpLines).state).toBe("JOB_STATE_SUCCEEDED");
    const ip = (await c.addresses.getAddress({ id: addressId })).address!.ip;
    expect(ip).toMatch(/^127\./);

    // The launch: the agent image with all of it; --wait ends when it runs with the address associated.
    const marker = `marker-${Date.now()}`;
    const userData = join(t.dir, "user-data.sh");
    writeFileSync(userData, `#!/bin/sh\necho ${marker} > marker.txt\n`);
    const launched = await cli(["servers", "launch", "--account", account, "--region", "local", "--product", "small", "--image", "agent", "--name", "e2e-agent", "--budget-code", "NETE2E", "--firewall", firewallId, "--key", keyId, "--address", addressId, "--user-data-file", userData, "--tag", "role=e2e", "--wait"]);
    const launchJob = lastJob(launched);
    expect(launchJob.state, JSON.stringify(launched.at(-1))).toBe("JOB_STATE_SUCCEEDED");
    const serverId = (launched[0]!.server as { id: string }).id;
    const server = (await c.servers.getServer({ id: serverId })).server!;
    pids.add(Number(server.details.pid));
    expect(server).toMatchObject({ state: ServerState.SERVER_STATE_RUNNING, tags: { role: "e2e" } });
    expect(server.addresses!.public).toContain(ip);
    expect((await c.addresses.getAddress({ id: addressId })).address).toMatchObject({ info: { state: "ASSOCIATED" }, serverId });

    // Through the agent (its scripts run in the guest's root, the login user's home): the marker the user data wrote,
    // and the key in the login user's authorized_keys.
    await until(async () => (await c.agents.getServerAgent({ serverId }).catch(() => null))?.agent, 20_000, "the agent to register");
    const run = async (script: string): Promise<string> => {
      const ran = await finished((await c.agents.runServerScript({ serverId, command: "sh", args: ["-c", script], env: {}, idempotencyKey: "" })).job, 30_000);
      expect(ran.state, JSON.stringify(ran.error)).toBe(JobState.JOB_STATE_SUCCEEDED);
      return String((ran.result as { stdout?: unknown }).stdout ?? "");
    };
    expect(await until(async () => ((await run("cat marker.txt 2>/dev/null || true")).includes(marker) ? true : null), 15_000, "the user data's marker")).toBe(true);
    expect(await run("cat .ssh/authorized_keys")).toContain(key.publicKey.split(" ").slice(0, 2).join(" "));

    // The firewall: the agent's port answers on the static address; a port no rule opens is refused.
    expect(await reachable(ip, AGENT_PORT)).toBe(true);
    expect(await reachable(ip, AGENT_PORT + 1)).toBe(false);
    expect(await reachable(ip, 22)).toBe(false);
    const removed = await cli(["firewalls", "remove-rule", firewallId, "--protocol", "tcp", "--port", String(AGENT_PORT), "--cidr", "127.0.0.0/8", "--wait"]);
    expect(lastJob(removed).state).toBe("JOB_STATE_SUCCEEDED");
    expect(await until(async () => ((await reachable(ip, AGENT_PORT)) ? null : true), 10_000, "the agent's port to be refused once its rule is gone")).toBe(true);

    // Clean up: disassociate, release, terminate, delete the key and the firewall.
    const jobs: JsonJob[] = [launchJob];
    for (const args of [["addresses", "disassociate", addressId], ["addresses", "release", addressId], ["servers", "terminate", serverId], ["keys", "delete", keyId], ["firewalls", "delete", firewallId]]) {
      const j = lastJob(await cli([...args, "--wait"]));
      expect(j.state, args.join(" ")).toBe("JOB_STATE_SUCCEEDED");
      jobs.push(j);
    }
    expect(pidAlive(Number(server.details.pid))).toBe(false);
    expect(await reachable(ip, AGENT_PORT)).toBe(false);

    // Each resource's history, oldest first.
    const types = async (list: Promise<{ events: Array<{ type: string; toState: string; jobId: string; message: string }> }>) => (await list).events;
    const fwEvents = await types(c.firewalls.listFirewallEvents({ id: firewallId, pageSize: 200, pageToken: "" }));
    expect(fwEvents.map((e) => e.message).join("\n")).toMatch(/rule added[\s\S]*launched in this firewall[\s\S]*rule removed/);
    expect(fwEvents.at(-1)!.toState).toBe("DELETED");
    const adEvents = await types(c.addresses.listAddressEvents({ id: addressId, pageSize: 200, pageToken: "" }));
    expect(adEvents.filter((e) => e.type === "STATE_CHANGED").map((e) => e.toState)).toEqual(["ALLOCATED", "ASSOCIATED", "ALLOCATED", "DELETED"]);
    expect(adEvents.find((e) => e.toState === "ASSOCIATED")!.jobId).toBe(launchJob.id);
    const kpEvents = await types(c.keyPairs.listKeyPairEvents({ id: keyId, pageSize: 200, pageToken: "" }));
    expect(kpEvents.map((e) => e.message).join("\n")).toContain(`server ${serverId} launched with this key pair`);
    expect(kpEvents.at(-1)!.toState).toBe("DELETED");
    const srvEvents = (await c.servers.listServerEvents({ id: serverId, pageSize: 500 })).events;
    expect(srvEvents.map((e) => e.type)).toEqual(expect.arrayContaining(["LAUNCH_REQUESTED", "ADDRESS_ASSOCIATION_SENT", "ADDRESS_ASSOCIATED", "AGENT_REGISTERED", "TERMINATE_REQUESTED"]));

    // Each job is one trace: the stored spans of its trace carry its handling, all under the job's trace id.
    for (const j of jobs) {
      const job = (await c.jobs.getJob({ id: j.id })).job!;
      const trace = await until(async () => {
        const tr = await c.traces.getJobTrace({ jobId: j.id });
        return tr.spans.some((s) => s.name === `job.handle ${job.kind}`) ? tr : null;
      }, 10_000, `the spans of ${job.kind} ${j.id}`);
      expect(trace.traceId).toBe(job.traceId);
      const ofJob = trace.spans.filter((s) => s.attributes["job.id"] === j.id);
      expect(ofJob.length, job.kind).toBeGreaterThan(0);
    }

    // The script and the user's key stay out of everything the process printed (service log included).
    expect(p.output()).not.toContain(marker);
    expect(p.output()).not.toContain(key.privateKey.split("\n")[1]!);
  }, 300_000);
});
