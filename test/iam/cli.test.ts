// `dispatcher users|groups|roles …` against a real server: the commands call the API with the configured key, print
// tables or JSON, and report refusals with the API's reason and a non-zero exit code.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { insertAccounts, startIamFixture, type IamFixture } from "./support.js";
import { runCli, type CliRun } from "../support/cli.js";

let f: IamFixture;

beforeAll(async () => {
  f = await startIamFixture("iam_cli");
});
afterAll(() => f?.close());
afterEach(() => {
  vi.restoreAllMocks();
  delete process.env.DISPATCHER_CLIENT_TOKEN;
});

const cli = (token: string, ...args: string[]): Promise<CliRun> => runCli(f.server.address, token, args);

describe("dispatcher users|groups|roles", () => {
  it("create a user, a group with a role, membership, and list them", async () => {
    const admin = f.users.admin.secret;
    const created = await cli(admin, "users", "create", "-e", "cli@example.test", "-n", "Cli User", "--role", "reader", "--json");
    expect(created.code).toBe(0);
    const user = (JSON.parse(created.out) as { users: Array<{ id: string; roles: string[] }> }).users[0];
    expect(user?.roles).toEqual(["reader"]);

    const group = await cli(admin, "groups", "create", "cli-ops", "-d", "operators from the CLI", "--role", "operator", "--json");
    const groupId = (JSON.parse(group.out) as { groups: Array<{ id: string }> }).groups[0]?.id as string;
    expect((await cli(admin, "groups", "add-member", groupId, user?.id as string)).code).toBe(0);
    await insertAccounts(f.dbs, ["acct-1", "acct-2"]);
    expect((await cli(admin, "groups", "set-accounts", groupId, "acct-1,acct-2")).out).toContain("acct-1,acct-2");

    const users = await cli(admin, "users", "ls");
    expect(users.out).toMatch(/cli@example\.test\s+Cli User\s+user\s+active\s+reader\s+operator,reader/);
    expect((await cli(admin, "groups", "show", groupId)).out).toContain(user?.id);
    expect((await cli(f.users.reader.secret, "roles", "ls")).out).toMatch(/^reader\s+\S*users\.read/m);
    // `get` and `show`, `list` and `ls` name the same commands in every group.
    const role = await cli(f.users.reader.secret, "roles", "get", "reader");
    expect(role.out).toMatch(/^role: {8}reader\ndescription: .+\npermissions: \S+\n( {13}\S+\n)+$/);
    expect(role.out).toContain(`\n${" ".repeat(13)}users.read\n`);
    expect((await cli(admin, "users", "list")).out).toBe(users.out);
  });

  it("issue and revoke one's own key; refusals say why and exit non-zero", async () => {
    const reader = f.users.reader.secret;
    const key = await cli(reader, "users", "create-key", "-n", "from cli", "--expires-days", "7");
    expect(key.code).toBe(0);
    expect(key.out).toMatch(/^dsp_\S+\n$/);
    const listed = await cli(reader, "users", "keys");
    expect(listed.out).toContain("from cli");
    const keyId = /^(\S+)\s+\S+\s+from cli/m.exec(listed.out)?.[1] as string;
    expect((await cli(reader, "users", "revoke-key", keyId)).out).toBe(`${keyId} revoked\n`);

    const denied = await cli(reader, "users", "create", "-e", "x@example.test", "-n", "X");
    expect(denied.code).toBe(1);
    expect(denied.err).toContain("PERMISSION_DENIED");
    const invalid = await cli(f.users.admin.secret, "users", "create", "-e", "not-an-email", "-n", "X");
    expect(invalid.code).toBe(2);
    expect(invalid.err).toMatch(/INVALID_ARGUMENT[\s\S]*email:/);
  });
});
