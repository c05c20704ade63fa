// The operations console in a real browser: Debian's Chromium driven by Playwright against a real `dispatcher start`
// (the console built from this tree into a directory of the test's own). A wrong key is refused; a user signs in with
// an API key, finds the job of a server launched on the local cloud, opens it, and sees the job's trace drawn as a
// waterfall holding the RPC, worker and driver spans; a running job's page follows it to its end without a reload
// (WatchJob); the servers page shows the server with its agent, the fleet's counts, and filters by agent state. On the queues page an operator replays the dead letter
// of an agent command that could not reach its stopped server; a reader sees that page without any replay control,
// and the API refuses the reader's replay anyway. Screenshots of each step go to test-artifacts/console/ (ignored by git).
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { status } from "@grpc/grpc-js";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killLocalServers } from "../../src/clouds/local/cleanup.js";
import { createDispatcherClients, DispatcherError, type DispatcherClients } from "../../src/client/index.js";
import { DiagnosticOutcome, JobState } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { UserKind } from "../../src/gen/proto/dispatcher/v1/iam.js";
import { AccountStatus } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import { until } from "../support/poll.js";
import { bootstrapToken, createTestEnv, jobEnd, killStrayDispatchers, ROOT, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";

const CHROMIUM = "/usr/bin/chromium";
/** Without the networking flags Chromium stalls on a closed network; --no-sandbox because CI runs as root. */
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const ARTIFACTS = join(ROOT, "test-artifacts", "console");

let t: TestEnv;
let p: DispatcherProcess;
let c: DispatcherClients;
let token = "";
let dist = "";
let browser: Browser;
let page: Page;
const launched = { jobId: "", serverId: "", accountId: "" };

const shot = (name: string, on: Page = page): Promise<Buffer> => on.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
const opened: DispatcherClients[] = [];
const clientFor = (key: string): DispatcherClients => {
  const client = createDispatcherClients({ address: t.address, token: key, retry: false });
  opened.push(client);
  return client;
};

/** A tab of its own (its own sessionStorage), signed in with `key`. */
async function signedIn(key: string): Promise<Page> {
  const tab = await (await browser.newContext({ viewport: { width: 1366, height: 768 } })).newPage();
  await tab.goto(`http://127.0.0.1:${t.ports.console}/`);
  await tab.getByLabel("API key").fill(key);
  await tab.getByRole("button", { name: "Sign in" }).click();
  await tab.getByTestId("principal").waitFor({ timeout: 15_000 });
  return tab;
}

/** A user with one role, in a group that may use `accountId`, and an API key of theirs. */
async function userWithRole(role: string, accountId: string): Promise<string> {
  const { user } = await c.users.createUser({ email: `${role}@console.test`, name: `Console ${role}`, kind: UserKind.USER_KIND_USER, roles: [role] });
  const { group } = await c.groups.createGroup({ name: `console-${role}s`, description: `${role}s of the local account`, roles: [role] });
  const member = await c.groups.addGroupMember({ groupId: group?.id ?? "", userId: user?.id ?? "" });
  await c.groups.setGroupAccounts({ groupId: group?.id ?? "", etag: member.group?.etag ?? "", accountIds: [accountId] });
  return (await c.apiKeys.createApiKey({ userId: user?.id ?? "", name: `console ${role}` })).secret;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  dist = mkdtempSync(join(tmpdir(), "console-dist-"));
  await promisify(execFile)(process.execPath, [join(ROOT, "scripts", "build-console.mjs"), "--out-dir", dist], { cwd: ROOT, timeout: 240_000 });

  t = await createTestEnv({ label: "console", env: { DISPATCHER_CONSOLE_DIR: dist } });
  p = await startDispatcher(t, ["start"], { timeoutMs: 90_000 });
  token = bootstrapToken(p) ?? "";
  if (!token) throw new Error(`no admin token printed\n${p.output()}`);
  c = createDispatcherClients({ address: t.address, token, retry: false });
  const account = await until(async () => (await c.accounts.listAccounts({ pageSize: 100 })).accounts.find((a) => a.name === "local" && a.status === AccountStatus.ACCOUNT_STATUS_ACTIVE), 60_000, "the local account to be discovered");
  await c.budgetCodes.createBudgetCode({ code: "UI", name: "console test", financeCode: "F-1", hardQuotaCents: "100000", softQuotaCents: "50000" });
  const { users } = await c.users.listUsers({ pageSize: 100 });
  for (const u of users) await c.budgetCodes.grantBudgetCode({ code: "UI", userId: u.id });
  const { job, server } = await c.servers.launchServer({ accountId: account.id, regionId: "local", productId: "small", imageId: "agent", name: "console-demo", budgetCode: "UI" });
  launched.jobId = job?.id ?? "";
  launched.serverId = server?.id ?? "";
  launched.accountId = account.id;
  expect((await jobEnd(c, job, 90_000)).state).toBe(JobState.JOB_STATE_SUCCEEDED);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
}, 300_000);

afterAll(async () => {
  for (const client of opened) client.close();
  await browser?.close();
  c?.close();
  await p?.stop("SIGTERM").catch(() => undefined);
  await killStrayDispatchers();
  if (t) await killLocalServers(t.dir);
  await t?.cleanup();
  if (dist) rmSync(dist, { recursive: true, force: true });
});

describe("the operations console in Chromium", () => {
  it("signs in with an API key, kept in the tab and never in the URL", async () => {
    await page.goto(`http://127.0.0.1:${t.ports.console}/`);
    // A wrong key is refused with the server's own status, through the bridge.
    await page.getByLabel("API key").fill("dsp_not-a-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor({ timeout: 15_000 });
    expect(await page.getByRole("alert").textContent()).toContain("UNAUTHENTICATED");
    await page.getByLabel("API key").fill(token);
    await shot("1-sign-in");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("principal").waitFor({ timeout: 15_000 });
    expect(await page.locator(".who .roles").textContent()).toContain("admin");
    expect(page.url()).not.toContain(token);
    // Evaluated in the page (a string: this file is compiled without the DOM's types).
    expect(await page.evaluate("Object.values(sessionStorage)")).toContain(token);
    expect(await page.evaluate("Object.values(localStorage)")).not.toContain(token);
    expect(await page.evaluate("document.cookie")).toBe("");
  }, 30_000);

  it("finds the launched server's job among the jobs, filtered by kind", async () => {
    await page.goto(`http://127.0.0.1:${t.ports.console}/#/jobs?kind=server.launch`);
    const row = page.locator(`tr[data-job-id="${launched.jobId}"]`);
    // Only the launch is a server.launch job: the rest of the quick start's jobs (discovery, syncs) are filtered out.
    await expect.poll(() => page.locator("tr[data-job-id]").count(), { timeout: 15_000 }).toBe(1);
    await row.waitFor({ timeout: 15_000 });
    expect(await row.textContent()).toContain("SUCCEEDED");
    await shot("2-jobs");
    await row.click();
    await page.waitForURL(`**/#/jobs/${launched.jobId}`);
  }, 30_000);

  it("opens the job and sees its trace as a waterfall holding the RPC, worker and driver spans", async () => {
    const waterfall = page.getByTestId("waterfall");
    await waterfall.waitFor({ timeout: 20_000 });
    for (const category of ["rpc", "worker", "driver"]) {
      await expect.poll(() => waterfall.locator(`.span-row[data-category="${category}"]`).count(), { timeout: 15_000, message: `${category} spans` }).toBeGreaterThan(0);
    }
    const names = await waterfall.locator(".span-row").evaluateAll((rows) => rows.map((r) => `${r.getAttribute("data-category")} ${r.getAttribute("data-span-name")}`));
    expect(names.some((n) => /^rpc .*ServerService\/LaunchServer$/.test(n)), names.join("\n")).toBe(true);
    expect(names.some((n) => n.startsWith("driver driver.local.")), names.join("\n")).toBe(true);
    expect(names).toContain("worker job.handle server.launch");
    // The job's events, from created to succeeded.
    // The events arrive in their own call after the page renders: wait for them, not for the table's header.
    await expect.poll(() => page.locator(".events-table").textContent(), { timeout: 15_000, message: "the job's events" }).toContain("succeeded");
    await waterfall.locator('.span-row[data-category="driver"]').first().click();
    await page.getByTestId("span-details").waitFor();
    expect(await page.getByTestId("span-details").textContent()).toContain("cloud.driver");
    await shot("3-job-trace");
  }, 60_000);

  it("follows a running job live: its state and events change on the page without a reload", async () => {
    const { job } = await c.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED, sleep: { seconds: "4", nanos: 0 } });
    await page.goto(`http://127.0.0.1:${t.ports.console}/#/jobs/${job?.id}`);
    const state = page.locator(".page-header h1 .badge");
    await expect.poll(() => state.textContent(), { timeout: 15_000 }).toMatch(/QUEUED|RUNNING/);
    const navigations: string[] = [];
    page.on("framenavigated", (f) => navigations.push(f.url()));
    await expect.poll(() => state.textContent(), { timeout: 30_000, message: "the job to succeed on the page" }).toBe("SUCCEEDED");
    // Every event, in order, without a gap between the history read and the stream.
    await expect.poll(async () => (await page.locator(".events-table tbody tr td:first-child").allTextContents()).map(Number), { timeout: 10_000 }).toEqual(
      (await c.jobs.listJobEvents({ id: job?.id })).events.map((e) => Number(e.sequence)),
    );
    // The trace is read again once the job's last spans have ended.
    await page.locator('[data-testid="waterfall"] [data-span-name="job.complete"]').waitFor({ timeout: 15_000 });
    expect(navigations).toEqual([]);
    await shot("4-job-live");
  }, 60_000);

  it("shows the server with its agent's presence", async () => {
    await page.goto(`http://127.0.0.1:${t.ports.console}/#/servers`);
    const row = page.locator(`tr[data-server-id="${launched.serverId}"]`);
    await row.waitFor({ timeout: 15_000 });
    expect(await row.textContent()).toContain("RUNNING");
    await expect.poll(async () => row.textContent(), { timeout: 30_000, message: "the agent to connect" }).toContain("CONNECTED");
    // The fleet's counts come from FleetSummary, the whole scope's, not from the page.
    await expect.poll(async () => page.getByTestId("fleet-summary").textContent(), { timeout: 15_000 }).toMatch(/^\d+ running of \d+ · agents: [1-9]\d* connected, 0 unreachable, \d+ pending$/);
    await shot("5-servers");
    // Filtered by agent state (kept in the URL): no unreachable agent, then back to those connected.
    await page.locator('select[name="agent"]').selectOption("unreachable");
    await page.getByText("No servers whose agent is unreachable.").waitFor({ timeout: 15_000 });
    expect(page.url()).toContain("#/servers?agent=unreachable");
    await page.locator('select[name="agent"]').selectOption("connected");
    await page.locator(`tr[data-server-id="${launched.serverId}"]`).waitFor({ timeout: 15_000 });
    await page.goto(`http://127.0.0.1:${t.ports.console}/#/budgets`);
    await page.locator('tr[data-budget-code="UI"]').waitFor({ timeout: 15_000 });
    await shot("6-budgets");
  }, 60_000);

  it("lets an operator replay a dead letter from the queues page; a reader sees no replay control and the API refuses it", async () => {
    // Commands for a server whose agent is gone: each attempt finds the agent unreachable, the last leaves a dead letter.
    expect((await jobEnd(c, (await c.servers.stopServer({ id: launched.serverId })).job, 60_000)).state).toBe(JobState.JOB_STATE_SUCCEEDED);
    const operatorKey = await userWithRole("operator", launched.accountId);
    const readerKey = await userWithRole("reader", launched.accountId);
    const operator = clientFor(operatorKey);
    const jobIds: string[] = [];
    for (const name of ["first", "second"]) jobIds.push((await operator.agents.runServerScript({ serverId: launched.serverId, command: "echo", args: [name] })).job?.id ?? "");
    for (const id of jobIds) expect((await jobEnd(operator, (await operator.jobs.getJob({ id })).job, 90_000)).state).toBe(JobState.JOB_STATE_FAILED);
    const letters = await until(async () => {
      const all = (await operator.queues.listDeadLetters({})).deadLetters.filter((d) => jobIds.includes(d.jobId));
      return all.length === 2 ? all : undefined;
    }, 15_000, "both dead letters");
    const [replayed, kept] = [letters.find((d) => d.jobId === jobIds[0]), letters.find((d) => d.jobId === jobIds[1])];

    const op = await signedIn(operatorKey);
    await op.goto(`http://127.0.0.1:${t.ports.console}/#/queues`);
    await op.getByTestId("outbox").waitFor({ timeout: 15_000 });
    const row = op.locator(`tr[data-dead-letter-id="${replayed?.id}"]`);
    await row.waitFor({ timeout: 15_000 });
    expect(await row.textContent()).toContain("agent.run_script");
    await shot("7-queues-operator", op);
    await row.getByRole("button", { name: "Replay" }).click();
    await op.getByTestId("replay-outcome").waitFor({ timeout: 15_000 });
    expect(await op.getByTestId("replay-outcome").textContent()).toContain("queued again");
    // Replayed: gone from the waiting list, the job running again with fresh attempts.
    await row.waitFor({ state: "detached", timeout: 15_000 });
    const again = (await operator.jobs.getJob({ id: jobIds[0] })).job;
    expect([JobState.JOB_STATE_QUEUED, JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_FAILED]).toContain(again?.state);
    expect((await operator.jobs.listJobEvents({ id: jobIds[0] })).events.map((e) => e.type)).toContain("retried");
    await shot("8-queues-replayed", op);
    await op.context().close();

    const reader = await signedIn(readerKey);
    await reader.goto(`http://127.0.0.1:${t.ports.console}/#/queues`);
    const keptRow = reader.locator(`tr[data-dead-letter-id="${kept?.id}"]`);
    await keptRow.waitFor({ timeout: 15_000 });
    expect(await reader.locator("button.replay").count()).toBe(0);
    expect(await reader.getByRole("button", { name: "Replay" }).count()).toBe(0);
    await shot("9-queues-reader", reader);
    await reader.context().close();
    const refused = await clientFor(readerKey).queues.replayDeadLetter({ id: kept?.id ?? "" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DispatcherError);
    expect((refused as DispatcherError).code).toBe(status.PERMISSION_DENIED);
    expect((await operator.queues.listDeadLetters({})).deadLetters.map((d) => d.id)).toContain(kept?.id);
  }, 180_000);
});
