// The agent program (`dispatcher agent`): serves agent.v1 on its port, registers once through the gRPC-Web bridge with
// its join token, then answers the dispatcher alone. Over mutual TLS (the default) it makes its key here, sends a
// certificate request, serves with the certificate it gets back and accepts only the dispatcher's client certificate;
// it renews the certificate (a new key each time) when two thirds of its life have passed, and on every restart,
// which also tells the dispatcher its current address and port. On a plaintext channel (development) it accepts the
// dispatcher's bearer credential instead. Its registration stays in memory, or in <stateDir>/agent.json (mode 0600)
// when a state directory is given, so a restart does not need a second join token.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { join } from "node:path";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import type { Principal } from "../iam/principal.js";
import { secretsEqual } from "../iam/secrets.js";
import { newKeyAndRequest } from "../pki/csr.js";
import { RENEWAL_TOKEN_MARKER, signRenewal } from "../pki/renewal.js";
import { guestAgentHandlers } from "./handlers.js";
import { AgentIdentity, dispatcherByCertificate, type Identity } from "./identity.js";
import { createMetricsCollector } from "./metrics.js";
import { registerWithRetry, renewWithRetry, type Backoff } from "./register.js";
import { createAgentServer, type AgentServer } from "./server.js";

/** The role the agent gives the dispatcher: agent.read and agent.execute (src/iam/permissions.ts). */
export const AGENT_CONTROLLER_ROLE = "agent-controller";

export interface AgentOptions {
  /** agent.bridgeUrl, agent.joinToken, agent.bind, agent.port, agent.address, agent.stateDir, agent.plaintext; server.*. */
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
  /** Renews the certificate now (mutual TLS); resolves once the new one is served. */
  renew(): Promise<void>;
  stop(graceMs?: number): Promise<void>;
}

interface AgentState {
  agentId: string;
  serverId: string;
  /** Plaintext channel: the credential the dispatcher presents. */
  credential?: string | undefined;
  /** Mutual TLS: the agent's key, certificate and the CA certificates it trusts for callers. */
  identity?: Identity | undefined;
}

const STATE_FILE = "agent.json";
/** Renew when this share of the certificate's life has passed. */
const RENEW_AT = 2 / 3;

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const { config, log } = options;
  const tls = !config.agent.plaintext;
  const hostname = options.hostname ?? osHostname();
  const stateFile = config.agent.stateDir ? join(config.agent.stateDir, STATE_FILE) : "";
  let state: AgentState | null = stateFile ? readState(stateFile, tls) : null;
  if (!state && !config.agent.joinToken) throw new Error("no join token (--join-token-file or DISPATCHER_AGENT_JOIN_TOKEN) and no saved registration");
  if (!tls) log.warn("agent.plaintext is on: the dispatcher's calls, scripts and their output cross the network in clear (development only)");

  const identity = new AgentIdentity();
  if (state?.identity) identity.install(state.identity);
  const dispatcher: Principal = { id: "dispatcher", kind: "service", roles: [AGENT_CONTROLLER_ROLE], displayName: "dispatcher" };
  let resolveShutdown: (reason: string) => void = () => undefined;
  const shutdown = new Promise<string>((r) => (resolveShutdown = r));
  const abort = new AbortController();
  let renewTimer: NodeJS.Timeout | undefined;
  const server: AgentServer = createAgentServer({
    bind: config.agent.bind,
    port: config.agent.port,
    log,
    defaultDeadlineMs: config.server.defaultDeadlineMs,
    maxMessageBytes: config.server.maxMessageBytes,
    credentials: tls ? identity.serverCredentials() : undefined,
    authenticatePeer: tls ? dispatcherByCertificate(dispatcher) : undefined,
    // Plaintext only: until registration is done there is no credential, and nobody gets in.
    authenticate: async (token) => (!tls && state?.credential && secretsEqual(token, state.credential) ? dispatcher : null),
    service: guestAgentHandlers({
      identity: { agentId: () => state?.agentId ?? "", version: options.version, hostname, startTime: new Date() },
      collectMetrics: createMetricsCollector(),
      onShutdown: (reason) => {
        log.info({ reason }, "shutdown requested by the dispatcher");
        void running.stop().then(() => resolveShutdown(reason));
      },
    }),
  });
  const port = await server.start();

  const save = (): void => {
    if (stateFile && state) writeState(stateFile, state);
  };

  /** A new key, certified through RenewAgent (signed by the current key), served from now on. */
  const renew = async (): Promise<void> => {
    const current = identity.key;
    if (!state || !current) throw new Error("nothing to renew: the agent has no certificate");
    const { agentId } = state;
    const next = newKeyAndRequest(hostname);
    const r = await renewWithRetry({
      bridgeUrl: config.agent.bridgeUrl,
      token: `${RENEWAL_TOKEN_MARKER}${agentId}`,
      request: () => {
        const fields = { agentId, address: config.agent.address, port, certificateRequest: next.requestPem, signedTimeMs: Date.now() };
        return { ...fields, signedTimeMs: String(fields.signedTimeMs), signature: signRenewal(fields, current) };
      },
      log,
      signal: abort.signal,
      backoff: options.backoff,
    });
    identity.install({ keyPem: next.privateKey.export({ type: "pkcs8", format: "pem" }) as string, certPem: r.certificate, caPem: r.caCertificates });
    state = { ...state, identity: identity.value ?? undefined };
    save();
    log.info({ agentId, notAfter: identity.notAfter }, "agent certificate renewed");
  };

  /** Renews at two thirds of the certificate's life; a failed renewal is tried again at a tenth of what is left. */
  const scheduleRenewal = (): void => {
    const from = identity.installedAt?.getTime() ?? Date.now();
    const to = identity.notAfter?.getTime() ?? Date.now();
    const dueIn = Math.max(0, from + (to - from) * RENEW_AT - Date.now());
    clearTimeout(renewTimer);
    renewTimer = setTimeout(() => {
      renew().then(scheduleRenewal, (err: unknown) => {
        if (abort.signal.aborted) return;
        log.error({ err }, "certificate renewal failed");
        renewTimer = setTimeout(scheduleRenewal, Math.max(1_000, (to - Date.now()) / 10));
      });
    }, dueIn);
  };

  const running: RunningAgent = {
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get agentId() {
      return state?.agentId ?? "";
    },
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get serverId() {
      return state?.serverId ?? "";
    },
    port,
    shutdown,
    renew: async () => {
      await renew();
      scheduleRenewal();
    },
    async stop(graceMs = 2_000) {
      abort.abort(new Error("agent stopping"));
      clearTimeout(renewTimer);
      await server.stop(graceMs);
    },
  };

  if (!state) {
    try {
      const key = tls ? newKeyAndRequest(hostname) : null;
      const r = await registerWithRetry({
        bridgeUrl: config.agent.bridgeUrl,
        joinToken: config.agent.joinToken,
        traceparent: config.agent.traceparent || undefined,
        request: { hostname, version: options.version, port, address: config.agent.address, certificateRequest: key?.requestPem ?? "" },
        log,
        signal: abort.signal,
        backoff: options.backoff,
      });
      if (key) identity.install({ keyPem: key.privateKey.export({ type: "pkcs8", format: "pem" }) as string, certPem: r.certificate, caPem: r.caCertificates });
      state = { agentId: r.agentId, serverId: r.serverId, credential: tls ? undefined : r.credential, identity: identity.value ?? undefined };
      save();
    } catch (err) {
      await server.stop(0);
      throw err;
    }
    log.info({ agentId: state.agentId, serverId: state.serverId, port, tls }, "agent registered");
    if (tls) scheduleRenewal();
  } else {
    log.info({ agentId: state.agentId, serverId: state.serverId, port, tls }, "agent resumed its saved registration");
    // A restart may have moved the agent (another port, another address): renewing tells the dispatcher at once.
    if (tls) scheduleRenewalNow();
  }
  return running;

  function scheduleRenewalNow(): void {
    clearTimeout(renewTimer);
    renewTimer = setTimeout(() => {
      renew().then(scheduleRenewal, (err: unknown) => {
        if (!abort.signal.aborted) log.error({ err }, "certificate renewal after restart failed");
        scheduleRenewal();
      });
    }, 0);
  }
}

function readState(file: string, tls: boolean): AgentState | null {
  if (!existsSync(file)) return null;
  const s = JSON.parse(readFileSync(file, "utf8")) as Partial<AgentState>;
  if (typeof s.agentId !== "string" || typeof s.serverId !== "string") return null;
  const id = s.identity;
  if (tls) return id && typeof id.keyPem === "string" && typeof id.certPem === "string" && typeof id.caPem === "string" ? { agentId: s.agentId, serverId: s.serverId, identity: id } : null;
  return typeof s.credential === "string" ? { agentId: s.agentId, serverId: s.serverId, credential: s.credential } : null;
}

function writeState(file: string, state: AgentState): void {
  const dir = join(file, "..");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}
