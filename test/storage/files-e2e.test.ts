// Files end to end under one real `dispatcher start`, through the `dispatcher files` command line as a user runs it:
// the local account's region has no object storage at first, so a bucket is refused naming the capability; the
// catalog then gives it, a re-discovery sees it, and the same process serves Files without a restart. A bucket is
// created (--wait), a 50 MB file uploaded with metadata (plain progress lines on a non-terminal stderr), listed,
// downloaded with an equal sha256, deleted with its bucket — and nothing of it is left on disk. The metadata's canary
// comes back to the caller but appears in no log line (debug level), span, request log or database row.
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { AccountStatus } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import { JobState } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { openConnection } from "../../src/db/connect.js";
import { until } from "../support/poll.js";
import { bootstrapToken, createTestEnv, jobEnd, killStrayDispatchers, runDispatcher, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";

const CANARY = `files-canary-${randomBytes(12).toString("hex")}`;
const work = mkdtempSync(join(tmpdir(), "files-e2e-"));
const catalogFile = join(work, "catalog.json");
const region = (capabilities: string[]) => JSON.stringify({ regions: [{ id: "local", name: "This machine", dataCenters: ["local-a"], capabilities }] });
const BASE = ["compute", "block_storage", "networking", "firewalls", "static_addresses", "key_pairs"];

let t: TestEnv;
let p: DispatcherProcess;
let c: DispatcherClients;
let token = "";
let account = "";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const cli = (args: string[], timeoutMs = 120_000) => runDispatcher(["files", ...args], t.with({ DISPATCHER_CLIENT_TOKEN: token, DISPATCHER_CLIENT_ADDRESS: t.address }), timeoutMs);

beforeAll(async () => {
  writeFileSync(catalogFile, region(BASE));
  t = await createTestEnv({ label: "filese2e", telemetryFile: true, env: { DISPATCHER_LOGGING_LEVEL: "debug", DISPATCHER_LOCAL_CLOUD_CATALOG_FILE: catalogFile } });
  p = await startDispatcher(t, ["start"], { timeoutMs: 90_000 });
  token = bootstrapToken(p) ?? "";
  if (!token) throw new Error(`no admin token printed\n${p.output()}`);
  c = createDispatcherClients({ address: t.address, token, retry: false });
  account = (await until(async () => (await c.accounts.listAccounts({ pageSize: 100 })).accounts.find((a) => a.name === "local" && a.status === AccountStatus.ACCOUNT_STATUS_ACTIVE), 60_000, "the local account")).id;
  // A bucket's bytes cost money (per GiB-month): its creator names a budget code they hold.
  await c.budgetCodes.createBudgetCode({ code: "FILES", name: "files", financeCode: "F-1", hardQuotaCents: "100000", softQuotaCents: "0" });
  for (const u of (await c.users.listUsers({ pageSize: 100 })).users) await c.budgetCodes.grantBudgetCode({ code: "FILES", userId: u.id });
}, 150_000);

afterAll(async () => {
  c?.close();
  await p?.stop("SIGTERM").catch(() => undefined);
  await killStrayDispatchers();
  await t?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe("Files under dispatcher start", () => {
  it("is refused naming object_storage, then works once a re-discovery sees it, without a restart", async () => {
    const refused = await cli(["buckets", "create", "e2e-files", "--account", account, "--region", "local", "--budget-code", "FILES", "--wait"]);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toMatch(/FAILED_PRECONDITION: .*no object_storage capability in region local/);

    writeFileSync(catalogFile, region([...BASE, "object_storage"]));
    const discovered = await jobEnd(c, (await c.accounts.discoverAccount({ id: account })).job, 60_000);
    expect(discovered.state, JSON.stringify(discovered.error)).toBe(JobState.JOB_STATE_SUCCEEDED);
    const made = await cli(["buckets", "create", "e2e-files", "--account", "local", "--region", "local", "--budget-code", "FILES", "--wait"]);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toMatch(/bucket\.create job \S+: SUCCEEDED/);
  }, 120_000);

  it("uploads a 50 MB file, lists it, downloads it with an equal sha256, deletes it and its bucket, and leaves nothing on disk", async () => {
    const bucket = (await c.files.listBuckets({ accountId: account, pageSize: 10 })).buckets.find((b) => b.info!.name === "e2e-files")!.info!.id;
    const body = randomBytes(50 * 1024 * 1024);
    const file = join(work, "big.bin");
    writeFileSync(file, body);

    const up = await cli(["upload", bucket, "data/big.bin", file, "--content-type", "application/octet-stream", "--meta", `note=${CANARY}`]);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain(`uploaded data/big.bin: ${body.length} bytes, sha256:${sha(body)}`);
    // stderr is a pipe here: plain progress lines, a tenth at a time, then the total.
    expect(up.stderr).toMatch(new RegExp(`upload data/big\\.bin: \\d+/${body.length} bytes \\(\\d+%\\)`));
    expect(up.stderr).toContain(`upload data/big.bin: ${body.length}/${body.length} bytes (100%)`);

    const ls = await cli(["ls", bucket, "--prefix", "data/"]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(new RegExp(`data/big\\.bin\\s+${body.length}\\s`));
    const st = await cli(["stat", bucket, "data/big.bin"]);
    expect(st.stdout).toContain(`metadata.note:`);
    expect(st.stdout).toContain(CANARY);

    const out = join(work, "back.bin");
    const down = await cli(["download", bucket, "data/big.bin", "-o", out]);
    expect(down.code, down.stderr).toBe(0);
    expect(sha(readFileSync(out))).toBe(sha(body));
    expect(readdirSync(work).filter((n) => n.includes(".partial"))).toEqual([]);

    expect((await cli(["rm", bucket, "data/big.bin"])).code).toBe(0);
    const del = await cli(["buckets", "delete", bucket, "--wait"]);
    expect(del.code, del.stderr).toBe(0);
    expect((await cli(["buckets", "get", bucket])).stdout).toMatch(/state:\s+DELETED/);

    // Nothing of the bucket is left under the local cloud's directory for the account.
    const root = join(t.dir, "local-cloud");
    const accountDir = readdirSync(root).find((d) => /^[0-9a-f]{16}$/.test(d));
    const storage = accountDir ? join(root, accountDir, "storage") : "";
    expect(storage && existsSync(storage) ? readdirSync(storage) : []).toEqual([]);
    const records = accountDir ? join(root, accountDir, "buckets") : "";
    expect(records && existsSync(records) ? readdirSync(records) : []).toEqual([]);
  }, 240_000);

  it("keeps object metadata out of every log line, span, request log and database row", async () => {
    const forms = [CANARY, Buffer.from(CANARY).toString("base64"), Buffer.from(CANARY).toString("hex")];
    const sources: Record<string, string> = {
      "service log": p.output(),
      spans: t.telemetryFile && existsSync(t.telemetryFile) ? readFileSync(t.telemetryFile, "utf8") : "",
      "request log": readdirSync(t.logDir).map((n) => readFileSync(join(t.logDir, n), "utf8")).join("\n"),
    };
    expect(sources.spans!.length).toBeGreaterThan(0);
    const db = await openConnection(t.urls.provisioning);
    try {
      for (const table of ["jobs", "job_events", "outbox_entries", "resources", "resource_events"]) {
        sources[`table ${table}`] = JSON.stringify(await db.query(`SELECT * FROM ${table}`), (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
      }
    } finally {
      await db.end();
    }
    for (const [where, text] of Object.entries(sources)) for (const form of forms) expect(text.includes(form), `${where} holds the metadata canary`).toBe(false);
  });
});
