// Registration through the real gRPC-Web bridge: a join token works once, for its own server, before it expires;
// replayed, expired and foreign tokens are UNAUTHENTICATED; the token is stored only as a hash and can do nothing else.
import { status as Code } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GrpcWebError, grpcWebUnary } from "../../src/guest/grpc-web.js";
import { REGISTER_PATH } from "../../src/guest/register.js";
import { issueJoinToken } from "../../src/agent/join-tokens.js";
import { pruneJoinTokens } from "../../src/agent/repository.js";
import { deriveAgentCredential, newJoinToken, sha256Hex } from "../../src/agent/secrets.js";
import { GetServerAgentRequest, GetServerAgentResponse, RegisterRequest, RegisterResponse } from "../../src/gen/proto/dispatcher/v1/agents.js";
import { openAgentHarness, serverEvents, serverRow, type AgentHarness } from "./support.js";

let a: AgentHarness;
beforeAll(async () => {
  a = await openAgentHarness("agent_reg");
}, 60_000);
afterAll(() => a?.close());

const hints: RegisterRequest = { hostname: "guest-1", version: "1.2.3", port: 2003, address: "", certificateRequest: "" };
const register = (token: string, req: RegisterRequest = hints) => grpcWebUnary(a.bridgeUrl, REGISTER_PATH, RegisterRequest, RegisterResponse, req, { token, timeoutMs: 5_000 });
const refusal = (p: Promise<unknown>) => p.then(
  () => null,
  (err: unknown) => (err instanceof GrpcWebError ? Code[err.code] : String(err)),
);

describe("Register", () => {
  it("turns a join token into an agent of its server, with a credential the dispatcher can re-derive", async () => {
    const serverId = await a.newServer();
    const token = await issueJoinToken(a.h.sql, serverId, 60_000);
    const r = await register(token);
    expect(r.serverId).toBe(serverId);
    expect(r.credential).toBe(deriveAgentCredential(Buffer.from(a.h.config.agent.credentialKey, "base64"), r.agentId));
    const [agent] = await a.h.sql.query<{ id: string; state: string; credentialHash: string; address: string; port: number; version: string }>`
      SELECT id, state, credential_hash AS credentialHash, address, port, version FROM agents WHERE server_id = ${serverId}`;
    expect(agent).toEqual({ id: r.agentId, state: "CONNECTED", credentialHash: sha256Hex(r.credential), address: "127.0.0.1", port: 2003, version: "1.2.3" });
    expect((await serverRow(a.h, serverId)).agentState).toBe("CONNECTED");
    expect(await serverEvents(a.h, serverId)).toContain("AGENT_REGISTERED");
    // Neither secret is stored in clear anywhere in the row of the token or of the agent.
    const tokenRows = await a.h.sql.query<Record<string, unknown>>`SELECT * FROM agent_join_tokens WHERE server_id = ${serverId}`;
    const agentRows = await a.h.sql.query<Record<string, unknown>>`SELECT * FROM agents WHERE server_id = ${serverId}`;
    const dump = JSON.stringify([tokenRows, agentRows]);
    expect(dump).not.toContain(token.slice(4));
    expect(dump).not.toContain(r.credential.slice(4));
  });

  it("refuses a replayed token, even when two registrations race with it", async () => {
    const serverId = await a.newServer();
    const token = await issueJoinToken(a.h.sql, serverId, 60_000);
    const outcomes = await Promise.all([refusal(register(token)), refusal(register(token)), refusal(register(token))]);
    expect(outcomes.filter((o) => o === null)).toHaveLength(1);
    expect(outcomes.filter((o) => o !== null)).toEqual(["UNAUTHENTICATED", "UNAUTHENTICATED"]);
    expect(await refusal(register(token))).toBe("UNAUTHENTICATED");
    expect(await a.h.sql.query`SELECT id FROM agents WHERE server_id = ${serverId}`).toHaveLength(1);
  });

  it("refuses an expired token", async () => {
    const serverId = await a.newServer();
    const token = await issueJoinToken(a.h.sql, serverId, 50);
    await new Promise((r) => setTimeout(r, 100));
    expect(await refusal(register(token))).toBe("UNAUTHENTICATED");
    expect((await serverRow(a.h, serverId)).agentState).toBe("PENDING");
  });

  it("refuses foreign tokens: never issued here, an API key, no token at all", async () => {
    expect(await refusal(register(newJoinToken()))).toBe("UNAUTHENTICATED");
    // An API key: operators do not hold agents.join (only join tokens do).
    expect(await refusal(register(a.tokens.operator))).toBe("PERMISSION_DENIED");
    expect(await refusal(register(""))).toBe("UNAUTHENTICATED");
  });

  it("binds a token to its own server", async () => {
    const [s1, s2] = [await a.newServer(), await a.newServer()];
    const t2 = await issueJoinToken(a.h.sql, s2, 60_000);
    await issueJoinToken(a.h.sql, s1, 60_000);
    expect((await register(t2)).serverId).toBe(s2);
    expect(await a.h.sql.query`SELECT id FROM agents WHERE server_id = ${s1}`).toHaveLength(0);
  });

  it("refuses a token whose server was terminated since", async () => {
    const serverId = await a.newServer();
    const token = await issueJoinToken(a.h.sql, serverId, 60_000);
    await a.h.sql.execute`UPDATE servers SET state = 'TERMINATED' WHERE id = ${serverId}`;
    expect(await refusal(register(token))).toBe("UNAUTHENTICATED");
  });

  it("lets a join token call nothing but Register", async () => {
    const serverId = await a.newServer();
    const token = await issueJoinToken(a.h.sql, serverId, 60_000);
    const other = grpcWebUnary(a.bridgeUrl, "/dispatcher.v1.ServerAgentService/GetServerAgent", GetServerAgentRequest, GetServerAgentResponse, { serverId }, { token, timeoutMs: 5_000 });
    expect(await refusal(other)).toBe("PERMISSION_DENIED");
    // …and the token is still good for what it is for.
    expect((await register(token)).serverId).toBe(serverId);
  });

  it("answers bad hints with INVALID_ARGUMENT and keeps the token", async () => {
    const serverId = await a.newServer();
    const token = await issueJoinToken(a.h.sql, serverId, 60_000);
    expect(await refusal(register(token, { ...hints, port: 0 }))).toBe("INVALID_ARGUMENT");
    expect((await register(token)).serverId).toBe(serverId);
  });

  it("prunes tokens that expired long ago and keeps the rest", async () => {
    const serverId = await a.newServer();
    await issueJoinToken(a.h.sql, serverId, 60_000, new Date(Date.now() - 30 * 86_400_000));
    await issueJoinToken(a.h.sql, serverId, 60_000);
    expect(await pruneJoinTokens(a.h.sql, new Date(Date.now() - 7 * 86_400_000))).toBe(1);
    expect(await a.h.sql.query`SELECT id FROM agent_join_tokens WHERE server_id = ${serverId}`).toHaveLength(1);
  });
});
