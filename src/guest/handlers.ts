// agent.v1.AgentService on the guest: status, scripts, metrics, shutdown. Only the dispatcher reaches these (the
// program's authenticator admits the agent credential alone).
import { AgentServiceService as A } from "../gen/proto/agent/v1/agent.js";
import { InvalidArgumentError } from "../errors.js";
import { defineService, unary, type RpcService } from "../rpc/adapter.js";
import type { GuestMetrics } from "./metrics.js";
import { runScript } from "./scripts.js";

export interface AgentIdentity {
  agentId: () => string;
  version: string;
  hostname: string;
  startTime: Date;
}

export interface GuestHandlerOptions {
  identity: AgentIdentity;
  collectMetrics: () => Promise<GuestMetrics>;
  /** Called after Shutdown has answered. */
  onShutdown: (reason: string) => void;
  /** Output kept per stream when the request asks for 0 (default 1 MiB). */
  defaultMaxOutputBytes?: number;
}

const MAX_OUTPUT_BYTES = 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 60_000;
const MAX_TIMEOUT_MS = 60 * 60_000;

const duration = (ms: number): { seconds: string; nanos: number } => ({ seconds: String(Math.floor(ms / 1000)), nanos: Math.floor((ms % 1000) * 1e6) });

export function guestAgentHandlers(options: GuestHandlerOptions): RpcService {
  const { identity } = options;
  return defineService(A, {
    getStatus: unary(A.getStatus, async () => ({ agentId: identity.agentId(), version: identity.version, hostname: identity.hostname, startTime: identity.startTime })),

    runScript: unary(A.runScript, async (req, ctx) => {
      const timeoutMs = req.timeout ? Number(req.timeout.seconds) * 1000 + Math.floor(req.timeout.nanos / 1e6) : DEFAULT_TIMEOUT_MS;
      const violations = [];
      if (!req.command) violations.push({ field: "command", description: "is required" });
      if (!(timeoutMs > 0 && timeoutMs <= MAX_TIMEOUT_MS)) violations.push({ field: "timeout", description: "must be more than 0 and at most one hour" });
      if (req.maxOutputBytes < 0) violations.push({ field: "max_output_bytes", description: "must not be negative" });
      if (violations.length > 0) throw new InvalidArgumentError(violations);
      const max = Math.min(req.maxOutputBytes || (options.defaultMaxOutputBytes ?? MAX_OUTPUT_BYTES), MAX_OUTPUT_BYTES);
      const r = await runScript({ command: req.command, args: req.args, env: req.env, timeoutMs, maxOutputBytes: max, signal: ctx.signal });
      return { ...r, duration: duration(r.durationMs) };
    }),

    collectMetrics: unary(A.collectMetrics, async () => {
      const m = await options.collectMetrics();
      return {
        cpuPercent: m.cpuPercent,
        memoryUsedBytes: String(m.memoryUsedBytes),
        memoryTotalBytes: String(m.memoryTotalBytes),
        diskUsedBytes: String(m.diskUsedBytes),
        diskTotalBytes: String(m.diskTotalBytes),
        uptime: duration(m.uptimeSeconds * 1000),
        time: m.time,
      };
    }),

    shutdown: unary(A.shutdown, async (req) => {
      // Answer first; the program stops once the reply is on its way.
      setImmediate(() => options.onShutdown(req.reason));
      return {};
    }),
  });
}
