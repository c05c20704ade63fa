// `dispatcher users|groups|roles …`: managing users, their API keys, groups and roles through the dispatcher's API, so
// the CLI is authorized like any client (client.address, client.token / DISPATCHER_CLIENT_TOKEN).
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import { ApiKey, Group, Role, User, UserKind, UserStatus, userStatusToJSON } from "../gen/proto/dispatcher/v1/iam.js";
import { fields, json, table, time, userIdOf, withClient, type ClientCommandOptions, type CommandIo } from "./client-command.js";
import type { DispatcherClients } from "../client/index.js";

export type IamCommandOptions = ClientCommandOptions;

const list = (v: string[]): string => (v.length ? v.join(",") : "-");
const statusName = (s: UserStatus): string => userStatusToJSON(s).replace("USER_STATUS_", "").toLowerCase();

function printUsers(io: CommandIo, options: IamCommandOptions, users: User[]): void {
  if (options.json) io.out(json({ users: users.map((u) => User.toJSON(u)) }));
  else io.out(table(["ID", "EMAIL", "NAME", "KIND", "STATUS", "ROLES", "EFFECTIVE ROLES"], users.map((u) => [u.id, u.email, u.name, u.kind === UserKind.USER_KIND_SERVICE ? "service" : "user", statusName(u.status), list(u.roles), list(u.effectiveRoles)])));
}

function printGroups(io: CommandIo, options: IamCommandOptions, groups: Group[]): void {
  if (options.json) io.out(json({ groups: groups.map((g) => Group.toJSON(g)) }));
  else io.out(table(["ID", "NAME", "ROLES", "MEMBERS", "ACCOUNTS", "DESCRIPTION"], groups.map((g) => [g.id, g.name, list(g.roles), String(g.memberUserIds.length), list(g.accountIds), g.description])));
}

function printKeys(io: CommandIo, options: IamCommandOptions, keys: ApiKey[]): void {
  if (options.json) io.out(json({ apiKeys: keys.map((k) => ApiKey.toJSON(k)) }));
  else io.out(table(["ID", "USER", "NAME", "PREFIX", "CREATED", "LAST USED", "EXPIRES", "REVOKED"], keys.map((k) => [k.id, k.userId, k.name, k.prefix, time(k.createTime), time(k.lastUseTime), time(k.expireTime), time(k.revokeTime)])));
}

function parseRoleList(value: string): string[] {
  return value.split(",").map((r) => r.trim()).filter(Boolean);
}

function parseStatus(value: string): UserStatus {
  if (value === "active") return UserStatus.USER_STATUS_ACTIVE;
  if (value === "disabled") return UserStatus.USER_STATUS_DISABLED;
  throw new CommanderInvalidArgument("active or disabled");
}

function parseDays(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 3650) throw new CommanderInvalidArgument("a whole number of days from 1 to 3650");
  return n;
}

type Common = (cmd: Command) => IamCommandOptions;
type Run = (name: string, fn: (c: DispatcherClients, io: CommandIo, o: IamCommandOptions) => Promise<void>) => (cmd: Command) => Promise<void>;

function runner(parent: Command, configFile: () => string | undefined, setExit: (code: number) => void): { common: Common; run: Run } {
  const common: Common = (cmd) => ({ configFile: configFile(), address: parent.opts<{ address?: string }>().address, json: cmd.opts<{ json?: boolean }>().json });
  const run: Run = (name, fn) => async (cmd) => {
    const o = common(cmd);
    // Messages name the command run: "dispatcher users show: NOT_FOUND: …".
    setExit(await withClient(`${name} ${cmd.name()}`, o, (c, io) => fn(c, io, o)));
  };
  return { common, run };
}

function addUserCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const users = program.command("users").description("list, create, change and disable users; manage API keys").option("-a, --address <host:port>", "dispatcher to call (default: client.address)");
  const { run } = runner(users, configFile, setExit);
  users
    .command("ls")
    .description("list users")
    .option("--status <status>", "active or disabled", parseStatus)
    .option("--json", "JSON instead of a table", false)
    .action((opts: { status?: UserStatus }, cmd: Command) =>
      run("users", async (c, io, o) => {
        const all: User[] = [];
        let pageToken = "";
        do {
          const page = await c.users.listUsers({ pageSize: 1000, pageToken, status: opts.status });
          all.push(...page.users);
          pageToken = page.nextPageToken;
        } while (pageToken);
        printUsers(io, o, all);
      })(cmd),
    );
  users
    .command("show <id>")
    .description("one user, with direct and effective roles (`me`: you)")
    .option("--json", "JSON instead of a table", false)
    .action((id: string, _o: unknown, cmd: Command) => run("users", async (c, io, o) => printUsers(io, o, [(await c.users.getUser({ id: await userIdOf(c, id) })).user as User]))(cmd));
  users
    .command("create")
    .description("create a user (or, with --service, a service principal)")
    .requiredOption("-e, --email <email>", "email (unique)")
    .requiredOption("-n, --name <name>", "display name")
    .option("--role <roles>", "built-in roles, comma separated: admin, operator, reader", parseRoleList, [])
    .option("--service", "a service principal, not a person", false)
    .option("--json", "JSON instead of a table", false)
    .action((opts: { email: string; name: string; role: string[]; service: boolean }, cmd: Command) =>
      run("users", async (c, io, o) => {
        const { user } = await c.users.createUser({ email: opts.email, name: opts.name, roles: opts.role, kind: opts.service ? UserKind.USER_KIND_SERVICE : UserKind.USER_KIND_USER });
        printUsers(io, o, [user as User]);
      })(cmd),
    );
  users
    .command("set <id>")
    .description("change a user's name, direct roles or status")
    .option("-n, --name <name>", "new display name")
    .option("--role <roles>", "replace the direct roles (comma separated; \"\" for none)", parseRoleList)
    .option("--status <status>", "active or disabled", parseStatus)
    .option("--etag <etag>", "fail (ABORTED) if the user changed since this etag was read")
    .option("--json", "JSON instead of a table", false)
    .action((id: string, opts: { name?: string; role?: string[]; status?: UserStatus; etag?: string }, cmd: Command) =>
      run("users", async (c, io, o) => {
        const updateMask = [...(opts.name !== undefined ? ["name"] : []), ...(opts.role ? ["roles"] : []), ...(opts.status ? ["status"] : [])];
        const { user } = await c.users.updateUser({ id: await userIdOf(c, id), etag: opts.etag ?? "", updateMask, name: opts.name ?? "", roles: opts.role ?? [], status: opts.status ?? UserStatus.USER_STATUS_UNSPECIFIED });
        printUsers(io, o, [user as User]);
      })(cmd),
    );
  users
    .command("disable <id>")
    .description("disable a user: their API keys stop working")
    .option("--json", "JSON instead of a table", false)
    .action((id: string, _o: unknown, cmd: Command) => run("users", async (c, io, o) => printUsers(io, o, [(await c.users.deleteUser({ id })).user as User]))(cmd));
  users
    .command("keys")
    .description("list API keys (yours, or another user's with --user: admins only)")
    .option("-u, --user <id>", "whose keys")
    .option("--json", "JSON instead of a table", false)
    .action((opts: { user?: string }, cmd: Command) => run("users", async (c, io, o) => printKeys(io, o, (await c.apiKeys.listApiKeys({ userId: opts.user ? await userIdOf(c, opts.user) : "", pageSize: 1000 })).apiKeys))(cmd));
  users
    .command("create-key")
    .description("create an API key (for you, or for another user with --user: admins only); the secret is shown once")
    .requiredOption("-n, --name <name>", "label of the key")
    .option("-u, --user <id>", "whose key")
    .option("--expires-days <days>", "the key stops working after this many days", parseDays)
    .action((opts: { name: string; user?: string; expiresDays?: number }, cmd: Command) =>
      run("users", async (c, io) => {
        const expireTime = opts.expiresDays ? new Date(Date.now() + opts.expiresDays * 86_400_000) : undefined;
        const { apiKey, secret } = await c.apiKeys.createApiKey({ userId: opts.user ? await userIdOf(c, opts.user) : "", name: opts.name, expireTime });
        io.out(`${secret}\n`);
        io.err(`API key ${apiKey?.id} for user ${apiKey?.userId}: the secret above is shown once; send it as "authorization: Bearer <secret>"\n`);
      })(cmd),
    );
  users
    .command("revoke-key <key-id>")
    .description("revoke an API key (it stops working within 10 s)")
    .action((keyId: string, _o: unknown, cmd: Command) =>
      run("users", async (c, io) => {
        await c.apiKeys.revokeApiKey({ id: keyId });
        io.out(`${keyId} revoked\n`);
      })(cmd),
    );
}

function addGroupCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const groups = program.command("groups").description("list and change groups: members, roles and the accounts they may use").option("-a, --address <host:port>", "dispatcher to call (default: client.address)");
  const { run } = runner(groups, configFile, setExit);
  const json = (c: Command) => c.option("--json", "JSON instead of a table", false);
  json(groups.command("ls").description("list groups")).action((_o: unknown, cmd: Command) =>
    run("groups", async (c, io, o) => {
      const all: Group[] = [];
      let pageToken = "";
      do {
        const page = await c.groups.listGroups({ pageSize: 1000, pageToken });
        all.push(...page.groups);
        pageToken = page.nextPageToken;
      } while (pageToken);
      printGroups(io, o, all);
    })(cmd),
  );
  json(groups.command("show <id>").description("one group: roles, members, accounts and etag")).action((id: string, _o: unknown, cmd: Command) =>
    run("groups", async (c, io, o) => {
      const group = (await c.groups.getGroup({ id })).group as Group;
      if (o.json) io.out(`${JSON.stringify(Group.toJSON(group))}\n`);
      else io.out(`${table(["FIELD", "VALUE"], [["id", group.id], ["name", group.name], ["description", group.description], ["roles", list(group.roles)], ["members", list(group.memberUserIds)], ["accounts", list(group.accountIds)], ["etag", group.etag]])}`);
    })(cmd),
  );
  json(groups.command("create <name>").description("create a group").option("-d, --description <text>", "what the group is for", "").option("--role <roles>", "roles it grants, comma separated", parseRoleList, []))
    .action((name: string, opts: { description: string; role: string[] }, cmd: Command) =>
      run("groups", async (c, io, o) => printGroups(io, o, [(await c.groups.createGroup({ name, description: opts.description, roles: opts.role })).group as Group]))(cmd),
    );
  groups
    .command("delete <id>")
    .description("delete a group (its members lose what it granted)")
    .action((id: string, _o: unknown, cmd: Command) =>
      run("groups", async (c, io) => {
        await c.groups.deleteGroup({ id });
        io.out(`${id} deleted\n`);
      })(cmd),
    );
  json(groups.command("add-member <group-id> <user-id>").description("add a user to a group")).action((groupId: string, userId: string, _o: unknown, cmd: Command) =>
    run("groups", async (c, io, o) => printGroups(io, o, [(await c.groups.addGroupMember({ groupId, userId })).group as Group]))(cmd),
  );
  json(groups.command("remove-member <group-id> <user-id>").description("remove a user from a group")).action((groupId: string, userId: string, _o: unknown, cmd: Command) =>
    run("groups", async (c, io, o) => printGroups(io, o, [(await c.groups.removeGroupMember({ groupId, userId })).group as Group]))(cmd),
  );
  json(groups.command("set-roles <group-id> <roles>").description("replace the roles the group grants (comma separated; \"\" for none)")).action((groupId: string, roles: string, _o: unknown, cmd: Command) =>
    run("groups", async (c, io, o) => printGroups(io, o, [(await c.groups.setGroupRoles({ groupId, roles: parseRoleList(roles) })).group as Group]))(cmd),
  );
  json(groups.command("set-accounts <group-id> <account-ids>").description("replace the accounts the group's members may use (comma separated)")).action((groupId: string, ids: string, _o: unknown, cmd: Command) =>
    run("groups", async (c, io, o) => printGroups(io, o, [(await c.groups.setGroupAccounts({ groupId, accountIds: parseRoleList(ids) })).group as Group]))(cmd),
  );
}

function addRoleCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const roles = program.command("roles").description("the built-in roles and the permissions each grants").option("-a, --address <host:port>", "dispatcher to call (default: client.address)");
  const { run } = runner(roles, configFile, setExit);
  const print = (io: CommandIo, o: IamCommandOptions, rs: Role[]): void =>
    o.json ? io.out(json({ roles: rs.map((r) => Role.toJSON(r)) })) : io.out(table(["ROLE", "PERMISSIONS", "DESCRIPTION"], rs.map((r) => [r.name, r.permissions.join(","), r.description])));
  roles.command("ls").description("every built-in role").option("--json", "JSON instead of a table", false).action((_o: unknown, cmd: Command) => run("roles", async (c, io, o) => print(io, o, (await c.roles.listRoles({})).roles))(cmd));
  roles
    .command("show <name>")
    .description("one role and its permissions, one a line")
    .option("--json", "JSON instead of text", false)
    .action((name: string, _o: unknown, cmd: Command) =>
      run("roles", async (c, io, o) => {
        const role = (await c.roles.getRole({ name })).role as Role;
        if (o.json) return print(io, o, [role]);
        // The permissions under one another, aligned with the values above them.
        const indent = " ".repeat("description: ".length);
        io.out(fields([["role", role.name], ["description", role.description], ["permissions", role.permissions.join(`\n${indent}`)]]));
      })(cmd),
    );
}

/** Adds `dispatcher users …`, `dispatcher groups …` and `dispatcher roles …` to the program. */
export function addIamCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  addUserCommands(program, configFile, setExit);
  addGroupCommands(program, configFile, setExit);
  addRoleCommands(program, configFile, setExit);
}
