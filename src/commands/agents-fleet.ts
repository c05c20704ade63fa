// `dispatcher agents run-fleet`: one command on many servers (RunFleetCommand), by ids or by account, region, name
// prefix and tags; with --wait it follows the parent job through WatchJob, drawing a progress bar on a terminal (a line
// per change otherwise) on stderr, then prints the outcome and the servers that failed.
import { readFileSync } from "node:fs";
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import type { DispatcherClients } from "../client/index.js";
import { Job, JobState, jobStateToJSON, type JobChildren } from "../gen/proto/dispatcher/v1/jobs.js";
import { json, optionalAccountIdOf, withClient, type ClientCommandOptions, type CommandIo } from "./client-command.js";
import { parseTag } from "./servers.js";

export interface FleetRunOptions extends ClientCommandOptions {
  server: string[];
  serversFile?: string | undefined;
  account?: string | undefined;
  region?: string | undefined;
  namePrefix?: string | undefined;
  tag?: Record<string, string> | undefined;
  maxConcurrency?: number | undefined;
  errorBudget?: number | undefined;
  timeout?: number | undefined;
  env: string[];
  idempotencyKey?: string | undefined;
  wait: boolean;
  /** Draw a bar that redraws in place (default: whether stderr is a terminal). */
  tty?: boolean | undefined;
}

/** Failed servers listed after the outcome, at most. */
const LIST_FAILED = 20;
const BAR_WIDTH = 30;

const stateName = (s: JobState): string => jobStateToJSON(s).replace("JOB_STATE_", "");

/** "[########--------------]  12/50 · 10 ok · 2 failed · 0 cancelled · 5 running · 33 pending" */
export function progressLine(c: JobChildren): string {
  const ended = c.succeeded + c.failed + c.cancelled;
  const filled = c.total === 0 ? BAR_WIDTH : Math.round((ended / c.total) * BAR_WIDTH);
  return `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ${ended}/${c.total} · ${c.succeeded} ok · ${c.failed} failed · ${c.cancelled} cancelled · ${c.running} running · ${c.pending} pending`;
}

/** Server ids from --server and --servers-file (one per line, `-` for stdin; blank lines and # comments skipped). */
function serverIds(options: FleetRunOptions): string[] {
  const ids = [...options.server];
  if (options.serversFile) {
    const text = readFileSync(options.serversFile === "-" ? 0 : options.serversFile, "utf8");
    for (const line of text.split("\n")) {
      const id = line.replace(/#.*/, "").trim();
      if (id) ids.push(id);
    }
  }
  return ids;
}

export function runAgentsFleet(argv: string[], options: FleetRunOptions): Promise<number> {
  return withClient("agents run-fleet", options, async (c, io) => {
    const env = Object.fromEntries(options.env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
    const timeout = options.timeout ? { seconds: String(Math.floor(options.timeout / 1000)), nanos: (options.timeout % 1000) * 1e6 } : undefined;
    const [command = "", ...args] = argv;
    const tags = options.tag ?? {};
    const selector = options.account || options.region || options.namePrefix || Object.keys(tags).length > 0 ? { accountId: await optionalAccountIdOf(c, options.account), regionId: options.region ?? "", namePrefix: options.namePrefix ?? "", tags } : undefined;
    const started = await c.agents.runFleetCommand({
      serverIds: serverIds(options),
      selector,
      command,
      args,
      env,
      timeout,
      maxConcurrency: options.maxConcurrency ?? 0,
      errorBudget: options.errorBudget ?? 0,
      idempotencyKey: options.idempotencyKey ?? "",
    });
    const job = started.job;
    if (!job) throw new Error("RunFleetCommand answered without a job");
    if (!options.wait) {
      io.out(options.json ? json(Job.toJSON(job)) : `job ${job.id} started on ${started.serverCount} servers (dispatcher jobs watch ${job.id})\n`);
      return;
    }
    io.err(`job ${job.id}: ${started.serverCount} servers\n`);
    const last = await follow(c, io, job.id, options.tty ?? process.stderr.isTTY === true);
    if (options.json) io.out(json(last ? Job.toJSON(last) : null));
    else if (last) await report(c, io, last);
    return last?.state === JobState.JOB_STATE_SUCCEEDED ? 0 : 1;
  });
}

/** Follows the parent until it ends, drawing its children's counts on stderr; the job as it ended. */
async function follow(c: DispatcherClients, io: CommandIo, id: string, tty: boolean): Promise<Job | undefined> {
  let last: Job | undefined;
  let drawn = "";
  for await (const m of c.jobs.watchJob({ id })) {
    if (!m.job) continue;
    last = m.job;
    if (!m.job.children) continue;
    const line = progressLine(m.job.children);
    if (line === drawn) continue;
    drawn = line;
    // On a terminal the bar redraws in place; in a log, one line per change.
    io.err(tty ? `\r${line}\u001b[K` : `${line}\n`);
  }
  if (tty && drawn) io.err("\n");
  return last;
}

/** The outcome on stdout, and the servers that failed with why (from the children). */
async function report(c: DispatcherClients, io: CommandIo, job: Job): Promise<void> {
  const r = (job.result ?? job.error?.details ?? {}) as { servers?: number; succeeded?: number; failed?: number; cancelled?: number };
  io.out(`${stateName(job.state)}: ${r.succeeded ?? 0} of ${r.servers ?? job.children?.total ?? 0} servers succeeded, ${r.failed ?? 0} failed, ${r.cancelled ?? 0} cancelled\n`);
  if (job.error) io.out(`${job.error.code}: ${job.error.message}\n`);
  const failed = await c.jobs.listJobs({ parentId: job.id, state: JobState.JOB_STATE_FAILED, pageSize: LIST_FAILED });
  for (const child of failed.jobs) io.out(`  server ${child.resource?.id ?? "?"}: ${child.error ? `${child.error.code}: ${child.error.message}` : "failed"} (job ${child.id})\n`);
  if (failed.nextPageToken) io.out(`  … more: dispatcher jobs ls --parent ${job.id} --state failed --all\n`);
}

const positiveInt = (what: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new CommanderInvalidArgument(`expected ${what}, a whole number above 0`);
  return n;
};

export function addFleetCommand(agents: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  agents
    .command("run-fleet <command> [args...]")
    .description("run a command on many servers through their agents (an agent.fleet_run job with one child per server); put -- before the command's own options")
    .option("-s, --server <id>", "a server (repeatable; commands start in this order)", (v: string, all: string[]) => [...all, v], [])
    .option("--servers-file <file>", "server ids, one per line (- for stdin)")
    .option("--account <id|name>", "instead of ids: the servers of this account that have an agent (its id, or its name where one visible account has it)")
    .option("--region <id>", "with --account: only this region's servers")
    .option("--name-prefix <text>", "with --account: only servers whose name starts with this")
    .option("--tag <key=value>", "with --account: only servers with this tag (repeatable: all must match)", parseTag)
    .option("-c, --max-concurrency <n>", "servers running the command at once (default 10, at most 1000)", positiveInt("servers"))
    .option("-b, --error-budget <n>", "stop after this many servers failed (default 1: the first failure stops it)", positiveInt("failures"))
    .option("-t, --timeout <ms>", "each server's command timeout (default 60000, at most 600000)", positiveInt("milliseconds"))
    .option("-e, --env <name=value>", "environment variable of the command (repeatable; stored with the jobs: no secrets)", (v: string, all: string[]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(v)) throw new CommanderInvalidArgument("expected NAME=value");
      return [...all, v];
    }, [])
    .option("-k, --idempotency-key <key>", "the same key again returns the same job")
    .option("-w, --wait", "follow it with a progress bar on stderr; exit 0 only when every server (within the budget) succeeded", false)
    .option("--json", "JSON instead of text", false)
    .action(async (command: string, args: string[], opts: Omit<FleetRunOptions, "configFile">) =>
      setExit(await runAgentsFleet([command, ...args], { configFile: configFile(), ...opts })),
    );
}
