// `dispatcher agents show|run|run-fleet`: a server's agent, and commands run through it as agent.run_script jobs (the
// client's address and API key come from client.address and client.token / DISPATCHER_CLIENT_TOKEN).
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import { Agent, agentConnectionStateToJSON } from "../gen/proto/dispatcher/v1/agents.js";
import { Job, JobState } from "../gen/proto/dispatcher/v1/jobs.js";
import { addFleetCommand } from "./agents-fleet.js";
import { json, time, withClient, type ClientCommandOptions } from "./client-command.js";
import { followJob, jobEnded } from "./job-follow.js";

export interface AgentRunOptions extends ClientCommandOptions {
  timeout?: number | undefined;
  env: string[];
  idempotencyKey?: string | undefined;
  wait: boolean;
}

function describeAgent(a: Agent): string {
  const lines: [string, string][] = [
    ["agent", a.id],
    ["server", a.serverId],
    ["state", agentConnectionStateToJSON(a.state).replace("AGENT_CONNECTION_STATE_", "")],
    ["version", a.version || "-"],
    ["hostname", a.hostname || "-"],
    ["address", `${a.address}:${a.port}`],
    ["last seen", time(a.lastSeenTime)],
    ["missed pings", String(a.missedPings)],
    ["registered", time(a.registerTime)],
  ];
  return lines.map(([k, v]) => `${`${k}:`.padEnd(14)}${v}`).join("\n") + "\n";
}

export function runAgentsShow(serverId: string, options: ClientCommandOptions): Promise<number> {
  return withClient("agents show", options, async (c, io) => {
    const { agent } = await c.agents.getServerAgent({ serverId });
    io.out(options.json ? json(agent ? Agent.toJSON(agent) : null) : agent ? describeAgent(agent) : "no agent\n");
  });
}

export function runAgentsRun(serverId: string, argv: string[], options: AgentRunOptions): Promise<number> {
  return withClient("agents run", options, async (c, io) => {
    const env = Object.fromEntries(options.env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
    const timeout = options.timeout ? { seconds: String(Math.floor(options.timeout / 1000)), nanos: (options.timeout % 1000) * 1e6 } : undefined;
    const [command = "", ...args] = argv;
    let { job } = await c.agents.runServerScript({ serverId, command, args, env, timeout, idempotencyKey: options.idempotencyKey ?? "" });
    if (!options.wait || !job) {
      io.out(options.json ? json(job ? Job.toJSON(job) : null) : `job ${job?.id ?? "?"} started\n`);
      return;
    }
    job = await followJob(c, job);
    if (options.json) io.out(json(Job.toJSON(job)));
    if (!jobEnded(job)) {
      io.err(`dispatcher agents run: the stream ended before job ${job.id} did (follow it: dispatcher jobs watch ${job.id})\n`);
      return 1;
    }
    if (job.state !== JobState.JOB_STATE_SUCCEEDED) {
      io.err(`dispatcher agents run: job ${job.id} ${job.error ? `failed: ${job.error.code}: ${job.error.message}` : "did not succeed"}\n`);
      return 1;
    }
    const r = (job.result ?? {}) as { exitCode?: number; stdout?: string; stderr?: string; timedOut?: boolean };
    if (!options.json) {
      io.out(r.stdout ?? "");
      io.err(r.stderr ?? "");
      if (r.timedOut) io.err("dispatcher agents run: the command timed out\n");
      else if (r.exitCode !== 0) io.err(`dispatcher agents run: the command exited with code ${r.exitCode ?? "?"}\n`);
    }
    return r.exitCode === 0 ? 0 : 1;
  });
}

export function addAgentsCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const agents = program.command("agents").description("servers' agents, and commands run through them as jobs");
  agents
    .command("show <server-id>")
    .description("the agent of a server: state, version, address, last seen")
    .option("--json", "JSON instead of text", false)
    .action(async (serverId: string, opts: { json: boolean }) => setExit(await runAgentsShow(serverId, { configFile: configFile(), json: opts.json })));
  agents
    .command("run <server-id> <command> [args...]")
    .description("run a command on the server through its agent (an agent.run_script job); put -- before the command's own options")
    .option("-t, --timeout <ms>", "the command's timeout (default 60000, at most 600000)", (v) => {
      const n = Number.parseInt(v, 10);
      if (!Number.isInteger(n) || n <= 0) throw new CommanderInvalidArgument("expected milliseconds, more than 0");
      return n;
    })
    .option("-e, --env <name=value>", "environment variable of the command (repeatable; stored with the job: no secrets)", (v: string, all: string[]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(v)) throw new CommanderInvalidArgument("expected NAME=value");
      return [...all, v];
    }, [])
    .option("-k, --idempotency-key <key>", "the same key again returns the same job")
    .option("-w, --wait", "wait for the job; print the command's output and exit 0 only when it exited 0", false)
    .option("--json", "JSON instead of text", false)
    .action(async (serverId: string, command: string, args: string[], opts: Omit<AgentRunOptions, "configFile">) =>
      setExit(await runAgentsRun(serverId, [command, ...args], { configFile: configFile(), ...opts })),
    );
  addFleetCommand(agents, configFile, setExit);
}
