// gRPC handlers of dispatcher.v1.AgentRegistrationService and dispatcher.v1.ServerAgentService: proto ⇄ domain.
import { AgentConnectionState, AgentRegistrationServiceService as R, ServerAgentServiceService as S, type Agent } from "../gen/proto/dispatcher/v1/agents.js";
import { IDEMPOTENCY_KEY_RULES, jobToProto } from "../jobs/mapper.js";
import { defineService, unary, type RpcService } from "../rpc/adapter.js";
import { validateOne, type Violations } from "../rpc/validate.js";
import type { RegistrationService } from "./registration.js";
import type { AgentConnectionState as State } from "./repository.js";
import { DEFAULT_SCRIPT_TIMEOUT_MS, MAX_SCRIPT_TIMEOUT_MS } from "./run-script-kind.js";
import type { AgentView, ServerAgentService } from "./service.js";

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

export function serverAgentHandlers(agents: ServerAgentService): RpcService {
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
  });
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
