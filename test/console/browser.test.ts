// The operations console in a real browser: Debian's Chromium driven by Playwright against a real `dispatcher start`
// (the console built from this tree into a directory of the test's own). A wrong key is refused; a user signs in with
// an API key, finds the job of a server launched on the local cloud, opens it, and sees the job's trace drawn as a
// waterfall holding the RPC, worker and driver spans; a running job's page follows it to its end without a reload
// (WatchJob); the servers page shows the server with its agent. Screenshots of each step go to test-artifacts/console/
// (ignored by git).
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killLocalServers } from "../../src/clouds/local/cleanup.js";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { DiagnosticOutcome, JobState } from "../../src/gen/proto/dispatcher/v1/jobs.js";
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
const launched = { jobId: "", serverId: "" };

const shot = (name: string): Promise<Buffer> => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

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
  expect((await jobEnd(c, job, 90_000)).state).toBe(JobState.JOB_STATE_SUCCEEDED);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
}, 300_000);

afterAll(async () => {
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
    expect(await page.locator(".events-table").textContent()).toContain("succeeded");
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
    await shot("5-servers");
    await page.goto(`http://127.0.0.1:${t.ports.console}/#/budgets`);
    await page.locator('tr[data-budget-code="UI"]').waitFor({ timeout: 15_000 });
    await shot("6-budgets");
  }, 60_000);
});
