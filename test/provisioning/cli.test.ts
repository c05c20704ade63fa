// `dispatcher clouds|accounts|budgets …` against a real server: the commands call the API with the configured key,
// print tables or JSON, read account credentials from a file (never argv) without echoing them, and report refusals
// with the API's reason and a non-zero exit code.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { startProvisioningFixture, type ProvisioningFixture } from "./support.js";
import { runCli, type CliRun } from "../support/cli.js";

let f: ProvisioningFixture;
const dir = mkdtempSync(join(tmpdir(), "prov-cli-"));
const SECRET = "CLI-CANARY-secret-value-91c2";

beforeAll(async () => {
  f = await startProvisioningFixture("prov_cli");
});
afterAll(async () => {
  await f?.close();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
  delete process.env.DISPATCHER_CLIENT_TOKEN;
});

const cli = (token: string, ...args: string[]): Promise<CliRun> => runCli(f.server.address, token, args);

describe("dispatcher clouds|accounts|budgets", () => {
  it("create a cloud, a budget code and an account from a credentials file; list, get, discover, subscriptions, events", async () => {
    const admin = f.users.admin.secret;
    const created = await cli(admin, "clouds", "create", "-n", "cli cloud", "-d", "aws", "-e", "https://api.cloud.test", "-r", "eu-1:Europe:eu-1a,eu-1b", "-r", "us-1", "--json");
    expect(created.code).toBe(0);
    const cloud = (JSON.parse(created.out) as { clouds: Array<{ id: string; regions: Array<{ id: string }> }> }).clouds[0];
    expect(cloud?.regions.map((r) => r.id)).toEqual(["eu-1", "us-1"]);
    expect((await cli(admin, "clouds", "list")).out).toMatch(new RegExp(`${cloud?.id}\\s+cli cloud\\s+aws\\s+https://api.cloud.test/\\s+eu-1,us-1`));
    expect((await cli(admin, "clouds", "get", cloud?.id ?? "")).out).toContain("eu-1 (Europe) [eu-1a,eu-1b]");

    expect((await cli(f.users.finance.secret, "budgets", "create", "CLI-1", "-n", "cli budget", "--hard", "5000", "--soft", "4000")).code).toBe(0);
    const updated = await cli(f.users.finance.secret, "budgets", "update", "CLI-1", "--hard", "9000", "--state", "disabled", "--json");
    expect(JSON.parse(updated.out)).toMatchObject({ budgetCodes: [{ code: "CLI-1", hardQuotaCents: "9000", softQuotaCents: "4000", state: "BUDGET_CODE_STATE_DISABLED" }] });
    expect((await cli(admin, "budgets", "grant", "CLI-1", f.users.reader.id)).out).toContain(f.users.reader.id);
    expect((await cli(f.users.reader.secret, "budgets", "list")).out).toMatch(/CLI-1\s+cli budget\s+disabled\s+90\.00\s+40\.00\s+0\.00/);
    const revoked = JSON.parse((await cli(admin, "budgets", "revoke", "CLI-1", f.users.reader.id, "--json")).out) as { budgetCodes: Array<{ code: string; userIds?: string[] }> };
    expect(revoked.budgetCodes[0]?.code).toBe("CLI-1");
    expect(revoked.budgetCodes[0]?.userIds ?? []).toEqual([]);
    expect((await cli(admin, "budgets", "get", "CLI-1")).out).toMatch(/holders\s+-/);

    const file = join(dir, "creds.json");
    writeFileSync(file, JSON.stringify({ access_key_id: "AKIACLI", secret_access_key: SECRET }), { mode: 0o600 });
    const connected = await cli(admin, "accounts", "connect", "-n", "cli account", "--cloud", cloud?.id ?? "", "-t", "aws-access-key", "-f", file, "--budget-code", "CLI-1", "--json");
    expect(connected.code).toBe(0);
    const { account, validationJob } = JSON.parse(connected.out) as { account: { id: string; status: string; defaultBudgetCode: string }; validationJob: { id: string; kind: string } };
    expect(account).toMatchObject({ status: "ACCOUNT_STATUS_PENDING", defaultBudgetCode: "CLI-1" });
    expect(validationJob.kind).toBe("account.discover");
    expect([...f.km.stored.values()].some((c) => c.fields.secret_access_key === SECRET)).toBe(true);
    expect(connected.out + connected.err).not.toContain(SECRET);

    expect((await cli(admin, "accounts", "list")).out).toMatch(new RegExp(`${account.id}\\s+cli account\\s+${cloud?.id}\\s+pending`));
    expect((await cli(admin, "accounts", "get", account.id)).out).toMatch(/status\s+pending/);
    const discover = await cli(admin, "accounts", "discover", account.id, "--idempotency-key", "cli-1");
    expect(discover.out).toMatch(/^[0-9A-Z]{26}\n$/);
    expect((await cli(admin, "accounts", "discover", account.id, "--idempotency-key", "cli-1")).out).toBe(discover.out);
    expect((await cli(admin, "accounts", "subscriptions", account.id)).out).toBe("REGION  NAME  CAPABILITIES\n");
    expect(JSON.parse((await cli(admin, "accounts", "events", account.id, "--json")).out)).toEqual({ events: [] });
  });

  it("names where ids are asked: `me` for the caller, an account's name when exactly one account has it", async () => {
    const admin = f.users.admin.secret;
    expect((await cli(f.users.finance.secret, "budgets", "create", "CLI-ME", "-n", "names", "--hard", "100")).code).toBe(0);
    const grant = await cli(admin, "budgets", "grant", "CLI-ME", "me", "--json");
    expect(grant.code, grant.err).toBe(0);
    const granted = JSON.parse(grant.out) as { budgetCodes: Array<{ userIds: string[] }> };
    expect(granted.budgetCodes[0]?.userIds).toEqual([f.users.admin.id]);
    expect((await cli(admin, "users", "show", "me")).out).toContain(f.users.admin.id);

    const newCloud = async (name: string) => {
      const r = await cli(admin, "clouds", "create", "-n", name, "-d", "aws", "-e", "https://api.cloud.test", "-r", "n-1", "--json");
      expect(r.code, r.err).toBe(0);
      return (JSON.parse(r.out) as { clouds: Array<{ id: string }> }).clouds[0]?.id ?? "";
    };
    const clouds = [await newCloud("names cloud"), await newCloud("names cloud 2")];
    const file = join(dir, "names-creds.json");
    writeFileSync(file, JSON.stringify({ access_key_id: "AKIANAMES", secret_access_key: "names-secret" }), { mode: 0o600 });
    const connect = async (name: string, cloud = clouds[0] as string) => {
      const r = await cli(admin, "accounts", "connect", "-n", name, "--cloud", cloud, "-t", "aws-access-key", "-f", file, "--budget-code", "CLI-ME", "--json");
      expect(r.code, r.err).toBe(0);
      return (JSON.parse(r.out) as { account: { id: string } }).account.id;
    };
    const only = await connect("only-one");
    expect((await cli(admin, "accounts", "get", "only-one")).out).toMatch(new RegExp(`id\\s+${only}`));
    expect((await cli(admin, "accounts", "get", only)).out).toMatch(new RegExp(`id\\s+${only}`));
    // Names are unique within a cloud: the same name in two clouds is ambiguous.
    const twins = [await connect("twin"), await connect("twin", clouds[1])];
    const ambiguous = await cli(admin, "accounts", "get", "twin");
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.err).toContain('2 accounts are named "twin"');
    for (const id of twins) expect(ambiguous.err).toContain(id);
    // A name nobody has is refused before any call that would take it for an id.
    const unknown = await cli(admin, "accounts", "get", "no-such-account");
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('no account you can see is named "no-such-account"');
  });

  it("refusals say why and exit non-zero; bad credential input is refused without echoing it", async () => {
    const denied = await cli(f.users.reader.secret, "clouds", "create", "-n", "x", "-d", "aws", "-e", "https://api.cloud.test");
    expect(denied.code).toBe(1);
    expect(denied.err).toContain("PERMISSION_DENIED");
    const invalid = await cli(f.users.admin.secret, "clouds", "create", "-n", "x", "-d", "aws", "-e", "http://api.cloud.test");
    expect(invalid.code).toBe(2);
    expect(invalid.err).toMatch(/INVALID_ARGUMENT[\s\S]*endpoint:/);
    expect((await cli(f.users.admin.secret, "accounts", "get", "01HZZZZZZZZZZZZZZZZZZZZZZZ")).err).toContain("NOT_FOUND");

    const bad = join(dir, "bad.json");
    writeFileSync(bad, `{"secret_access_key": "${SECRET}"`, { mode: 0o600 });
    const before = f.km.stored.size;
    const refused = await cli(f.users.admin.secret, "accounts", "connect", "-n", "bad", "--cloud", "c", "-t", "aws-access-key", "-f", bad);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain("not valid JSON");
    expect(refused.out + refused.err).not.toContain(SECRET);
    expect(f.km.stored.size).toBe(before);
    expect((await cli(f.users.admin.secret, "clouds", "delete", "01HZZZZZZZZZZZZZZZZZZZZZZZ")).code).toBe(1);
  });
});
