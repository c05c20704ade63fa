// The agent program (`dispatcher agent`): serves agent.v1 on its port, registers once through the gRPC-Web bridge
// with its join token, then answers the dispatcher alone (Bearer <agent credential>, compared in constant time).
// Its secrets stay in memory, or in <stateDir>/agent.json (mode 0600) when a state directory is given, so that a
// restart does not need a second join token.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { join } from "node:path";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import type { Principal } from "../iam/principal.js";
import { secretsEqual } from "../iam/secrets.js";
import { guestAgentHandlers } from "./handlers.js";
import { createMetricsCollector } from "./metrics.js";
import { registerWithRetry, type Backoff } from "./register.js";
import { createAgentServer, type AgentServer } from "./server.js";

/** The role the agent gives the dispatcher: agent.read and agent.execute (src/iam/permissions.ts). */
export const AGENT_CONTROLLER_ROLE = "agent-controller";

export interface AgentOptions {
  /** agent.bridgeUrl, agent.joinToken, agent.bind, agent.port, agent.address, agent.stateDir; server.* for the gRPC server. */
  config: Pick<Config, "mode" | "server" | "agent">;
  log: Logger;
  version: string;
  hostname?: string;
  backoff?: Backoff;
}

export interface RunningAgent {
  readonly agentId: string;
  readonly serverId: string;
  readonly port: number;
  /** Resolves when the dispatcher asked the agent to shut down (the agent has stopped serving by then). */
  readonly shutdown: Promise<string>;
  stop(graceMs?: number): Promise<void>;
}

interface AgentState {
  agentId: string;
  serverId: string;
  credential: string;
}

const STATE_FILE = "agent.json";

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const { config, log } = options;
  const stateFile = config.agent.stateDir ? join(config.agent.stateDir, STATE_FILE) : "";
  let state: AgentState | null = stateFile ? readState(stateFile) : null;
  if (!state && !config.agent.joinToken) throw new Error("no join token (--join-token-file or DISPATCHER_AGENT_JOIN_TOKEN) and no saved registration");

  const dispatcher: Principal = { id: "dispatcher", kind: "service", roles: [AGENT_CONTROLLER_ROLE], displayName: "dispatcher" };
  let resolveShutdown: (reason: string) => void = () => undefined;
  const shutdown = new Promise<string>((r) => (resolveShutdown = r));
  const abort = new AbortController();
  const server: AgentServer = createAgentServer({
    bind: config.agent.bind,
    port: config.agent.port,
    log,
    defaultDeadlineMs: config.server.defaultDeadlineMs,
    maxMessageBytes: config.server.maxMessageBytes,
    // Until registration is done there is no credential, and nobody gets in.
    authenticate: async (token) => (state && secretsEqual(token, state.credential) ? dispatcher : null),
    service: guestAgentHandlers({
      identity: { agentId: () => state?.agentId ?? "", version: options.version, hostname: options.hostname ?? osHostname(), startTime: new Date() },
      collectMetrics: createMetricsCollector(),
      onShutdown: (reason) => {
        log.info({ reason }, "shutdown requested by the dispatcher");
        void running.stop().then(() => resolveShutdown(reason));
      },
    }),
  });
  const port = await server.start();

  const running: RunningAgent = {
    get agentId() {
      return state?.agentId ?? "";
    },
    get serverId() {
      return state?.serverId ?? "";
    },
    port,
    shutdown,
    async stop(graceMs = 2_000) {
      abort.abort(new Error("agent stopping"));
      await server.stop(graceMs);
    },
  };

  if (!state) {
    try {
      const r = await registerWithRetry({
        bridgeUrl: config.agent.bridgeUrl,
        joinToken: config.agent.joinToken,
        traceparent: config.agent.traceparent || undefined,
        request: { hostname: options.hostname ?? osHostname(), version: options.version, port, address: config.agent.address },
        log,
        signal: abort.signal,
        backoff: options.backoff,
      });
      state = { agentId: r.agentId, serverId: r.serverId, credential: r.credential };
      if (stateFile) writeState(stateFile, state);
    } catch (err) {
      await server.stop(0);
      throw err;
    }
    log.info({ agentId: state.agentId, serverId: state.serverId, port }, "agent registered");
  } else {
    log.info({ agentId: state.agentId, serverId: state.serverId, port }, "agent resumed its saved registration");
  }
  return running;
}

function readState(file: string): AgentState | null {
  if (!existsSync(file)) return null;
  const s = JSON.parse(readFileSync(file, "utf8")) as Partial<AgentState>;
  return typeof s.agentId === "string" && typeof s.serverId === "string" && typeof s.credential === "string" ? { agentId: s.agentId, serverId: s.serverId, credential: s.credential } : null;
}

function writeState(file: string, state: AgentState): void {
  const dir = join(file, "..");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}
