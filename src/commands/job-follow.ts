// The job an action command started: printed, or with --wait followed through WatchJob to its end (a JSON line per
// update with --json). Exit 0 when it succeeded, or when it was only started.
import type { DispatcherClients } from "../client/index.js";
import { Job, JobEvent, JobState, jobStateToJSON, type WatchJobResponse } from "../gen/proto/dispatcher/v1/jobs.js";
import { json, time, type CommandIo } from "./client-command.js";

const TERMINAL = new Set([JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED]);
const jobState = (s: JobState): string => jobStateToJSON(s).replace("JOB_STATE_", "");

export interface FollowOptions {
  wait?: boolean | undefined;
  json?: boolean | undefined;
}

/**
 * What plain --wait output shows between the job's first and last lines: a line per event ("events"), the same with
 * the job's progress percentage ("percent", for jobs that report it), or nothing ("ends").
 */
export type FollowLines = "events" | "percent" | "ends";

function eventLine(m: WatchJobResponse, lines: FollowLines): string | null {
  if (!m.event || lines === "ends") return null;
  const percent = lines === "percent" ? ` ${m.job ? `${m.job.progressPercent}%` : ""}` : "";
  const message = m.event.message ? `  ${m.event.message}` : m.job?.progressMessage ? `  ${m.job.progressMessage}` : "";
  return `  ${time(m.event.time)}  ${m.event.type.padEnd(12)} ${jobState(m.event.toState).padEnd(10)}${percent}${message}\n`;
}

/** Prints the job (and `extra` with --json); with --wait follows it. `command` names the caller in messages. */
export async function reportJob(
  command: string,
  c: DispatcherClients,
  io: CommandIo,
  options: FollowOptions,
  job: Job | undefined,
  extra: Record<string, unknown> = {},
  lines: FollowLines = "events",
): Promise<number> {
  if (!job) return 1;
  if (!options.wait) {
    if (options.json) io.out(json({ job: Job.toJSON(job), ...extra }));
    else io.out(`${job.kind} job ${job.id}: ${jobState(job.state)}  (follow it: dispatcher jobs watch ${job.id})\n`);
    return 0;
  }
  if (!options.json) io.out(`${job.kind} job ${job.id}: ${jobState(job.state)}\n`);
  const last = await followJob(c, job, (m) => {
    if (options.json) io.out(json({ job: m.job ? Job.toJSON(m.job) : null, event: m.event ? JobEvent.toJSON(m.event) : null, ...extra }));
    else {
      const line = eventLine(m, lines);
      if (line) io.out(line);
    }
  });
  if (!TERMINAL.has(last.state)) {
    io.err(`dispatcher ${command}: the stream ended before job ${last.id} did\n`);
    return 1;
  }
  if (!options.json) io.out(`${last.kind} job ${last.id}: ${jobState(last.state)}${last.error ? ` (${last.error.code}: ${last.error.message})` : ""}\n`);
  return last.state === JobState.JOB_STATE_SUCCEEDED ? 0 : 1;
}

/**
 * Follows `job` through WatchJob until its stream ends (the job ended, or the server went away), handing each update
 * to `each`; resolves with the job as last seen (not terminal when the stream ended first).
 */
export async function followJob(c: DispatcherClients, job: Job, each: (m: WatchJobResponse) => void = () => undefined): Promise<Job> {
  let last = job;
  for await (const m of c.jobs.watchJob({ id: job.id })) {
    if (m.job) last = m.job;
    each(m);
  }
  return last;
}

/** Whether a job has reached its end. */
export const jobEnded = (job: Job): boolean => TERMINAL.has(job.state);
