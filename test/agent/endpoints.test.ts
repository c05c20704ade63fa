// Addresses the cloud vouches for: registration refuses a declared address the driver did not observe for the server
// (another server's, the metadata service, link-local) and the dispatcher's own endpoints (MariaDB, its listeners);
// the pinger and agent.run_script never dial an agent row that points elsewhere (listeners count the connections).
import { createServer, type Server, type Socket } from "node:net";
import { credentials, Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentConnector } from "../../src/agent/connect.js";
import { agentEndpointRules, checkAgentEndpoint, neverCalledReason, normalizeHost, type AgentEndpointRules } from "../../src/agent/endpoints.js";
import { issueJoinToken } from "../../src/agent/join-tokens.js";
import { startAgentPinger } from "../../src/agent/pinger.js";
import { DispatcherError } from "../../src/client/index.js";
import { newId } from "../../src/db/ids.js";
import { AgentRegistrationServiceClient, type RegisterRequest, type RegisterResponse } from "../../src/gen/proto/dispatcher/v1/agents.js";
import { startWorker, type RunningWorker } from "../../src/jobs/worker.js";
import type { Loop } from "../../src/monitor/loop.js";
import { until } from "../support/poll.js";
import { openAgentHarness, quiet, type AgentHarness } from "./support.js";

/** A TCP listener that counts the connections it accepts (and closes them). */
interface Counter {
  host: string;
  port: number;
  count: number;
  server: Server;
}

async function listenCounting(host: string): Promise<Counter> {
  const c: Counter = { host, port: 0, count: 0, server: createServer((s: Socket) => (c.count++, s.destroy())) };
  await new Promise<void>((resolve, reject) => c.server.once("error", reject).listen({ host, port: 0 }, resolve));
  c.port = (c.server.address() as { port: number }).port;
  return c;
}

// Addresses of a 127.x range of this run's own, so that parallel runs never share a listener.
const base = `127.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250)}`;
const addressOf = (n: number): string => `${base}.${n}`;

let a: AgentHarness;
let worker: RunningWorker;
let pinger: Loop | undefined;
const counters: Counter[] = [];

beforeAll(async () => {
  a = await openAgentHarness("agent_addr", { pingIntervalMs: 100, maxMissedPings: 2 });
  // The dispatcher's own gRPC listener, as a configuration names it.
  a.h.config.server.bind = "127.0.0.1";
  a.h.config.server.port = Number(a.server.address.split(":")[1]);
  worker = await startWorker({ resources: a.h.resources("w1"), catalog: a.h.catalog });
}, 60_000);

afterAll(async () => {
  await pinger?.stop(500);
  await worker?.stop(2_000);
  for (const c of counters) c.server.close();
  await a?.close();
});

async function counting(host: string): Promise<Counter> {
  const c = await listenCounting(host);
  counters.push(c);
  return c;
}

async function serverAt(addresses: string[], details: Record<string, string> = {}): Promise<string> {
  const id = await a.newServer();
  await a.h.sql.execute`UPDATE servers SET addresses = ${JSON.stringify({ private: addresses, public: [] })}, details = ${JSON.stringify(details)} WHERE id = ${id}`;
  return id;
}

function register(token: string, address: string, port: number): Promise<RegisterResponse> {
  const client = new AgentRegistrationServiceClient(a.server.address, credentials.createInsecure());
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  const req: RegisterRequest = { hostname: "guest", version: "1.0.0", port, address, certificateRequest: "" };
  return new Promise((resolve, reject) =>
    client.register(req, md, { deadline: Date.now() + 5_000 }, (err, res) => {
      client.close();
      if (err) reject(DispatcherError.from(err));
      else resolve(res);
    }),
  );
}

async function refusal(p: Promise<unknown>): Promise<[string, string[]]> {
  try {
    await p;
    return ["OK", []];
  } catch (err) {
    const e = DispatcherError.from(err);
    return [e.codeName, e.fieldViolations.map((v) => v.field)];
  }
}

describe("the endpoint rules", () => {
  const rules: AgentEndpointRules = {
    ownEndpoints: () => [{ host: "*", port: 3302 }, { host: "127.0.0.1", port: 3306 }],
    isLocal: (host) => normalizeHost(host).startsWith("127.") || normalizeHost(host) === "0:0:0:0:0:0:0:1",
  };
  const remote = { addresses: { private: ["10.0.0.5"], public: ["203.0.113.7"] }, details: {} };
  const local = { addresses: { private: ["127.0.0.1"], public: [] }, details: { port: "40123" } };
  const check = (server: typeof remote, address: string, port: number) => {
    const r = checkAgentEndpoint(server, address, port, rules);
    return r.ok ? r.address : r.violations.map((v) => v.field).join(",");
  };

  it("takes only what the cloud observed, the first private address when none is declared", () => {
    expect(check(remote, "", 2003)).toBe("10.0.0.5");
    expect(check(remote, "203.0.113.7", 2003)).toBe("203.0.113.7");
    expect(check(remote, "10.0.0.6", 2003)).toBe("address");
    expect(check(remote, "evil.example.com", 2003)).toBe("address");
    // Another spelling of an observed address is the same address.
    expect(check({ addresses: { private: ["fd00::5"], public: [] }, details: {} }, "[fd00:0:0::5]", 2003)).toBe("fd00::5");
  });

  it("never calls link-local, metadata, unspecified or multicast addresses, even when a cloud reports one", () => {
    for (const addr of ["169.254.169.254", "169.254.1.1", "fe80::1", "fd00:ec2::254", "::ffff:169.254.169.254", "0.0.0.0", "224.0.0.1", "metadata.google.internal"]) {
      expect(neverCalledReason(addr), addr).not.toBeNull();
      expect(check({ addresses: { private: [addr], public: [] }, details: {} }, addr, 80), addr).toBe("address");
    }
    expect(neverCalledReason("10.0.0.5")).toBeNull();
    // An observed link-local address is skipped when choosing one.
    expect(check({ addresses: { private: ["169.254.10.10", "10.0.0.5"], public: [] }, details: {} }, "", 2003)).toBe("10.0.0.5");
  });

  it("refuses the dispatcher's own endpoints, and on this host any port but the one the cloud observed", () => {
    expect(check(local, "127.0.0.1", 3306)).toBe("port");
    expect(check(local, "localhost", 3306)).toBe("address"); // not what the cloud reports
    expect(check(local, "127.0.0.1", 3302)).toBe("port");
    expect(check(local, "127.0.0.1", 40124)).toBe("port");
    expect(check(local, "127.0.0.1", 40123)).toBe("127.0.0.1");
    // A remote server may serve on a port the dispatcher listens on here.
    expect(check(remote, "10.0.0.5", 3302)).toBe("10.0.0.5");
  });

  it("reads a configuration's listeners and dependencies", () => {
    const own = agentEndpointRules(a.h.config).ownEndpoints();
    expect(own).toContainEqual({ host: "127.0.0.1", port: 3306 }); // the provisioning database
    expect(own).toContainEqual({ host: "127.0.0.1", port: 4222 }); // NATS
    expect(own).toContainEqual({ host: "127.0.0.1", port: a.h.config.server.port });
    // A listener on every address (0.0.0.0, production's default) is every host's; a development install listens on
    // loopback only.
    expect(own).toContainEqual({ host: a.h.config.bridge.bind === "0.0.0.0" ? "*" : a.h.config.bridge.bind, port: a.h.config.bridge.port });
    expect(agentEndpointRules({ ...a.h.config, bridge: { ...a.h.config.bridge, bind: "0.0.0.0" } }).ownEndpoints()).toContainEqual({ host: "*", port: a.h.config.bridge.port });
  });
});

describe("Register", () => {
  it("refuses 127.0.0.1:3306, the metadata service, another server's address and the dispatcher's own listener, and keeps the token", async () => {
    const mine = await serverAt(["127.0.0.1"]);
    const other = await serverAt([addressOf(2)]);
    const token = await issueJoinToken(a.h.sql, mine, 60_000);
    expect(await refusal(register(token, "127.0.0.1", 3306))).toEqual(["INVALID_ARGUMENT", ["port"]]);
    expect(await refusal(register(token, "169.254.169.254", 80))).toEqual(["INVALID_ARGUMENT", ["address"]]);
    expect(await refusal(register(token, addressOf(2), 2003))).toEqual(["INVALID_ARGUMENT", ["address"]]);
    expect(await refusal(register(token, "127.0.0.1", a.h.config.server.port))).toEqual(["INVALID_ARGUMENT", ["port"]]);
    expect(await a.h.sql.query`SELECT id FROM agents WHERE server_id IN (${mine}, ${other})`).toHaveLength(0);
    // The token was not spent on the refusals: the agent may correct itself.
    expect((await register(token, "", 2003)).serverId).toBe(mine);
    const [row] = await a.h.sql.query<{ address: string; port: number }>`SELECT address, port FROM agents WHERE server_id = ${mine}`;
    expect(row).toEqual({ address: "127.0.0.1", port: 2003 });
  });

  it("on a shared loopback address takes only the port the cloud observed", async () => {
    const id = await serverAt(["127.0.0.1"], { port: "40123" });
    const token = await issueJoinToken(a.h.sql, id, 60_000);
    expect(await refusal(register(token, "127.0.0.1", 40124))).toEqual(["INVALID_ARGUMENT", ["port"]]);
    expect((await register(token, "127.0.0.1", 40123)).serverId).toBe(id);
  });

  it("asks an agent to come back while the cloud has reported no address", async () => {
    const id = await serverAt([]);
    const token = await issueJoinToken(a.h.sql, id, 60_000);
    expect((await refusal(register(token, "", 2003)))[0]).toBe("UNAVAILABLE");
    await serverAt([]); // (a second server changes nothing)
    await a.h.sql.execute`UPDATE servers SET addresses = ${JSON.stringify({ private: [addressOf(9)], public: [] })} WHERE id = ${id}`;
    expect((await register(token, "", 2003)).serverId).toBe(id);
  });
});

describe("calls", () => {
  it("dial only agents at a vouched address: a row pointing at another server is neither pinged nor sent scripts", async () => {
    // The control: an agent row at its server's own address is dialled by the pinger (the counter works).
    const good = await counting(addressOf(10));
    const goodServer = await serverAt([good.host], { port: String(good.port) });
    // The target: a listener at another server's address; a row claims it for a server that does not have it (as
    // one written before these rules, or before the server's address changed).
    const target = await counting(addressOf(11));
    await serverAt([target.host]);
    const victim = await serverAt([addressOf(12)]);
    const insertAgent = (serverId: string, address: string, port: number) =>
      a.h.sql.execute`INSERT INTO agents (id, server_id, credential_hash, version, hostname, address, port, state, missed_pings, last_seen_at, next_ping_at, registered_at, updated_at)
                      VALUES (${newId()}, ${serverId}, 'x', '1', 'h', ${address}, ${port}, 'CONNECTED', 0, NOW(3), NOW(3), NOW(3), NOW(3))`;
    await insertAgent(goodServer, good.host, good.port);
    await insertAgent(victim, target.host, target.port);

    pinger = startAgentPinger({ sql: a.h.sql, log: quiet(), connect: agentConnector(a.h.config), endpoints: agentEndpointRules(a.h.config), pingIntervalMs: 100, maxMissedPings: 2 });
    await until(() => good.count >= 2, 10_000, "pings of the vouched agent");
    const job = await a.jobs.createJob({ kind: "agent.run_script", payload: { serverId: victim, command: "echo" }, requester: { id: "u-oper", kind: "user", roles: ["operator"], displayName: "Otto" }, resource: { type: "server", id: victim }, idempotencyKey: null });
    const done = await until(async () => {
      const [j] = await a.h.sql.query<{ state: string; errorCode: string | null }>`SELECT state, error_code AS errorCode FROM jobs WHERE id = ${job.job.id}`;
      return j && j.state !== "QUEUED" && j.state !== "RUNNING" ? j : null;
    }, 15_000, "the script job to end");
    expect(done).toEqual({ state: "FAILED", errorCode: "FAILED_PRECONDITION" });
    await until(async () => (await a.h.sql.query<{ state: string }>`SELECT state FROM agents WHERE server_id = ${victim}`)[0]?.state === "UNREACHABLE", 5_000, "the misplaced agent UNREACHABLE");
    expect(target.count).toBe(0);
    expect(good.count).toBeGreaterThanOrEqual(2);
  });
});
