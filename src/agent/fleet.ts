// RunFleetCommand's rules: which servers a fleet command addresses (by ids, or by account, region and name prefix),
// object scope over each of them, and the parent job (agent.fleet_run) written with one held agent.run_script child
// per server in one transaction — a multi-row insert, not one create per server.
import { newId } from "../db/ids.js";
import type { SqlPool } from "../db/sql.js";
import { FailedPreconditionError, NotFoundError, PermissionDeniedError } from "../errors.js";
import type { Principal } from "../iam/principal.js";
import { isAllowed } from "../iam/permissions.js";
import { inScope, scopeOf } from "../iam/scope.js";
import { insertHeldChildren } from "../jobs/children.js";
import type { Job } from "../jobs/model.js";
import type { NewJob } from "../jobs/repository.js";
import type { JobService } from "../jobs/service.js";
import { FLEET_RUN_KIND, MAX_FLEET_SERVERS, type FleetRunPayload } from "./fleet-kind.js";
import { accountExists, findFleetServers, selectFleetServers, type FleetSelector, type FleetServer } from "./fleet-repository.js";
import { RUN_SCRIPT_KIND, runScriptKind, runScriptPayloadOf } from "./run-script-kind.js";

export type { FleetSelector } from "./fleet-repository.js";

export interface RunFleetCommandInput {
  /** Either server ids (in the order their commands should start) … */
  serverIds: string[];
  /** … or a selector. */
  selector: FleetSelector | null;
  command: string;
  args: string[];
  env: Record<string, string>;
  timeoutMs: number;
  maxConcurrency: number;
  errorBudget: number;
  idempotencyKey: string;
}

export interface FleetCommand {
  job: Job;
  servers: number;
}

/** How many offending servers an error names at most. */
const NAMED = 10;

/** `credentialKey` seals the command's environment into each child, for its server (run-script-kind.ts). */
export function createFleetService(sql: SqlPool, jobs: Pick<JobService, "createJob" | "findByIdempotencyKey">, credentialKey: () => Buffer) {
  /** The servers by ids, in the order given: each in the caller's scope (NOT_FOUND otherwise) and able to take a command. */
  const byIds = async (principal: Readonly<Principal>, ids: string[]): Promise<FleetServer[]> => {
    const scope = scopeOf(principal);
    const found = new Map((await findFleetServers(sql, ids)).map((s) => [s.id, s]));
    const missing = ids.find((id) => !found.get(id) || !inScope(scope, (found.get(id) as FleetServer).accountId));
    if (missing) throw new NotFoundError("server", missing);
    const servers = ids.map((id) => found.get(id) as FleetServer);
    const unable = servers.filter((s) => s.state === "TERMINATED" || s.state === "TERMINATING" || s.agentState === null || s.agentState === "GONE");
    if (unable.length > 0) {
      const named = unable.slice(0, NAMED).map((s) => s.id).join(", ");
      throw new FailedPreconditionError(
        `${unable.length} of the servers cannot take a command (terminated, or no registered agent): ${named}${unable.length > NAMED ? ", …" : ""}`,
        "NO_AGENT",
        [],
        { servers: String(unable.length) },
      );
    }
    return servers;
  };

  const bySelector = async (principal: Readonly<Principal>, selector: FleetSelector): Promise<FleetServer[]> => {
    if (!inScope(scopeOf(principal), selector.accountId) || !(await accountExists(sql, selector.accountId))) throw new NotFoundError("account", selector.accountId);
    const servers = await selectFleetServers(sql, selector, MAX_FLEET_SERVERS + 1);
    if (servers.length === 0) throw new FailedPreconditionError("no server of the selector has a registered agent", "NO_SERVERS");
    if (servers.length > MAX_FLEET_SERVERS) throw new FailedPreconditionError(`the selector matches more than ${MAX_FLEET_SERVERS} servers; narrow it (region, name prefix)`, "TOO_MANY_SERVERS");
    return servers;
  };

  return {
    async runFleetCommand(principal: Readonly<Principal>, input: RunFleetCommandInput): Promise<FleetCommand> {
      // Each child is a command on one server: the caller needs that permission too, not only the fleet's.
      if (!isAllowed(principal, runScriptKind.permission)) throw new PermissionDeniedError(`permission ${runScriptKind.permission} required to run commands on servers`, "PERMISSION_DENIED", { permission: runScriptKind.permission });
      if (input.idempotencyKey) {
        const existing = await jobs.findByIdempotencyKey(principal, input.idempotencyKey);
        if (existing?.kind === FLEET_RUN_KIND) return { job: existing, servers: Number((existing.payload as Partial<FleetRunPayload>).servers ?? 0) };
      }
      const servers = input.selector ? await bySelector(principal, input.selector) : await byIds(principal, input.serverIds);
      const accounts = new Set(servers.map((s) => s.accountId));
      const payload: FleetRunPayload = {
        command: input.command,
        args: input.args,
        timeoutMs: input.timeoutMs,
        maxConcurrency: input.maxConcurrency,
        errorBudget: input.errorBudget,
        servers: servers.length,
      };
      const { job } = await jobs.createJob({
        kind: FLEET_RUN_KIND,
        payload,
        requester: principal,
        // One account: the job follows it (its members see it); several: the requester (and admins) see it.
        resource: accounts.size === 1 ? { type: "account", id: [...accounts][0] as string, accountId: [...accounts][0] as string } : null,
        idempotencyKey: input.idempotencyKey || null,
        effects: async (tx, parent) => {
          const [row] = await tx.query<{ traceparent: string | null }>`SELECT traceparent FROM jobs WHERE id = ${parent.id}`;
          const now = parent.createdAt;
          // Ids of one millisecond do not sort by creation: sorted and handed out in the servers' order, they do, so
          // the children are released in the order the servers were given.
          const ids = servers.map(() => newId(now.getTime())).sort();
          const key = credentialKey();
          const children = servers.map((s, i): NewJob => {
            const child = runScriptPayloadOf(key, { serverId: s.id, command: input.command, args: input.args, env: input.env, timeoutMs: input.timeoutMs, failOnNonZeroExit: true });
            return {
              id: ids[i] as string,
              kind: RUN_SCRIPT_KIND,
              payload: child,
              maxAttempts: runScriptKind.maxAttempts,
              requestedBy: principal.id,
              resource: { type: "server", id: s.id, accountId: s.accountId },
              idempotencyKey: null,
              traceId: parent.traceId,
              traceparent: row?.traceparent ?? null,
              now,
              deadlineAt: null,
              actor: principal.id,
              subjectPrefix: "",
            };
          });
          await insertHeldChildren(tx, parent.id, children);
        },
      });
      return { job, servers: Number((job.payload as Partial<FleetRunPayload>).servers ?? servers.length) };
    },
  };
}

export type FleetService = ReturnType<typeof createFleetService>;
