// `dispatcher agent`: the agent a guest server runs. Registers once through the gRPC-Web bridge with its join token,
// then serves agent.v1 to the dispatcher until SIGINT/SIGTERM or the dispatcher's Shutdown.
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { ConfigError } from "../config-error.js";
import { progress, setup, type CommandOptions } from "./common.js";

export interface AgentCommandOptions extends CommandOptions {
  bridgeUrl?: string | undefined;
  joinTokenFile?: string | undefined;
  port?: number | undefined;
  bind?: string | undefined;
  address?: string | undefined;
  stateDir?: string | undefined;
}

export async function runAgent(options: AgentCommandOptions): Promise<number> {
  const { config, log } = await setup(options);
  // The guest program loads when the agent runs, not when another command is defined beside it.
  const [{ status: Code }, { GrpcWebError }, { startAgent }, { packageVersion }] = await Promise.all([
    import("@grpc/grpc-js"),
    import("../guest/grpc-web.js"),
    import("../guest/program.js"),
    import("../system/service.js"),
  ]);
  if (options.bridgeUrl) config.agent.bridgeUrl = options.bridgeUrl;
  if (options.joinTokenFile) config.agent.joinToken = readFileSync(options.joinTokenFile, "utf8").trim();
  if (options.port !== undefined) config.agent.port = options.port;
  if (options.bind) config.agent.bind = options.bind;
  if (options.address) config.agent.address = options.address;
  if (options.stateDir) config.agent.stateDir = options.stateDir;
  progress(`agent: registering through ${config.agent.bridgeUrl}, serving on ${config.agent.bind}:${config.agent.port}`);
  let agent;
  try {
    agent = await startAgent({ config, log: log.child({ component: "agent" }), version: packageVersion() });
  } catch (err) {
    if (err instanceof GrpcWebError) {
      progress(`agent: registration refused (${Code[err.code]}): ${err.message}`);
      return 1;
    }
    throw err;
  }
  progress(`agent ${agent.agentId} of server ${agent.serverId} ready on port ${agent.port}`);
  const reason = await Promise.race([agent.shutdown.then((r) => `shutdown requested${r ? `: ${r}` : ""}`), waitForSignal()]);
  progress(`agent: ${reason}; stopping`);
  await agent.stop(config.server.shutdownGraceMs);
  return 0;
}

function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      resolve(`${signal} received`);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

/** Declares the agent's options on `command` (the `agent` subcommand, or the lean `dispatcher-agent` program). */
function agentOptions(command: Command): Command {
  return command
    .option("--bridge-url <url>", "gRPC-Web bridge URL (also DISPATCHER_AGENT_BRIDGE_URL)")
    .option("--join-token-file <file>", "file holding the one-time join token (also DISPATCHER_AGENT_JOIN_TOKEN)")
    .option("-p, --port <port>", "port to serve agent.v1 on (also DISPATCHER_AGENT_PORT; default 2003)", (v) => Number.parseInt(v, 10))
    .option("--bind <address>", "address to bind (also DISPATCHER_AGENT_BIND)")
    .option("--address <address>", "address the dispatcher should call back (also DISPATCHER_AGENT_ADDRESS)")
    .option("--state-dir <dir>", "keep the registration in <dir>/agent.json (mode 0600) so a restart needs no new token (also DISPATCHER_AGENT_STATE_DIR)");
}

const DESCRIPTION = "run the agent of a guest server: register through the gRPC-Web bridge, then serve agent.v1 to the dispatcher";

export function addAgentCommand(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  agentOptions(program.command("agent").description(DESCRIPTION)).action(async (opts: Omit<AgentCommandOptions, "configFile">) =>
    setExit(await runAgent({ configFile: configFile(), ...opts })),
  );
}

/**
 * bin/dispatcher-agent.js: the same command as `dispatcher agent`, loading only what the agent needs, so that a guest
 * starts (and registers) in a fraction of the time the whole dispatcher takes to load.
 */
export async function agentMain(argv: string[]): Promise<number> {
  let code = 0;
  const program = agentOptions(new Command("dispatcher-agent").description(DESCRIPTION))
    .option("-c, --config <file>", "JSON configuration file (also DISPATCHER_CONFIG); environment variables override it")
    .exitOverride()
    .action(async (opts: Omit<AgentCommandOptions, "configFile"> & { config?: string }) => {
      const { config, ...rest } = opts;
      code = await runAgent({ configFile: config, ...rest });
    });
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    process.stderr.write(`dispatcher-agent: ${err instanceof ConfigError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return err instanceof ConfigError ? 2 : 1;
  }
}
