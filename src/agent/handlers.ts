// gRPC handlers of dispatcher.v1.AgentRegistrationService and dispatcher.v1.ServerAgentService: proto ⇄ domain.
import { AgentConnectionState, AgentRegistrationServiceService as R, ServerAgentServiceService as S, type Agent, type RunFleetCommandRequest } from "../gen/proto/dispatcher/v1/agents.js";
import { IDEMPOTENCY_KEY_RULES, jobToProto } from "../jobs/mapper.js";
import { defineService, unary, type RpcService } from "../rpc/adapter.js";
import { tagViolations } from "../clouds/resources.js";
import { validateOne, type Violations } from "../rpc/validate.js";
import type { RegistrationService } from "./registration.js";
import type { AgentConnectionState as State } from "./repository.js";
import { DEFAULT_SCRIPT_TIMEOUT_MS, MAX_SCRIPT_TIMEOUT_MS } from "./run-script-kind.js";
import type { AgentView, ServerAgentService } from "./service.js";
import { DEFAULT_FLEET_CONCURRENCY, MAX_FLEET_CONCURRENCY, MAX_FLEET_SERVERS } from "./fleet-kind.js";
import type { FleetService, RunFleetCommandInput } from "./fleet.js";

const STATE_TO_PROTO: Readonly<Record<State, AgentConnectionState>> = {
  CONNECTED: AgentConnectionState.AGENT_CONNECTION_STATE_CONNECTED,
  UNREACHABLE: AgentConnectionState.AGENT_CONNECTION_STATE_UNREACHABLE,
  GONE: AgentConnectionState.AGENT_CONNECTION_STATE_GONE,
};

const ID_RULES = { max: 26, min: 26, pattern: /^[0-9A-HJKMNP-TV-Z]{26}$/, patternHint: "a 26-character id" } as const;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function agentToProto(a: AgentView): Agent {
  return {
    id: a.id,
    serverId: a.serverId,
    state: STATE_TO_PROTO[a.state],
    version: a.version,
    hostname: a.hostname,
    address: a.address,
    port: a.port,
    lastSeenTime: a.lastSeenAt ?? undefined,
    registerTime: a.registeredAt,
    missedPings: a.missedPings,
  };
}

export function registrationHandlers(registration: RegistrationService): RpcService {
  return defineService(R, {
    register: unary(R.register, async (req, ctx) => {
      const r = await registration.register(ctx.principal, { hostname: req.hostname, version: req.version, port: req.port, address: req.address, certificateRequest: req.certificateRequest });
      return { agentId: r.agentId, serverId: r.serverId, credential: r.credential, certificate: r.certificate, caCertificates: r.caCertificates };
    }),
    renewAgent: unary(R.renewAgent, async (req, ctx) => {
      const agentId = validateOne((v) => v.string("agent_id", req.agentId, ID_RULES));
      const r = await registration.renew(ctx.principal, { agentId, address: req.address, port: req.port, certificateRequest: req.certificateRequest, signedTimeMs: Number(req.signedTimeMs), signature: req.signature });
      return { certificate: r.certificate, caCertificates: r.caCertificates };
    }),
  });
}

export function serverAgentHandlers(agents: ServerAgentService, fleet: FleetService): RpcService {
  return defineService(S, {
    getServerAgent: unary(S.getServerAgent, async (req, ctx) => {
      const serverId = validateOne((v) => v.string("server_id", req.serverId, ID_RULES));
      return { agent: agentToProto(await agents.getServerAgent(ctx.principal, serverId)) };
    }),
    runServerScript: unary(S.runServerScript, async (req, ctx) => {
      const input = validateOne((v) => ({
        serverId: v.string("server_id", req.serverId, ID_RULES),
        command: v.string("command", req.command, { max: 4096 }),
        args: stringList(v, "args", req.args),
        env: envMap(v, req.env),
        timeoutMs: timeoutMs(v, req.timeout),
        idempotencyKey: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES),
      }));
      return { job: jobToProto(await agents.runServerScript(ctx.principal, input)) };
    }),
    runFleetCommand: unary(S.runFleetCommand, async (req, ctx) => {
      const input = validateOne((v) => fleetInput(v, req));
      const r = await fleet.runFleetCommand(ctx.principal, input);
      return { job: jobToProto(r.job), serverCount: r.servers };
    }),
  });
}

/** RunFleetCommandRequest → the service's input: server ids xor a selector, the command, the limits. */
function fleetInput(v: Violations, req: RunFleetCommandRequest): RunFleetCommandInput {
  const hasSelector = req.selector !== undefined && Boolean(req.selector.accountId || req.selector.regionId || req.selector.namePrefix || Object.keys(req.selector.tags ?? {}).length > 0);
  if (hasSelector && req.serverIds.length > 0) v.add("selector", "give server_ids or a selector, not both");
  if (!hasSelector && req.serverIds.length === 0) v.add("server_ids", "give server ids or a selector");
  if (req.serverIds.length > MAX_FLEET_SERVERS) v.add("server_ids", `at most ${MAX_FLEET_SERVERS} servers`);
  const seen = new Set<string>();
  const serverIds = req.serverIds.slice(0, MAX_FLEET_SERVERS).map((id, i) => {
    const checked = v.string(`server_ids[${i}]`, id, ID_RULES);
    if (seen.has(id)) v.add(`server_ids[${i}]`, "repeats an earlier server");
    seen.add(id);
    return checked;
  });
  const selector =
    hasSelector && req.selector
      ? {
          accountId: v.string("selector.account_id", req.selector.accountId, ID_RULES),
          regionId: v.optionalString("selector.region_id", req.selector.regionId, { max: 64 }) || undefined,
          namePrefix: v.optionalString("selector.name_prefix", req.selector.namePrefix, { max: 128 }) || undefined,
          tags: selectorTags(v, req.selector.tags),
        }
      : null;
  return {
    serverIds,
    selector,
    command: v.string("command", req.command, { max: 4096 }),
    args: stringList(v, "args", req.args),
    env: envMap(v, req.env),
    timeoutMs: timeoutMs(v, req.timeout),
    maxConcurrency: req.maxConcurrency === 0 ? DEFAULT_FLEET_CONCURRENCY : v.int("max_concurrency", req.maxConcurrency, 1, MAX_FLEET_CONCURRENCY),
    errorBudget: req.errorBudget === 0 ? 1 : v.int("error_budget", req.errorBudget, 1, MAX_FLEET_SERVERS),
    idempotencyKey: v.optionalString("idempotency_key", req.idempotencyKey, IDEMPOTENCY_KEY_RULES),
  };
}

/** The selector's tags: each a tag the cloud could hold (the dispatcher's own keys included), one violation each. */
function selectorTags(v: Violations, tags: Record<string, string> | undefined): Record<string, string> | undefined {
  const out = { ...(tags ?? {}) };
  for (const t of tagViolations(out, { allowReserved: true })) v.add(t.key ? `selector.tags[${JSON.stringify(t.key.slice(0, 64))}]` : "selector.tags", t.description);
  return Object.keys(out).length > 0 ? out : undefined;
}

function stringList(v: Violations, field: string, list: string[]): string[] {
  if (list.length > 256) v.add(field, "at most 256 arguments");
  list.forEach((a, i) => a.length > 4096 && v.add(`${field}[${i}]`, "must be at most 4096 characters"));
  return list;
}

function envMap(v: Violations, env: Record<string, string>): Record<string, string> {
  const entries = Object.entries(env);
  if (entries.length > 128) v.add("env", "at most 128 variables");
  for (const [k, value] of entries) {
    if (!ENV_NAME.test(k) || k.length > 256) v.add(`env[${k.slice(0, 64)}]`, "names are letters, digits and _, not starting with a digit");
    else if (value.length > 4096) v.add(`env[${k}]`, "must be at most 4096 characters");
  }
  return env;
}

function timeoutMs(v: Violations, d: { seconds: string; nanos: number } | undefined): number {
  if (!d) return DEFAULT_SCRIPT_TIMEOUT_MS;
  const ms = Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6);
  if (!Number.isFinite(ms) || ms <= 0 || ms > MAX_SCRIPT_TIMEOUT_MS) v.add("timeout", `must be more than 0 and at most ${MAX_SCRIPT_TIMEOUT_MS / 60_000} minutes`);
  return ms;
}
