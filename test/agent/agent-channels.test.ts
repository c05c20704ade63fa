// Kept channels to agents (src/agent/agent-channels.ts), against simulated agents on a real gRPC server: one channel
// serves call after call; a changed address or TLS identity gets a channel of its own, and on the plaintext channel a
// changed credential travels with the call; idle channels close, the count stays bounded, a failed channel is
// replaced, and stop closes them all.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectivityState, status as Code } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAgentChannel, type AgentClient, type AgentEndpoint } from "../../src/agent/agent-client.js";
import { BOUND_WARNING_MS, channelKey, createAgentChannels, type AgentChannelOptions } from "../../src/agent/agent-channels.js";
import { loadAgentCa } from "../../src/agent/ca.js";
import type { Config } from "../../src/config.js";
import { deriveAgentCredential } from "../../src/agent/secrets.js";
import { newId } from "../../src/db/ids.js";
import { createLogger } from "../../src/log.js";
import type { AgentServiceClient } from "../../src/gen/proto/agent/v1/agent.js";
import { freePort } from "../support/net.js";
import { until } from "../support/poll.js";
import { startAgentFarm, type AgentFarm } from "./fleet-farm.js";

const key = randomBytes(32);
let farm: AgentFarm;
const agents = [newId(), newId(), newId()];
const servers = new Map(agents.map((a) => [a, newId()]));
/** A development agent CA's bundle and two of this process's client identities (the second one renewed). */
let pki: { ca: Buffer; clients: { cert: Buffer; key: Buffer }[] };
const dataDir = mkdtempSync(join(tmpdir(), "agent-channels-"));

beforeAll(async () => {
  farm = await startAgentFarm(key);
  farm.add(servers);
  const config = { mode: "development", dataDir, agent: { credentialKey: key.toString("base64"), caCert: "", caKey: "", plaintext: false } } as unknown as Pick<Config, "mode" | "dataDir" | "agent">;
  const ca = loadAgentCa(config);
  pki = { ca: Buffer.from(ca.bundlePem), clients: [ca.clientIdentity(new Date()), ca.clientIdentity(new Date(Date.now() + 86_400_000))] };
});
afterAll(async () => {
  await farm.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const plaintext = (agentId: string, port = farm.port): AgentEndpoint => ({ address: "127.0.0.1", port, credential: deriveAgentCredential(key, agentId) });

const tls = (agentId: string, pins: string[], client = 0): AgentEndpoint => ({
  address: "127.0.0.1",
  port: farm.port,
  tls: { ca: pki.ca, ...(pki.clients[client] as { cert: Buffer; key: Buffer }), agentId, pins },
});

/** The channels under test, with every channel they open (in order) and a clock the test moves. */
function watched(options: Partial<AgentChannelOptions> = {}) {
  const opened: { endpoint: AgentEndpoint; channel: AgentServiceClient }[] = [];
  const clock = { t: 1_000_000 };
  const channels = createAgentChannels({
    idleMs: 60_000,
    maxChannels: 100,
    now: () => clock.t,
    open: (endpoint) => {
      const channel = openAgentChannel(endpoint);
      opened.push({ endpoint, channel });
      return channel;
    },
    ...options,
  });
  return { channels, opened, clock };
}

const state = (c: AgentServiceClient) => c.getChannel().getConnectivityState(false);

async function run(client: AgentClient) {
  try {
    return await client.runScript({ command: "work", args: ["0"], env: {}, timeout: { seconds: "5", nanos: 0 }, maxOutputBytes: 1024 }, { deadline: new Date(Date.now() + 5_000) });
  } finally {
    client.close();
  }
}

describe("agent channels", () => {
  it("serve call after call on one channel, which stays open between them", async () => {
    const { channels, opened } = watched();
    for (let i = 0; i < 3; i++) expect((await run(channels.acquire(plaintext(agents[0] as string)))).exitCode).toBe(0);
    expect(opened).toHaveLength(1);
    expect(channels.size).toBe(1);
    expect(state((opened[0] as { channel: AgentServiceClient }).channel)).toBe(connectivityState.READY);
    channels.close();
  });

  it("give a changed address or TLS identity a channel of its own, and never the old one", () => {
    const { channels, opened } = watched();
    const endpoints = [
      tls("AGENT1", ["aa"]),
      // renewed: a new certificate pinned beside the old
      tls("AGENT1", ["bb", "aa"]),
      // re-registered under a new id at the same address
      tls("AGENT2", ["bb", "aa"]),
      // this process's client certificate renewed
      tls("AGENT2", ["bb", "aa"], 1),
      { ...tls("AGENT2", ["bb", "aa"], 1), address: "127.0.0.2" },
      { ...tls("AGENT2", ["bb", "aa"], 1), port: farm.port + 1 },
    ];
    for (const e of endpoints) channels.acquire(e).close();
    expect(opened.map((o) => o.endpoint)).toEqual(endpoints);
    expect(new Set(endpoints.map(channelKey)).size).toBe(endpoints.length);
    // The same identity again, pins in another order: the channel kept for it.
    channels.acquire(tls("AGENT1", ["aa", "bb"])).close();
    expect(opened).toHaveLength(endpoints.length);
    channels.close();
  });

  it("send each call's own credential on the plaintext channel, so a changed credential is never the old one", async () => {
    const { channels, opened } = watched();
    expect((await run(channels.acquire(plaintext(agents[0] as string)))).stdout.toString()).toBe(`ok ${servers.get(agents[0] as string)}\n`);
    expect((await run(channels.acquire(plaintext(agents[1] as string)))).stdout.toString()).toBe(`ok ${servers.get(agents[1] as string)}\n`);
    const stale = { ...plaintext(agents[0] as string), credential: deriveAgentCredential(randomBytes(32), agents[0] as string) };
    await expect(run(channels.acquire(stale))).rejects.toMatchObject({ code: Code.UNAUTHENTICATED });
    expect(opened).toHaveLength(1);
    channels.close();
  });

  it("connect a warmed channel before any call, and give the next call that channel", async () => {
    const { channels, opened } = watched();
    channels.warm(plaintext(agents[0] as string));
    channels.warm(plaintext(agents[0] as string));
    expect(opened).toHaveLength(1);
    const channel = (opened[0] as { channel: AgentServiceClient }).channel;
    await until(() => state(channel) === connectivityState.READY, 5_000, "the warmed channel connected");
    expect((await run(channels.acquire(plaintext(agents[0] as string)))).exitCode).toBe(0);
    expect(opened).toHaveLength(1);
    channels.close();
    // Closed: warming opens nothing.
    channels.warm(plaintext(agents[1] as string));
    expect(opened).toHaveLength(1);
  });

  it("close a channel idle for idleMs, not one a call holds", async () => {
    const { channels, opened, clock } = watched({ idleMs: 30_000 });
    await run(channels.acquire(plaintext(agents[0] as string)));
    const held = channels.acquire(plaintext(agents[0] as string));
    clock.t += 60_000;
    channels.sweep();
    const channel = (opened[0] as { channel: AgentServiceClient }).channel;
    expect(state(channel)).not.toBe(connectivityState.SHUTDOWN);
    expect((await run(held)).exitCode).toBe(0);
    clock.t += 29_999;
    channels.sweep();
    expect(channels.size).toBe(1);
    clock.t += 1;
    channels.sweep();
    expect(channels.size).toBe(0);
    expect(state(channel)).toBe(connectivityState.SHUTDOWN);
    await run(channels.acquire(plaintext(agents[0] as string)));
    expect(opened).toHaveLength(2);
    channels.close();
  });

  it("keep at most maxChannels, closing the least recently used idle one first", () => {
    const { channels, opened } = watched({ maxChannels: 2 });
    const [a, b, c] = [tls("A", ["1"]), tls("B", ["1"]), tls("C", ["1"])];
    channels.acquire(a).close();
    channels.acquire(b).close();
    channels.acquire(a).close();
    channels.acquire(c).close();
    expect(channels.size).toBe(2);
    expect(opened.map((o) => state(o.channel) === connectivityState.SHUTDOWN)).toEqual([false, true, false]);
    // Every channel in use: the oldest closes once its call hands it back.
    const held = [channels.acquire(a), channels.acquire(c)];
    const d = channels.acquire(tls("D", ["1"]));
    expect(channels.size).toBe(2);
    expect(state((opened[0] as { channel: AgentServiceClient }).channel)).not.toBe(connectivityState.SHUTDOWN);
    for (const h of held) h.close();
    expect(state((opened[0] as { channel: AgentServiceClient }).channel)).toBe(connectivityState.SHUTDOWN);
    d.close();
    channels.close();
  });

  it("warn when the bound closes channels, at most once per BOUND_WARNING_MS, with how many it closed", () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger({ level: "info", destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } as unknown as NodeJS.WritableStream });
    const { channels, clock } = watched({ maxChannels: 2, log });
    const call = (id: string) => channels.acquire(tls(id, ["1"])).close();
    call("A");
    call("B");
    call("A");
    expect(lines).toHaveLength(0); // within the bound: nothing closed, nothing said
    call("C"); // closes B
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: "warn", maxChannels: 2, closedForBound: 1 });
    expect(String(lines[0]?.msg)).toContain("agent.maxChannels");
    call("D");
    call("E");
    expect(lines).toHaveLength(1);
    clock.t += BOUND_WARNING_MS;
    call("F");
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ closedForBound: 3 });
    // Idle channels closing is the normal course: no warning.
    clock.t += 60_000;
    channels.sweep();
    expect(channels.size).toBe(0);
    expect(lines).toHaveLength(2);
    channels.close();
  });

  it("replace a channel that failed to connect", async () => {
    const { channels, opened } = watched();
    const gone = plaintext(agents[0] as string, await freePort());
    await expect(run(channels.acquire(gone))).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    expect(state((opened[0] as { channel: AgentServiceClient }).channel)).toBe(connectivityState.TRANSIENT_FAILURE);
    await expect(run(channels.acquire(gone))).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    expect(opened).toHaveLength(2);
    expect(state((opened[0] as { channel: AgentServiceClient }).channel)).toBe(connectivityState.SHUTDOWN);
    channels.close();
  });

  it("close every channel on stop, one in use once its call ends; later calls get one of their own", async () => {
    const { channels, opened } = watched();
    await run(channels.acquire(plaintext(agents[0] as string)));
    channels.acquire(tls("A", ["1"])).close();
    const held = channels.acquire(tls("B", ["1"]));
    channels.close();
    expect(channels.size).toBe(0);
    expect(opened.map((o) => state(o.channel) === connectivityState.SHUTDOWN)).toEqual([true, true, false]);
    held.close();
    expect(state((opened[2] as { channel: AgentServiceClient }).channel)).toBe(connectivityState.SHUTDOWN);
    expect((await run(channels.acquire(plaintext(agents[1] as string)))).exitCode).toBe(0);
    expect(opened).toHaveLength(3);
    expect(channels.size).toBe(0);
  });
});
