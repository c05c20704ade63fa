// The `dispatcher` command line: parses arguments, loads the configuration once and runs one command.
// Each command imports what it runs when it runs (roles, databases, KM, the client), and a command line that names a
// command group loads that group's definitions only, so that one client command loads the command line and that
// command (with the generated code of what it prints) and nothing else.
import { Command, CommanderError, InvalidArgumentError as CommanderInvalidArgument } from "commander";
import { ConfigError } from "./config-error.js";
import { DomainError } from "./errors.js";
import { ROLE_NAMES } from "./app/role-names.js";

/** Exit codes: 0 done, 1 failed, 2 bad configuration or a dependency that is not there (fix and retry). */
export const EXIT_USAGE = 2;

function parseRoles(value: string, previous: string[] = []): string[] {
  const roles = value.split(",").map((r) => r.trim()).filter(Boolean);
  for (const role of roles) {
    if (!(ROLE_NAMES as readonly string[]).includes(role)) throw new CommanderInvalidArgument(`unknown role "${role}" (roles: ${ROLE_NAMES.join(", ")})`);
  }
  return [...previous, ...roles];
}

/** The command line with the given command groups (loadCommandGroups). */
export function buildProgram(setExit: (code: number) => void, groups: readonly AddCommands[]): Command {
  const program = new Command("dispatcher")
    .description("gRPC dispatcher of the cloud management system: jobs, workers, monitor, KM and agents")
    .option("-c, --config <file>", "JSON configuration file (also DISPATCHER_CONFIG); environment variables override it")
    .showHelpAfterError()
    .exitOverride();

  const configFile = (): string | undefined => program.opts<{ config?: string }>().config;

  program
    .command("start")
    .description("migrate the databases, then run every role in one process (the quick start)")
    .action(async () => setExit(await (await import("./commands/serve.js")).runServe({ configFile: configFile(), roles: [...ROLE_NAMES], migrate: true, quickStart: true })));

  program
    .command("serve")
    .description("run the given roles (a deployment scales each role independently)")
    .requiredOption("-r, --role <roles>", `roles to run, comma separated or repeated: ${ROLE_NAMES.join(", ")}`, parseRoles)
    .option("--migrate", "apply pending migrations first", false)
    .action(async (opts: { role: string[]; migrate: boolean }) => setExit(await (await import("./commands/serve.js")).runServe({ configFile: configFile(), roles: opts.role, migrate: opts.migrate })));

  program
    .command("migrate")
    .description("create the databases if missing and apply pending migrations (safe to run twice or concurrently)")
    .action(async () => setExit(await (await import("./commands/migrate.js")).runMigrate({ configFile: configFile() })));

  program
    .command("health")
    .description("exit 0 when the target reports SERVING (like grpc-health-probe)")
    .option("-a, --address <host:port>", "target address (default: 127.0.0.1:<server.port>)")
    .option("-s, --service <name>", "service to check; empty means the whole server", "")
    .option("-t, --timeout <ms>", "deadline of the check", (v) => Number.parseInt(v, 10), 5000)
    .action(async (opts: { address?: string; service: string; timeout: number }) => setExit(await (await import("./commands/health.js")).runHealth({ configFile: configFile(), ...opts })));

  program
    .command("config")
    .description("print the effective configuration (secrets hidden) and exit; 2 when it is invalid")
    .action(async () => setExit((await import("./commands/config.js")).runPrintConfig({ configFile: configFile() })));

  program
    .command("reset")
    .description("development only: remove this install's databases, jobs stream and data directory (after a confirmation), e.g. when an earlier install's databases do not match a fresh clone")
    .option("--yes", "remove them (without it: list what would be removed)", false)
    .action(async (opts: { yes: boolean }) => setExit(await (await import("./commands/reset.js")).runReset({ configFile: configFile(), yes: opts.yes })));

  const admin = program.command("admin").description("administrative tasks on the provisioning database");
  admin
    .command("create-key")
    .description("create an API key for a user (created when missing); the secret is shown once")
    .requiredOption("-e, --email <email>", "the user's email")
    .option("--role <role>", "role of a new user: admin, operator or reader", "admin")
    .option("--service", "the principal is a service (e.g. a worker or the console), not a person", false)
    .option("-n, --name <name>", "label of the key", "cli")
    .action(async (opts: { email: string; role: string; service: boolean; name: string }) => setExit(await (await import("./commands/admin.js")).runCreateKey({ configFile: configFile(), ...opts })));

  for (const add of groups) add(program, configFile, setExit);
  addVerbAliases(program);
  return program;
}

/** Verbs that name the same thing in every group: `list` and `ls`, `get` and `show`. */
const VERB_PAIRS: readonly (readonly [string, string])[] = [
  ["list", "ls"],
  ["get", "show"],
];

/** Lets each group's listing and single-item commands answer to either verb of a pair, unless a sibling has it. */
function addVerbAliases(command: Command): void {
  const taken = new Set(command.commands.flatMap((c) => [c.name(), ...c.aliases()]));
  for (const sub of command.commands) {
    addVerbAliases(sub);
    for (const [a, b] of VERB_PAIRS) {
      const other = sub.name() === a ? b : sub.name() === b ? a : undefined;
      if (other === undefined || taken.has(other)) continue;
      sub.alias(other);
      taken.add(other);
    }
  }
}

type AddCommands = (program: Command, configFile: () => string | undefined, setExit: (code: number) => void) => void;

/**
 * The command groups defined in modules of their own, in the order they are added, with the top-level commands each
 * defines or adds subcommands to. test/cli/lazy-loading.test.ts checks this list against what the modules define.
 */
export const COMMAND_GROUPS: readonly { commands: readonly string[]; load: () => Promise<AddCommands> }[] = [
  { commands: ["jobs"], load: async () => (await import("./commands/jobs.js")).addJobCommands },
  { commands: ["km"], load: async () => (await import("./commands/km.js")).addKmCommands },
  { commands: ["users", "groups", "roles"], load: async () => (await import("./commands/iam.js")).addIamCommands },
  { commands: ["clouds"], load: async () => (await import("./commands/clouds.js")).addCloudCommands },
  { commands: ["accounts"], load: async () => (await import("./commands/accounts.js")).addAccountCommands },
  { commands: ["budgets"], load: async () => (await import("./commands/budgets.js")).addBudgetCommands },
  { commands: ["audit"], load: async () => (await import("./commands/audit.js")).addAuditCommands },
  { commands: ["servers"], load: async () => (await import("./commands/servers.js")).addServerCommands },
  { commands: ["volumes", "snapshots", "images"], load: async () => (await import("./commands/volumes.js")).addStorageCommands },
  { commands: ["firewalls", "addresses", "keys"], load: async () => (await import("./commands/network.js")).addNetworkCommands },
  { commands: ["files"], load: async () => (await import("./commands/files.js")).addFilesCommands },
  { commands: ["agent"], load: async () => (await import("./commands/agent.js")).addAgentCommand },
  { commands: ["agents"], load: async () => (await import("./commands/agents.js")).addAgentsCommands },
  { commands: ["backup", "restore"], load: async () => (await import("./commands/backup.js")).addBackupCommands },
  // Last: it adds `budgets usage` and `servers metrics|fleet` to those groups when others registered them first.
  { commands: ["budgets", "servers"], load: async () => (await import("./commands/analytics.js")).addAnalyticsCommands },
];

/** The command word of a command line: its first argument that is not an option (-c/--config take a value). */
export function commandWord(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "-c" || arg === "--config") i++;
    else if (!arg.startsWith("-")) return arg;
  }
  return undefined;
}

/**
 * The groups a command line needs: those defining its command word; every group for help, an unknown command or none
 * (so that help lists them all and commander's "unknown command" knows them all).
 */
export async function loadCommandGroups(argv?: readonly string[]): Promise<AddCommands[]> {
  const word = argv ? commandWord(argv) : undefined;
  const named = COMMAND_GROUPS.filter((g) => word !== undefined && g.commands.includes(word));
  const inline = word !== undefined && INLINE_COMMANDS.includes(word);
  const chosen = named.length > 0 || inline ? named : COMMAND_GROUPS;
  return Promise.all(chosen.map((g) => g.load()));
}

/** Commands buildProgram defines itself. */
export const INLINE_COMMANDS: readonly string[] = ["start", "serve", "migrate", "reset", "health", "config", "admin"];

/** The whole command line, every group loaded (tests and documentation list it). */
export async function buildFullProgram(setExit: (code: number) => void): Promise<Command> {
  return buildProgram(setExit, await loadCommandGroups());
}

/** Runs the command line; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = buildProgram((c) => {
    code = c;
  }, await loadCommandGroups(argv));
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (err) {
    return reportFailure(err);
  }
}

/** Prints a failure the way an operator needs it: the message and what to do, no stack trace for known causes. */
export function reportFailure(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_USAGE;
  if (err instanceof ConfigError) {
    process.stderr.write(`dispatcher: ${err.message}\nSee the configuration reference in README.md.\n`);
    return EXIT_USAGE;
  }
  if (err instanceof DomainError) {
    process.stderr.write(`dispatcher: ${err.message}\n`);
    return err.code === "UNAVAILABLE" || err.code === "INVALID_ARGUMENT" ? EXIT_USAGE : 1;
  }
  process.stderr.write(`dispatcher: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
}
