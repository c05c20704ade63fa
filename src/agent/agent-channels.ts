// This process's channels to agents, kept between calls: a new grpc-js channel per command cost more than the call
// around it. One channel per agent address and TLS identity, closed when idle, bounded in count, closed on stop, and
// replaced when it failed (TRANSIENT_FAILURE, SHUTDOWN) or when the agent's address or credentials changed. Channels
// closed because of the bound are counted and warned about: that is a process undersized for the agents it calls.
import { createHash } from "node:crypto";
import { connectivityState } from "@grpc/grpc-js";
import type { Logger } from "../log.js";
import { recordAgentChannelClosed, type AgentChannelCloseReason } from "../telemetry/metrics.js";
import type { AgentServiceClient } from "../gen/proto/agent/v1/agent.js";
import { agentClientOver, agentTarget, openAgentChannel, openAgentClient, type AgentClient, type AgentEndpoint } from "./agent-client.js";

export interface AgentChannelOptions {
  /** A channel no call used for this long is closed (within half as long again). */
  idleMs: number;
  /** Channels kept at most; beyond it the least recently used idle one is closed. */
  maxChannels: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
  /** Opens a channel (tests watch it); default openAgentChannel. */
  open?: (endpoint: AgentEndpoint) => AgentServiceClient;
  /** Where the warning goes when channels are closed because of maxChannels (at most once per BOUND_WARNING_MS). */
  log?: Logger;
}

/** The bound's warning is repeated at most this often, with the count of channels it closed meanwhile. */
export const BOUND_WARNING_MS = 10 * 60_000;

export interface AgentChannels {
  /** A client of the agent at `endpoint` on a kept channel; its close() hands the channel back (open, for the next call). */
  acquire(endpoint: AgentEndpoint): AgentClient;
  /**
   * Opens the channel `endpoint` would be acquired on, and starts its connection, unless one is kept already: a call
   * expected soon (a fleet command's next servers) then finds it connected. It counts against maxChannels as an idle one.
   */
  warm(endpoint: AgentEndpoint): void;
  /** Channels kept now. */
  readonly size: number;
  /** Closes the channels idle for idleMs or more (a timer does it too). */
  sweep(): void;
  /** Closes every channel (one in use as its call ends); later calls get a channel of their own, closed after them. */
  close(): void;
}

interface Entry {
  key: string;
  channel: AgentServiceClient;
  /** Calls holding it now: a channel in use is closed only once they hand it back. */
  inUse: number;
  lastUsed: number;
  /** Out of the map (failed, replaced, over the bound): closed when the last call hands it back. */
  retired: boolean;
}

/**
 * The key of an endpoint's channel: its address and what the channel itself authenticates with. Under mutual TLS
 * that is this process's client certificate, the CA and the agent's id and pinned certificates, so a renewed or
 * re-registered agent gets a new channel. On the plaintext channel the agent's credential rides in each call's
 * metadata, not in the channel, so agents at one address share it.
 */
export function channelKey(endpoint: AgentEndpoint): string {
  const target = agentTarget(endpoint.address, endpoint.port);
  if (!("tls" in endpoint)) return `${target} plaintext`;
  const { ca, cert, key, agentId, pins } = endpoint.tls;
  const h = createHash("sha256");
  for (const part of [ca, cert, key, agentId, [...pins].sort().join(",")]) h.update(part).update("\0");
  return `${target} tls:${h.digest("hex")}`;
}

export function createAgentChannels(options: AgentChannelOptions): AgentChannels {
  const now = options.now ?? Date.now;
  const open = options.open ?? ((endpoint: AgentEndpoint) => openAgentChannel(endpoint));
  // Insertion order is recency: an acquired entry moves to the end, so the first idle one is the least recently used.
  const entries = new Map<string, Entry>();
  let closed = false;
  const overBound = { count: 0, warnedAt: Number.NEGATIVE_INFINITY };

  const retire = (e: Entry, reason: AgentChannelCloseReason): void => {
    if (entries.get(e.key) === e) entries.delete(e.key);
    e.retired = true;
    if (e.inUse === 0) e.channel.close();
    recordAgentChannelClosed(reason);
    if (reason === "bound") warnOverBound();
  };
  // With more agents called in turn than channels kept, every call beyond the bound connects anew (a TLS handshake
  // each): say so, with the count, rather than leave it to be found in a CPU profile.
  const warnOverBound = (): void => {
    overBound.count++;
    const t = now();
    if (!options.log || t - overBound.warnedAt < BOUND_WARNING_MS) return;
    options.log.warn(
      { maxChannels: options.maxChannels, closedForBound: overBound.count },
      "channels to agents closed to stay within agent.maxChannels: calls to more agents than it connect anew each time; raise agent.maxChannels to the agents this process calls (about 60 KB a channel)",
    );
    overBound.warnedAt = t;
    overBound.count = 0;
  };
  const failed = (e: Entry): boolean => {
    const state = e.channel.getChannel().getConnectivityState(false);
    return state === connectivityState.TRANSIENT_FAILURE || state === connectivityState.SHUTDOWN;
  };
  const bound = (): void => {
    for (const e of entries.values()) {
      if (entries.size <= options.maxChannels) return;
      if (e.inUse === 0) retire(e, "bound");
    }
    // Every channel is in use: the oldest go once their calls end.
    for (const e of entries.values()) {
      if (entries.size <= options.maxChannels) return;
      retire(e, "bound");
    }
  };

  const sweep = (): void => {
    const t = now();
    for (const e of entries.values()) if (e.inUse === 0 && t - e.lastUsed >= options.idleMs) retire(e, "idle");
  };
  const timer = setInterval(sweep, Math.max(100, Math.floor(options.idleMs / 2)));
  timer.unref();

  return {
    acquire(endpoint) {
      if (closed) return openAgentClient(endpoint);
      const key = channelKey(endpoint);
      let e = entries.get(key);
      if (e && failed(e)) {
        retire(e, "failed");
        e = undefined;
      }
      if (e) entries.delete(key);
      e ??= { key, channel: open(endpoint), inUse: 0, lastUsed: now(), retired: false };
      entries.set(key, e);
      e.inUse++;
      bound();
      const entry = e;
      return agentClientOver(entry.channel, endpoint, () => {
        entry.inUse--;
        entry.lastUsed = now();
        if (entry.retired && entry.inUse === 0) entry.channel.close();
      });
    },
    warm(endpoint) {
      if (closed) return;
      const key = channelKey(endpoint);
      const kept = entries.get(key);
      if (kept && !failed(kept)) return;
      if (kept) retire(kept, "failed");
      const e: Entry = { key, channel: open(endpoint), inUse: 0, lastUsed: now(), retired: false };
      entries.set(key, e);
      bound();
      if (!e.retired) e.channel.getChannel().getConnectivityState(true);
    },
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get size() {
      return entries.size;
    },
    sweep,
    close() {
      closed = true;
      clearInterval(timer);
      for (const e of [...entries.values()]) retire(e, "stop");
    },
  };
}
