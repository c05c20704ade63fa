// The `dispatcher` command line: parses arguments, loads the configuration once and runs one command.
// Each command imports what it runs when it runs (roles, databases, KM, the client), so that `--help` or one client
// command loads the command line and that command only.
import { Command, CommanderError, InvalidArgumentError as CommanderInvalidArgument } from "commander";
import { ConfigError } from "./config-error.js";
import { DomainError } from "./errors.js";
import { ROLE_NAMES } from "./app/role-names.js";
import { addIamCommands } from "./commands/iam.js";
import { addAccountCommands } from "./commands/accounts.js";
import { addBudgetCommands } from "./commands/budgets.js";
import { addAuditCommands } from "./commands/audit.js";
import { addCloudCommands } from "./commands/clouds.js";
import { addJobCommands } from "./commands/jobs.js";
import { addServerCommands } from "./commands/servers.js";
import { addStorageCommands } from "./commands/volumes.js";
import { addNetworkCommands } from "./commands/network.js";
import { addFilesCommands } from "./commands/files.js";
import { addAnalyticsCommands } from "./commands/analytics.js";
import { addKmCommands } from "./commands/km.js";
import { addAgentCommand } from "./commands/agent.js";
import { addAgentsCommands } from "./commands/agents.js";
import { addBackupCommands } from "./commands/backup.js";

/** Exit codes: 0 done, 1 failed, 2 bad configuration or a dependency that is not there (fix and retry). */
export const EXIT_USAGE = 2;

function parseRoles(value: string, previous: string[] = []): string[] {
  const roles = value.split(",").map((r) => r.trim()).filter(Boolean);
  for (const role of roles) {
    if (!(ROLE_NAMES as readonly string[]).includes(role)) throw new CommanderInvalidArgument(`unknown role "${role}" (roles: ${ROLE_NAMES.join(", ")})`);
  }
  return [...previous, ...roles];
}

export function buildProgram(setExit: (code: number) => void): Command {
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

  const admin = program.command("admin").description("administrative tasks on the provisioning database");
  admin
    .command("create-key")
    .description("create an API key for a user (created when missing); the secret is shown once")
    .requiredOption("-e, --email <email>", "the user's email")
    .option("--role <role>", "role of a new user: admin, operator or reader", "admin")
    .option("--service", "the principal is a service (e.g. a worker or the console), not a person", false)
    .option("-n, --name <name>", "label of the key", "cli")
    .action(async (opts: { email: string; role: string; service: boolean; name: string }) => setExit(await (await import("./commands/admin.js")).runCreateKey({ configFile: configFile(), ...opts })));

  addJobCommands(program, configFile, setExit);
  addKmCommands(program, configFile, setExit);
  addIamCommands(program, configFile, setExit);
  addCloudCommands(program, configFile, setExit);
  addAccountCommands(program, configFile, setExit);
  addBudgetCommands(program, configFile, setExit);
  addAuditCommands(program, configFile, setExit);
  addServerCommands(program, configFile, setExit);
  addStorageCommands(program, configFile, setExit);
  addNetworkCommands(program, configFile, setExit);
  addFilesCommands(program, configFile, setExit);
  addAgentCommand(program, configFile, setExit);
  addAgentsCommands(program, configFile, setExit);
  addBackupCommands(program, configFile, setExit);
  // Last: it adds `budgets usage` and `servers metrics|fleet` to those groups when others registered them first.
  addAnalyticsCommands(program, configFile, setExit);

  return program;
}

/** Runs the command line; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = buildProgram((c) => {
    code = c;
  });
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
