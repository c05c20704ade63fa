// Job kind agent.fleet_run: one command on many servers. The job is the parent of one agent.run_script child per
// server, all written with it in its creation transaction (src/agent/fleet.ts); its handler releases them at most
// `maxConcurrency` at a time, stops after `errorBudget` failures, and ends SUCCEEDED, or FAILED once the budget is
// spent (src/jobs/supervise.ts). It holds a worker slot while its children run. The command's environment is not in its
// payload: each child carries it, sealed for its server (run-script-kind.ts).
import { z } from "zod";
import type { JobContext, JobKind, JobOutcome } from "../jobs/catalog.js";
import type { AgentChannels } from "./agent-channels.js";
import { connectAhead } from "./fleet-ahead.js";
import { PermanentJobError } from "../jobs/errors.js";
import { describeCounts, superviseChildren } from "../jobs/supervise.js";
import { DEFAULT_SCRIPT_TIMEOUT_MS, MAX_SCRIPT_TIMEOUT_MS, runScriptKind } from "./run-script-kind.js";

export const FLEET_RUN_KIND = "agent.fleet_run";
/** Servers one fleet command may address. */
export const MAX_FLEET_SERVERS = 10_000;
/** Children running at once at most, and the default. */
export const MAX_FLEET_CONCURRENCY = 1_000;
export const DEFAULT_FLEET_CONCURRENCY = 10;

export const fleetRunPayload = z.object({
  command: z.string().min(1).max(4096),
  args: z.array(z.string().max(4096)).max(256).default([]),
  /** Each server's command timeout. */
  timeoutMs: z.number().int().min(1).max(MAX_SCRIPT_TIMEOUT_MS).default(DEFAULT_SCRIPT_TIMEOUT_MS),
  /** Servers (children) running the command at once at most: the rate limit. */
  maxConcurrency: z.number().int().min(1).max(MAX_FLEET_CONCURRENCY).default(DEFAULT_FLEET_CONCURRENCY),
  /** The parent stops releasing, and ends FAILED, once this many servers failed. */
  errorBudget: z.number().int().min(1).max(MAX_FLEET_SERVERS).default(1),
  /** Servers addressed (children written with the job). */
  servers: z.number().int().min(1).max(MAX_FLEET_SERVERS),
});

export type FleetRunPayload = z.output<typeof fleetRunPayload>;

export const fleetRunKind: JobKind<FleetRunPayload> = {
  kind: FLEET_RUN_KIND,
  payload: fleetRunPayload,
  ackWaitMs: 30_000,
  // A takeover (the worker running it died) is an attempt: the next one resumes from the children's states.
  maxAttempts: 10,
  backoffMs: [1_000, 5_000, 15_000],
  // 10,000 servers one at a time at the longest script timeout would take far longer: the deadline is a backstop,
  // and a parent past it leaves its unreleased children to the reconciler, which cancels them.
  timeoutMs: 7 * 24 * 3_600_000,
  permission: "agents.execute_fleet",
  parent: true,

  handle: (ctx, p) => runFleet(ctx, p),
};

/**
 * The kind, connecting ahead over `channels` (a worker's kept channels, src/agent/agent-channels.ts) to the agents of
 * the children it releases next: the worker that runs the parent usually runs its children too. The composition root
 * gives a worker's catalog its channels.
 */
export function fleetRunKindOver(channels?: AgentChannels): JobKind<FleetRunPayload> {
  return { ...fleetRunKind, handle: (ctx, p) => runFleet(ctx, p, channels) };
}

async function runFleet(ctx: JobContext, p: FleetRunPayload, channels?: AgentChannels): Promise<JobOutcome> {
  // A budget larger than the fleet: the command fails when every server failed.
  const errorBudget = Math.min(p.errorBudget, p.servers);
  const afterRound = channels ? connectAhead(ctx.sql, ctx.config, channels, ctx.jobId, p.maxConcurrency, ctx.log) : undefined;
  const { counts, budgetSpent } = await superviseChildren(ctx, {
    maxRunning: p.maxConcurrency,
    errorBudget,
    childTimeoutMs: runScriptKind.timeoutMs,
    subjectPrefix: ctx.config.mq.subjectPrefix,
    noun: "servers",
    afterRound,
  });
  const summary = { servers: counts.total, succeeded: counts.succeeded, failed: counts.failed, cancelled: counts.cancelled, errorBudget, maxConcurrency: p.maxConcurrency };
  if (budgetSpent) {
    throw new PermanentJobError(`stopped after ${counts.failed} of ${counts.total} servers failed (error budget ${errorBudget}); ${describeCounts(counts, "servers")}`, "ABORTED", summary);
  }
  return { status: "succeeded", result: summary };
}
