// ServerAgentService's rules: a server's agent as the inventory knows it, and commands on it as jobs. Scoped like
// servers: a caller outside the server's account gets NOT_FOUND, the same answer as for a server that does not exist.
import type { SqlPool } from "../db/sql.js";
import { FailedPreconditionError, NotFoundError } from "../errors.js";
import type { Principal } from "../iam/principal.js";
import type { Job } from "../jobs/model.js";
import type { JobService } from "../jobs/service.js";
import { inScope, scopeOf } from "../iam/scope.js";
import * as repo from "./repository.js";
import { RUN_SCRIPT_KIND, runScriptPayloadOf } from "./run-script-kind.js";

export type AgentView = Omit<repo.AgentRow, "credentialHash" | "nextPingAt">;

export interface RunServerScriptInput {
  serverId: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  timeoutMs: number;
  idempotencyKey: string;
}

export interface ServerAgentService {
  getServerAgent(principal: Readonly<Principal>, serverId: string): Promise<AgentView>;
  runServerScript(principal: Readonly<Principal>, input: RunServerScriptInput): Promise<Job>;
}

/** `credentialKey` seals a script's environment into its job (run-script-kind.ts). */
export function createServerAgentService(sql: SqlPool, jobs: Pick<JobService, "createJob">, credentialKey: () => Buffer): ServerAgentService {
  const visibleServer = async (principal: Readonly<Principal>, serverId: string): Promise<repo.ServerForAgent> => {
    const server = await repo.findServer(sql, serverId);
    const scope = scopeOf(principal);
    if (!server || !inScope(scope, server.accountId)) throw new NotFoundError("server", serverId);
    return server;
  };

  return {
    async getServerAgent(principal, serverId) {
      await visibleServer(principal, serverId);
      const agent = await repo.findAgentByServer(sql, serverId);
      if (!agent) throw new NotFoundError("agent of server", serverId);
      const { credentialHash: _hash, nextPingAt: _next, ...view } = agent;
      return view;
    },

    async runServerScript(principal, input) {
      const server = await visibleServer(principal, input.serverId);
      if (server.state === "TERMINATED" || server.state === "TERMINATING") throw new FailedPreconditionError(`server ${server.id} is ${server.state.toLowerCase()}`, "SERVER_TERMINATED");
      const agent = await repo.findAgentByServer(sql, server.id);
      if (!agent || agent.state === "GONE") throw new FailedPreconditionError(`server ${server.id} has no registered agent`, "NO_AGENT");
      const payload = runScriptPayloadOf(credentialKey(), { serverId: server.id, command: input.command, args: input.args, env: input.env, timeoutMs: input.timeoutMs, failOnNonZeroExit: false });
      const { job } = await jobs.createJob({ kind: RUN_SCRIPT_KIND, payload, requester: principal, resource: { type: "server", id: server.id }, idempotencyKey: input.idempotencyKey || null });
      return job;
    },
  };
}
