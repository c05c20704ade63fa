// The canary of the embedded span store: secrets that cross a real `dispatcher start` — a canary credential handed to
// CreateAccount (through KM to a worker and the local driver, which refuses it), the local account's key (KM, worker,
// driver on every launch and check), the caller's API key, a launched server's join token and agent credential, and a
// canary in a script's environment run through the agent (RunServerScript, and a fleet command's), the launch's user
// data and a created key pair's private key — appear in no span that the dispatcher keeps and serves through
// TraceService, whose answers for every job are read here in full, nor in its metrics (/metrics on the metrics port,
// read after the same work), nor in the audit trail (its API answers and its table in a database dump), which records
// the run's changes with their principal and trace id; the user data, the scripts' environments and the private key
// are also in no service-log line (debug level), request-log line, database row (jobs, job_events, outbox and every
// other table), file the run wrote, or error.
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killLocalServers } from "../../src/clouds/local/cleanup.js";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { JobState, type Job } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { AccountStatus } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import type { AuditEvent } from "../../src/gen/proto/dispatcher/v1/audit.js";
import { GetJobTraceResponse } from "../../src/gen/proto/dispatcher/v1/traces.js";
import { KeyType } from "../../src/gen/proto/dispatcher/v1/network.js";
import { dumpDatabase } from "../km/support.js";
import { until } from "../support/poll.js";
import { bootstrapToken, createTestEnv, jobEnd, killStrayDispatchers, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";

const CANARY = `canary-${randomBytes(16).toString("hex")}`;
const SCRIPT_CANARY = `script-canary-${randomBytes(16).toString("hex")}`;
const USER_DATA_CANARY = `user-data-canary-${randomBytes(16).toString("hex")}`;
const FLEET_CANARY = `fleet-canary-${randomBytes(16).toString("hex")}`;
/** The body of the private key CreateKeyPair answered (its second line: key material, not the PEM header). */
let privateKeyLine = "";
/** What a refused launch answered (its user data over the limit). */
let refusal = "";
const forms = (secret: string): string[] => [secret, Buffer.from(secret).toString("base64"), Buffer.from(secret).toString("base64url"), Buffer.from(secret).toString("hex")];

let t: TestEnv;
let p: DispatcherProcess;
let c: DispatcherClients;
let token = "";
/** Every job's GetJobTrace answer, as JSON. */
let served = "";
/** The process's metrics exposition after all of it. */
let metrics = "";
const jobs: Job[] = [];
/** The audit trail as the API answers it, and the provisioning database dumped whole (one `table.column=value` a line). */
let audit: AuditEvent[] = [];
let provisioningDump = "";
/** A key made through CreateApiKey and a key pair's private key: secrets the audited calls handed back. */
let apiKeySecret = "";
let privateKey = "";
let canaryAccountId = "";
let canaryTraceId = "";
let adminId = "";
let firewallId = "";

beforeAll(async () => {
  t = await createTestEnv({ label: "spancanary", metrics: true, env: { DISPATCHER_LOGGING_LEVEL: "debug" } });
  p = await startDispatcher(t, ["start"], { timeoutMs: 90_000 });
  token = bootstrapToken(p) ?? "";
  if (!token) throw new Error(`no admin token printed\n${p.output()}`);
  c = createDispatcherClients({ address: t.address, token, retry: false });
  const local = await until(async () => (await c.accounts.listAccounts({ pageSize: 100 })).accounts.find((a) => a.name === "local" && a.status === AccountStatus.ACCOUNT_STATUS_ACTIVE), 60_000, "the local account");

  // A credential that goes to KM, then to a worker and the local driver, which refuses it.
  const canaryAccount = await c.accounts.createAccount({ name: "canary", cloudId: local.cloudId, credentials: { type: "local", fields: { key: CANARY } } });
  jobs.push(await jobEnd(c, canaryAccount.validationJob, 60_000));
  canaryAccountId = canaryAccount.account?.id ?? "";
  canaryTraceId = canaryAccount.validationJob?.traceId ?? "";

  // A launch with an agent (join token, agent credential), then a script whose environment holds a canary.
  await c.budgetCodes.createBudgetCode({ code: "CANARY", name: "canary", financeCode: "F-1", hardQuotaCents: "100000", softQuotaCents: "0" });
  const { users } = await c.users.listUsers({ pageSize: 100 });
  for (const u of users) await c.budgetCodes.grantBudgetCode({ code: "CANARY", userId: u.id });
  const userData = `#!/bin/sh\nexport TOKEN=${USER_DATA_CANARY}\necho ok > user-data.ran\n`;
  const launch = await c.servers.launchServer({ accountId: local.id, regionId: "local", productId: "small", imageId: "agent", name: "canary", budgetCode: "CANARY", userData });
  refusal = await c.servers.launchServer({ accountId: local.id, regionId: "local", productId: "small", imageId: "agent", budgetCode: "CANARY", userData: `${userData}#${"x".repeat(13_000)}` }).then(() => "accepted", (e: unknown) => JSON.stringify(e) + String((e as Error).message));
  const made = await c.keyPairs.createKeyPair({ accountId: local.id, regionId: "local", name: "canary-key", keyType: KeyType.KEY_TYPE_ED25519 });
  privateKeyLine = made.privateKey.split("\n")[1] ?? "";
  jobs.push(await jobEnd(c, made.job, 60_000));
  jobs.push(await jobEnd(c, launch.job, 90_000));
  const serverId = launch.server?.id ?? "";
  await until(async () => (await c.agents.getServerAgent({ serverId }).catch(() => null))?.agent, 60_000, "the agent to register");
  const script = await c.agents.runServerScript({ serverId, command: "sh", args: ["-c", "test -n \"$SECRET\" && echo ok"], env: { SECRET: SCRIPT_CANARY } });
  jobs.push(await jobEnd(c, script.job, 60_000));
  // A fleet command's environment goes through its parent job and a child per server; the child fails (so the fleet
  // does) unless the agent got it, checked against its hash so that the command's arguments do not hold it.
  const fleetCheck = `test "$(printf %s "$SECRET" | sha256sum | cut -c1-64)" = ${createHash("sha256").update(FLEET_CANARY).digest("hex")}`;
  const fleet = await c.agents.runFleetCommand({ serverIds: [serverId], command: "sh", args: ["-c", fleetCheck], env: { SECRET: FLEET_CANARY } });
  jobs.push(await jobEnd(c, fleet.job, 60_000));

  // Every job there is (the local account's discovery and server syncs too), each trace read once its spans are in.
  const all = (await c.jobs.listJobs({ pageSize: 1000 })).jobs;
  const answers: GetJobTraceResponse[] = [];
  for (const job of all) {
    answers.push(await until(async () => {
      const trace = await c.traces.getJobTrace({ jobId: job.id });
      const done = job.state === JobState.JOB_STATE_QUEUED || job.state === JobState.JOB_STATE_RUNNING || trace.spans.some((s) => s.name === "job.complete" || s.name === "job.fail");
      return done ? trace : null;
    }, 20_000, `the last span of job ${job.id} (${job.kind})`).catch(() => c.traces.getJobTrace({ jobId: job.id })));
  }
  served = answers.map((a) => JSON.stringify(GetJobTraceResponse.toJSON(a))).join("\n");

  // Audited changes that hand a secret back to their caller, then the trail and the database it lives in.
  apiKeySecret = (await c.apiKeys.createApiKey({ name: "canary key" })).secret;
  privateKey = (await c.keyPairs.createKeyPair({ accountId: local.id, regionId: "local", name: "canary", keyType: KeyType.KEY_TYPE_ED25519 })).privateKey;
  firewallId = (await c.firewalls.createFirewall({ accountId: local.id, regionId: "local", name: "canary", description: "audited", tags: { team: "canary" } })).firewall?.info?.id ?? "";
  adminId = (await c.system.whoAmI({})).principalId;
  audit = (await c.audit.listAuditEvents({ pageSize: 1000 })).events;
  provisioningDump = await dumpDatabase(t.urls.provisioning);
  metrics = await (await fetch(`http://127.0.0.1:${t.ports.metrics}/metrics`)).text();
}, 300_000);

afterAll(async () => {
  c?.close();
  await p?.stop("SIGTERM").catch(() => undefined);
  await killStrayDispatchers();
  if (t) await killLocalServers(t.dir);
  await t?.cleanup();
});

function expectAbsent(what: string, secret: string): void {
  for (const form of forms(secret)) expect(served.includes(form), `the stored spans contain ${what}${form === secret ? "" : " (encoded)"}`).toBe(false);
}

describe("secrets in the embedded span store", () => {
  it("the jobs ran, and their stored spans cover the paths the secrets took (RPC, KM, worker, driver, agent)", () => {
    expect(jobs.map((j) => j.state)).toEqual([JobState.JOB_STATE_FAILED, JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_SUCCEEDED]);
    expect(served).toContain("AccountService/CreateAccount");
    expect(served).toContain("km.GetCredential");
    expect(served).toContain("KeyManagementService/StoreCredential");
    expect(served).toContain("driver.local.launch");
    expect(served).toContain("AgentRegistrationService/Register");
    expect(served).toContain("agent.v1.AgentService/RunScript");
    expect(served).toContain('"storage":"TRACE_STORAGE_EMBEDDED"');
  });

  it("hold no credential: neither the canary handed to CreateAccount nor the local account's key", () => {
    expectAbsent("the canary credential", CANARY);
    const accountKey = readFileSync(join(t.dir, "local-cloud", "account.key"), "utf8").trim();
    expect(accountKey.length).toBeGreaterThan(20);
    expectAbsent("the local account key", accountKey);
  });

  it("hold no API key, join token or agent credential, and no script environment", () => {
    expectAbsent("the caller's API key", token);
    for (const marker of ["dsp_", "djt_", "dac_"]) expect(served.includes(marker), `the stored spans contain a ${marker}… secret`).toBe(false);
    expectAbsent("the script's environment", SCRIPT_CANARY);
    expectAbsent("the fleet command's environment", FLEET_CANARY);
  });
});

describe("user data and private keys", () => {
  it("are in no stored span, metric, service-log line, request-log line, database row or error", async () => {
    expect(privateKeyLine.length).toBeGreaterThan(20);
    expect(refusal).toContain("INVALID_ARGUMENT");
    expect(served).toContain("job.handle key_pair.import");
    const requestLog = readdirSync(t.logDir).filter((f) => f.endsWith(".request.log")).map((f) => readFileSync(join(t.logDir, f), "utf8")).join("\n");
    expect(requestLog).toContain("LaunchServer");
    expect(p.output()).toContain('"level":"debug"');
    const dumps = await Promise.all(Object.values(t.urls).map((url) => dumpDatabase(url)));
    const places: Array<[string, string]> = [["the stored spans", served], ["the metrics", metrics], ["the service log", p.output()], ["the request log", requestLog], ["a database dump", dumps.join("\n")], ["the refusal", refusal]];
    for (const [where, text] of places) {
      for (const form of forms(USER_DATA_CANARY)) expect(text.includes(form), `${where} contain the user data`).toBe(false);
      expect(text.includes(privateKeyLine), `${where} contain the private key`).toBe(false);
    }
  });
});

describe("scripts' environments", () => {
  it("are in no stored span, metric, service-log line, request-log line, database row or file the run wrote", async () => {
    const dumps = (await Promise.all(Object.values(t.urls).map((url) => dumpDatabase(url)))).join("\n");
    // The rows they would be in are there, with the scripts' jobs: the environments went sealed. (The outbox rows are
    // gone once published, and carry only a job's id, kind and publication number.)
    for (const table of ["jobs", "job_events"]) expect(dumps).toContain(`${table}.`);
    expect(dumps).toContain("agent.fleet_run");
    expect(dumps).toContain("sealedEnv");
    const requestLog = readdirSync(t.logDir).filter((f) => f.endsWith(".request.log")).map((f) => readFileSync(join(t.logDir, f), "utf8")).join("\n");
    expect(requestLog).toContain("RunFleetCommand");
    const files = filesUnder(t.dir);
    expect(files.length).toBeGreaterThan(0);
    const places: Array<[string, string]> = [["the stored spans", served], ["the metrics", metrics], ["the service log", p.output()], ["the request log", requestLog], ["a database dump", dumps], ...files];
    for (const [where, text] of places) {
      for (const [what, secret] of [["RunServerScript's environment", SCRIPT_CANARY], ["the fleet command's environment", FLEET_CANARY]] as const) {
        for (const form of forms(secret)) expect(text.includes(form), `${where} contains ${what}${form === secret ? "" : " (encoded)"}`).toBe(false);
      }
    }
  });
});

/** Every file under `dir` (up to 64 MiB each) as [path, text]: logs, data directory, the local cloud's guests. */
function filesUnder(dir: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    if (!entry.isFile() || statSync(path).size > 64 * 1024 * 1024) continue;
    out.push([path, readFileSync(path, "latin1")]);
  }
  return out;
}

describe("secrets in the metrics", () => {
  it("the exposition covers the same paths (RPCs, KM, the driver, the agent's registration) and holds none of the secrets", () => {
    expect(metrics).toContain('rpc_method="CreateAccount"');
    expect(metrics).toContain('km_method="GetCredential"');
    expect(metrics).toContain('operation="launch"');
    expect(metrics).toContain('rpc_method="Register"');
    const accountKey = readFileSync(join(t.dir, "local-cloud", "account.key"), "utf8").trim();
    for (const [what, secret] of [["the canary credential", CANARY], ["the local account key", accountKey], ["the caller's API key", token], ["the script's environment", SCRIPT_CANARY]] as const) {
      for (const form of forms(secret)) expect(metrics.includes(form), `the metrics contain ${what}`).toBe(false);
    }
    for (const marker of ["dsp_", "djt_", "dac_"]) expect(metrics.includes(marker), `the metrics contain a ${marker}… secret`).toBe(false);
  });
});

describe("secrets in the audit trail", () => {
  it("records the run's changes with their principal, and CreateAccount's with the trace id of its RPC", () => {
    const account = audit.find((e) => e.action === "account.create" && e.objectId === canaryAccountId);
    expect(account).toMatchObject({ principal: adminId, objectType: "account" });
    expect(canaryTraceId).toMatch(/^[0-9a-f]{32}$/);
    expect(account?.traceId).toBe(canaryTraceId);
    const actions = new Set(audit.map((e) => e.action));
    for (const action of ["user.create", "cloud.create", "account.create", "budget_code.create", "budget_code.grant", "api_key.create", "key_pair.import"]) expect(actions, action).toContain(action);
    expect(provisioningDump).toContain("audit_events.action=account.create");
    const firewall = audit.find((e) => e.action === "firewall.create" && e.objectId === firewallId);
    expect(firewall).toMatchObject({ principal: adminId, objectType: "firewall" });
    expect(JSON.parse(firewall?.diffJson ?? "{}")).toMatchObject({ name: { to: "canary" }, accountId: { to: expect.any(String) }, description: { to: "audited" }, tags: { to: { team: "canary" } } });
  });

  it("holds no credential, key, token, private key or script environment: neither its API answers nor its table", () => {
    expect(privateKey).toMatch(/PRIVATE KEY/);
    expect(apiKeySecret).toMatch(/^dsp_/);
    const answers = JSON.stringify(audit);
    const table = provisioningDump.split("\n").filter((l) => l.startsWith("audit_events.")).join("\n");
    const accountKey = readFileSync(join(t.dir, "local-cloud", "account.key"), "utf8").trim();
    const keyBody = privateKey.split("\n").filter((l) => l && !l.startsWith("-----")).join("");
    for (const [what, secret] of [["the canary credential", CANARY], ["the local account key", accountKey], ["the caller's API key", token], ["the API key made", apiKeySecret], ["the private key", keyBody], ["the script's environment", SCRIPT_CANARY]] as const) {
      for (const form of forms(secret)) {
        expect(answers.includes(form), `the audit trail's answers contain ${what}`).toBe(false);
        expect(table.includes(form), `the audit_events table contains ${what}`).toBe(false);
      }
    }
    for (const marker of ["dsp_", "djt_", "dac_"]) expect(table.includes(marker), `the audit_events table holds a ${marker}… secret`).toBe(false);
    // The rest of the provisioning database holds none of them either.
    for (const [what, secret] of [["the canary credential", CANARY], ["the local account key", accountKey], ["the API key made", apiKeySecret], ["the private key", keyBody], ["the script's environment", SCRIPT_CANARY], ["the fleet command's environment", FLEET_CANARY]] as const) {
      for (const form of forms(secret)) expect(provisioningDump.includes(form), `the provisioning database contains ${what}`).toBe(false);
    }
  });
});
