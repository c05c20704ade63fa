// `dispatcher jobs ls|show|watch|cancel|retry|replay`: operators' view of jobs through the dispatcher's API (the
// client's address and API key come from client.address and client.token / DISPATCHER_CLIENT_TOKEN).
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import { json, optionalAccountIdOf, parseTime, table, time, userIdOf, withClient, type ClientCommandOptions, type CommandIo } from "./client-command.js";
import { Job, JobEvent, JobState, jobStateToJSON } from "../gen/proto/dispatcher/v1/jobs.js";


export type JobCommandOptions = ClientCommandOptions;
/** Kept for callers of this module. */
export type JobCommandIo = CommandIo;

const TERMINAL = new Set([JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED]);

export interface ListOptions extends JobCommandOptions {
  state?: JobState | undefined;
  kind?: string | undefined;
  resource?: { type: string; id: string } | undefined;
  requestedBy?: string | undefined;
  /** Children of this job (a fleet command's servers). */
  parent?: string | undefined;
  /** An account's id or name: its jobs and those of its servers and other resources. */
  account?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  limit: number;
  pageToken?: string | undefined;
  all?: boolean | undefined;
}

const stateName = (s: JobState): string => jobStateToJSON(s).replace("JOB_STATE_", "");


function jobRow(j: Job): string[] {
  return [j.id, j.kind, stateName(j.state), `${j.attempt}/${j.maxAttempts}`, `${j.progressPercent}%`, j.requestedBy, time(j.createTime), j.resource ? `${j.resource.type}/${j.resource.id}` : "-"];
}

function describeJob(j: Job): string {
  const lines: [string, string][] = [
    ["id", j.id],
    ["kind", j.kind],
    ["state", stateName(j.state) + (j.cancelRequested ? " (cancel requested)" : "")],
    ["attempt", `${j.attempt} of ${j.maxAttempts}`],
    ["progress", `${j.progressPercent}%${j.progressMessage ? ` ${j.progressMessage}` : ""}`],
    ["requested by", j.requestedBy],
    ["resource", j.resource ? `${j.resource.type}/${j.resource.id}` : "-"],
    ["idempotency key", j.idempotencyKey || "-"],
    ["trace id", j.traceId || "-"],
    ["created", time(j.createTime)],
    ["started", time(j.startTime)],
    ["ended", time(j.endTime)],
    ["deadline", time(j.deadline)],
  ];
  if (j.parentId) lines.push(["parent", j.parentId]);
  if (j.children) {
    const c = j.children;
    lines.push(["children", `${c.total}: ${c.succeeded} succeeded, ${c.failed} failed, ${c.cancelled} cancelled, ${c.running} running, ${c.pending} pending (jobs ls --parent ${j.id})`]);
  }
  if (j.error) lines.push(["error", `${j.error.code}: ${j.error.message}`]);
  if (j.result) lines.push(["result", JSON.stringify(j.result)]);
  return lines.map(([k, v]) => `${`${k}:`.padEnd(17)}${v}`).join("\n") + "\n";
}

function eventLine(e: JobEvent): string {
  const move = e.fromState === JobState.JOB_STATE_UNSPECIFIED ? stateName(e.toState) : `${stateName(e.fromState)} → ${stateName(e.toState)}`;
  return `${e.sequence.padStart(3)}  ${time(e.time)}  ${e.type.padEnd(26)} ${move.padEnd(22)} attempt ${e.attempt}  by ${e.actor}${e.message ? `  ${e.message}` : ""}`;
}

export async function runJobsList(options: ListOptions): Promise<number> {
  return withClient("jobs ls", options, async (c, io) => {
    const jobs: Job[] = [];
    const filters = {
      state: options.state,
      kind: options.kind,
      resource: options.resource,
      requestedBy: options.requestedBy ? await userIdOf(c, options.requestedBy) : undefined,
      parentId: options.parent,
      accountId: await optionalAccountIdOf(c, options.account),
      createdAfter: options.since,
      createdBefore: options.until,
    };
    let token = options.pageToken ?? "";
    do {
      const page = await c.jobs.listJobs({ pageSize: options.limit, pageToken: token, ...filters });
      jobs.push(...page.jobs);
      token = page.nextPageToken;
    } while (options.all && token);
    if (options.json) {
      io.out(json({ jobs: jobs.map((j) => Job.toJSON(j)), nextPageToken: token }));
    } else {
      io.out(table(["ID", "KIND", "STATE", "ATTEMPT", "PROGRESS", "REQUESTED BY", "CREATED", "RESOURCE"], jobs.map(jobRow)));
      if (token) io.err(`more jobs: --page-token ${token} (or --all)\n`);
    }
    return 0;
  });
}

export async function runJobsShow(id: string, options: JobCommandOptions): Promise<number> {
  return withClient("jobs show", options, async (c, io) => {
    const [{ job }, { events }] = await Promise.all([c.jobs.getJob({ id }), c.jobs.listJobEvents({ id })]);
    if (options.json) io.out(json({ job: job ? Job.toJSON(job) : null, events: events.map((e) => JobEvent.toJSON(e)) }));
    else io.out(`${job ? describeJob(job) : ""}\nevents:\n${events.map(eventLine).join("\n")}\n`);
    return 0;
  });
}

/** Follows a job until it ends; exit 0 when it SUCCEEDED, 1 when it FAILED or was CANCELLED. */
export async function runJobsWatch(id: string, options: JobCommandOptions): Promise<number> {
  return withClient("jobs watch", options, async (c, io) => {
    let last: Job | undefined;
    for await (const m of c.jobs.watchJob({ id })) {
      last = m.job;
      if (options.json) io.out(json({ job: m.job ? Job.toJSON(m.job) : null, event: m.event ? JobEvent.toJSON(m.event) : null }));
      else if (m.event) io.out(`${eventLine(m.event)}${m.job && m.event.type === "progress" ? `  ${m.job.progressPercent}% ${m.job.progressMessage}` : ""}\n`);
      else if (m.job) io.out(`${m.job.id} ${m.job.kind}: ${stateName(m.job.state)} (attempt ${m.job.attempt} of ${m.job.maxAttempts})\n`);
    }
    if (!last || !TERMINAL.has(last.state)) {
      io.err("dispatcher jobs watch: the stream ended before the job did\n");
      return 1;
    }
    if (!options.json && last.error) io.out(`${stateName(last.state)}: ${last.error.code}: ${last.error.message}\n`);
    return last.state === JobState.JOB_STATE_SUCCEEDED ? 0 : 1;
  });
}

export async function runJobsCancel(id: string, options: JobCommandOptions & { reason?: string | undefined }): Promise<number> {
  return withClient("jobs cancel", options, async (c, io) => {
    const { job } = await c.jobs.cancelJob({ id, reason: options.reason ?? "" });
    if (options.json) io.out(json({ job: job ? Job.toJSON(job) : null }));
    else if (job) io.out(job.state === JobState.JOB_STATE_CANCELLED ? `${id} cancelled\n` : `${id} is ${stateName(job.state)}: cancellation requested; it stops at its next checkpoint\n`);
    return 0;
  });
}

/** RetryJob: a FAILED or CANCELLED job runs again (replay: a dead-lettered one, whose dead letter is marked replayed). */
export async function runJobsRetry(id: string, options: JobCommandOptions & { idempotencyKey?: string | undefined; verb?: string }): Promise<number> {
  // `jobs replay` runs this too (a dead-lettered job's retry, reported as "replayed").
  return withClient(options.verb === "replayed" ? "jobs replay" : "jobs retry", options, async (c, io) => {
    const { job } = await c.jobs.retryJob({ id, idempotencyKey: options.idempotencyKey ?? "" });
    if (options.json) io.out(json({ job: job ? Job.toJSON(job) : null }));
    else if (job) io.out(`${id} ${options.verb ?? "retried"}: ${stateName(job.state)}, up to ${job.maxAttempts} attempts in all\n`);
    return 0;
  });
}

function parseState(value: string): JobState {
  const key = `JOB_STATE_${value.toUpperCase()}` as keyof typeof JobState;
  const state = JobState[key];
  if (state === undefined || state === JobState.JOB_STATE_UNSPECIFIED) throw new CommanderInvalidArgument("one of queued, running, succeeded, failed, cancelled");
  return state;
}

function parseResource(value: string): { type: string; id: string } {
  const [type = "", id = ""] = value.split("/", 2);
  if (!type) throw new CommanderInvalidArgument("TYPE or TYPE/ID, e.g. server/01J…");
  return { type, id };
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new CommanderInvalidArgument("an integer from 1 to 1000");
  return n;
}

/** Adds `dispatcher jobs …` to the program. */
export function addJobCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const jobs = program
    .command("jobs")
    .description("list, inspect, follow, cancel and retry jobs through the dispatcher API (client.address, client.token)")
    .option("-a, --address <host:port>", "dispatcher to call (default: client.address)");
  const common = (cmd: Command) => ({ configFile: configFile(), address: jobs.opts<{ address?: string }>().address, json: cmd.opts<{ json?: boolean }>().json });

  jobs
    .command("ls")
    .description("list jobs, newest first")
    .option("--state <state>", "queued, running, succeeded, failed or cancelled", parseState)
    .option("--kind <kind>", "job kind, e.g. diagnostic")
    .option("--resource <type[/id]>", "jobs acting on this resource", parseResource)
    .option("--requested-by <principal>", "jobs this principal requested (me: yours)")
    .option("--parent <job id>", "children of this job (e.g. a fleet command's servers)")
    .option("--account <id|name>", "jobs of this account, its servers and its other resources")
    .option("--since <time>", "jobs created at or after this time (ISO 8601)", parseTime)
    .option("--until <time>", "jobs created before this time (ISO 8601)", parseTime)
    .option("-n, --limit <n>", "jobs per page (1–1000)", parseLimit, 50)
    .option("--page-token <token>", "continue a previous listing")
    .option("--all", "fetch every page", false)
    .option("--json", "one JSON object instead of a table", false)
    .action(async (opts: { state?: JobState; kind?: string; resource?: { type: string; id: string }; requestedBy?: string; parent?: string; account?: string; since?: Date; until?: Date; limit: number; pageToken?: string; all: boolean }, cmd: Command) =>
      setExit(await runJobsList({ ...common(cmd), ...opts })),
    );

  jobs
    .command("show <id>")
    .description("a job and its history")
    .option("--json", "JSON instead of text", false)
    .action(async (id: string, _opts: unknown, cmd: Command) => setExit(await runJobsShow(id, common(cmd))));

  jobs
    .command("watch <id>")
    .description("follow a job until it ends (exit 0 when it succeeded)")
    .option("--json", "a JSON line per update", false)
    .action(async (id: string, _opts: unknown, cmd: Command) => setExit(await runJobsWatch(id, common(cmd))));

  jobs
    .command("cancel <id>")
    .description("cancel a queued job, or ask a running one to stop")
    .option("-r, --reason <text>", "why (recorded in the job's history)")
    .option("--json", "JSON instead of text", false)
    .action(async (id: string, opts: { reason?: string }, cmd: Command) => setExit(await runJobsCancel(id, { ...common(cmd), reason: opts.reason })));

  jobs
    .command("retry <id>")
    .description("run a FAILED or CANCELLED job again")
    .option("-k, --idempotency-key <key>", "the same key again returns the same retry")
    .option("--json", "JSON instead of text", false)
    .action(async (id: string, opts: { idempotencyKey?: string }, cmd: Command) => setExit(await runJobsRetry(id, { ...common(cmd), idempotencyKey: opts.idempotencyKey })));

  jobs
    .command("replay <id>")
    .description("re-run a dead-lettered job (its attempts ran out) with a fresh set of attempts")
    .option("-k, --idempotency-key <key>", "the same key again returns the same replay")
    .option("--json", "JSON instead of text", false)
    .action(async (id: string, opts: { idempotencyKey?: string }, cmd: Command) => setExit(await runJobsRetry(id, { ...common(cmd), idempotencyKey: opts.idempotencyKey, verb: "replayed" })));
}
