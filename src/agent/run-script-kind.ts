// Job kind agent.run_script: runs a command on a server through its agent (RunScript) and keeps the exit code and
// the (capped, UTF-8) output in the job's result. Delivery is at least once: a retry after a lost answer runs the
// command again, so commands should be safe to repeat. The command's environment (where users put secrets) rides in
// the payload sealed for its server (src/sealed.ts) and is opened only here, to hand it to the agent.
import { status as Code } from "@grpc/grpc-js";
import { z } from "zod";
import type { JobContext, JobKind, JobOutcome } from "../jobs/catalog.js";
import { PermanentJobError, RetryableJobError } from "../jobs/errors.js";
import type { AgentChannels } from "./agent-channels.js";
import { AgentCallError, openAgentClient } from "./agent-client.js";
import { agentEndpointRules, checkAgentEndpoint } from "./endpoints.js";
import * as repo from "./repository.js";
import { agentConnector } from "./connect.js";
import { credentialKeyOf } from "./secrets.js";
import { open, seal, type SealPurpose } from "../sealed.js";

export const RUN_SCRIPT_KIND = "agent.run_script";
export const MAX_SCRIPT_TIMEOUT_MS = 10 * 60_000;
export const DEFAULT_SCRIPT_TIMEOUT_MS = 60_000;
/** Output kept per stream in the job's result (the agent drops the rest and says so). */
export const MAX_OUTPUT_BYTES = 64 * 1024;
/** Beyond the script's own timeout, time for the call itself. */
const CALL_SLACK_MS = 15_000;

const SCRIPT_ENV: SealPurpose = { info: "dispatcher:script-env:v1", noun: "sealed script environment" };
const scriptEnv = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).max(256), z.string().max(4096));

export const runScriptPayload = z.object({
  serverId: z.string().length(26),
  command: z.string().min(1).max(4096),
  args: z.array(z.string().max(4096)).max(256).default([]),
  /** The environment in clear: only in payloads written before it was sealed (new ones keep it empty). */
  env: scriptEnv.default({}),
  /** The environment as JSON, sealed for the server (associated data: its id). */
  sealedEnv: z.string().min(1).optional(),
  timeoutMs: z.number().int().min(1).max(MAX_SCRIPT_TIMEOUT_MS).default(DEFAULT_SCRIPT_TIMEOUT_MS),
  maxOutputBytes: z.number().int().min(1).max(MAX_OUTPUT_BYTES).default(MAX_OUTPUT_BYTES),
  /**
   * A command that exits other than 0 (or times out) fails the job, its output in the error's details, instead of
   * succeeding with the exit code in the result: what a fleet command's children count as a failure.
   */
  failOnNonZeroExit: z.boolean().default(false),
});

export type RunScriptPayload = z.output<typeof runScriptPayload>;

export interface NewRunScript {
  serverId: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  timeoutMs: number;
  failOnNonZeroExit: boolean;
}

/** A new job's payload (RunServerScript's, or a fleet command's child): its environment sealed, never in clear. */
export function runScriptPayloadOf(credentialKey: Buffer, input: NewRunScript): RunScriptPayload {
  const { env, ...rest } = input;
  const sealed = Object.keys(env).length > 0 ? { sealedEnv: seal(credentialKey, SCRIPT_ENV, input.serverId, JSON.stringify(env)) } : {};
  return { ...rest, env: {}, ...sealed, maxOutputBytes: MAX_OUTPUT_BYTES };
}

/** The environment to run with: opened from `sealedEnv`, or the clear `env` of an older payload. */
export function scriptEnvOf(credentialKey: Buffer, p: Pick<RunScriptPayload, "serverId" | "env" | "sealedEnv">): Record<string, string> | Error {
  if (p.sealedEnv === undefined) return p.env;
  const opened = open(credentialKey, SCRIPT_ENV, p.serverId, p.sealedEnv);
  if (opened instanceof Error) return opened;
  let parsed: unknown;
  try {
    parsed = JSON.parse(opened);
  } catch {
    parsed = null;
  }
  const env = scriptEnv.safeParse(parsed);
  return env.success ? env.data : new Error(`the sealed script environment of server ${p.serverId} is not a set of variables`);
}

/**
 * The kind, calling agents over `channels` (a worker's kept channels, src/agent/agent-channels.ts) when given, or over a
 * channel of its own per call. The composition root gives a worker's catalog its channels.
 */
export function runScriptKindOver(channels?: AgentChannels): JobKind<RunScriptPayload> {
  return { ...runScriptKind, handle: (ctx, p) => runScript(ctx, p, channels) };
}

export const runScriptKind: JobKind<RunScriptPayload> = {
  kind: RUN_SCRIPT_KIND,
  payload: runScriptPayload,
  ackWaitMs: 30_000,
  maxAttempts: 3,
  backoffMs: [2_000, 10_000],
  timeoutMs: MAX_SCRIPT_TIMEOUT_MS + 5 * 60_000,
  permission: "agents.execute",
  handle: (ctx, p) => runScript(ctx, p),
};

async function runScript(ctx: JobContext, p: RunScriptPayload, channels?: AgentChannels): Promise<JobOutcome> {
  const found = await repo.findAgentWithServer(ctx.sql, p.serverId);
  const agent = found?.agent;
  if (!agent || agent.state === "GONE") throw new PermanentJobError(`server ${p.serverId} has no registered agent`, "FAILED_PRECONDITION", { serverId: p.serverId });
  const server = found.server;
  const vouched = server ? checkAgentEndpoint(server, agent.address, agent.port, agentEndpointRules(ctx.config)) : null;
  if (!vouched?.ok) throw new PermanentJobError(`the agent of server ${p.serverId} is at an address the cloud no longer reports for it; it must register again`, "FAILED_PRECONDITION", { serverId: p.serverId });
  const env = scriptEnvOf(credentialKeyOf(ctx.config), p);
  if (env instanceof Error) throw new PermanentJobError(env.message, "FAILED_PRECONDITION", { serverId: p.serverId });
  ctx.checkpoint();
  const endpoint = agentConnector(ctx.config)(agent);
  const client = channels?.acquire(endpoint) ?? openAgentClient(endpoint);
  try {
    const r = await client.runScript(
      { command: p.command, args: p.args, env, timeout: millisToDuration(p.timeoutMs), maxOutputBytes: p.maxOutputBytes },
      { deadline: new Date(Date.now() + p.timeoutMs + CALL_SLACK_MS), signal: ctx.signal },
    );
    const result = {
      agentId: agent.id,
      exitCode: r.exitCode,
      stdout: r.stdout.toString("utf8"),
      stderr: r.stderr.toString("utf8"),
      stdoutTruncated: r.stdoutTruncated,
      stderrTruncated: r.stderrTruncated,
      timedOut: r.timedOut,
      durationMs: r.duration ? Number(r.duration.seconds) * 1000 + Math.round(r.duration.nanos / 1e6) : 0,
    };
    if (p.failOnNonZeroExit && (r.timedOut || r.exitCode !== 0)) {
      const what = r.timedOut ? `timed out after ${p.timeoutMs} ms` : `exited with code ${r.exitCode}`;
      throw new PermanentJobError(`the command ${what} on server ${p.serverId}`, "FAILED_PRECONDITION", { serverId: p.serverId, ...result });
    }
    return { status: "succeeded", result };
  } catch (err) {
    if (!(err instanceof AgentCallError)) throw err;
    if (err.unreachable) throw new RetryableJobError(`agent of server ${p.serverId} did not answer (${Code[err.code]})`, "UNAVAILABLE", { cause: err });
    if (err.code === Code.UNAUTHENTICATED) throw new PermanentJobError(`agent of server ${p.serverId} refused the dispatcher's credential (re-registered since?)`, "FAILED_PRECONDITION", { serverId: p.serverId });
    throw new PermanentJobError(`agent of server ${p.serverId} refused the command: ${Code[err.code]}`, "FAILED_PRECONDITION", { serverId: p.serverId, code: Code[err.code] });
  } finally {
    client.close();
  }
}

function millisToDuration(ms: number): { seconds: string; nanos: number } {
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}
