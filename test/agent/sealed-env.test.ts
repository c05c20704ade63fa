// A script's environment in its job payload: sealed for its server (never in clear, in any encoding), opened only with
// the same key and server, older payloads with the environment in clear still readable; and launch user data still
// opening from what was sealed before the sealing moved to src/sealed.ts.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { runScriptPayload, runScriptPayloadOf, scriptEnvOf } from "../../src/agent/run-script-kind.js";
import { openUserData, sealUserData } from "../../src/servers/user-data.js";

const KEY = randomBytes(32);
const SERVER = "01JTESTSERVER0000000000000";
const OTHER = "01JTESTSERVER0000000000001";
const SECRET = `env-canary-${randomBytes(16).toString("hex")}`;
const forms = (s: string): string[] => [s, Buffer.from(s).toString("base64"), Buffer.from(s).toString("base64url"), Buffer.from(s).toString("hex")];
const input = { serverId: SERVER, command: "sh", args: ["-c", "true"], env: { TOKEN: SECRET, PLAIN: "x" }, timeoutMs: 1_000, failOnNonZeroExit: false };

describe("a script's environment in its job payload", () => {
  it("is sealed: the stored JSON holds no value of it in any encoding, and the kind's schema keeps it", () => {
    const payload = runScriptPayloadOf(KEY, input);
    const stored = JSON.stringify(runScriptPayload.parse(JSON.parse(JSON.stringify(payload))));
    for (const form of forms(SECRET)) expect(stored.includes(form), form).toBe(false);
    expect(payload.env).toEqual({});
    expect(payload.sealedEnv).toMatch(/^v1\.[A-Za-z0-9_-]+$/);
    expect(scriptEnvOf(KEY, runScriptPayload.parse(JSON.parse(stored)))).toEqual({ TOKEN: SECRET, PLAIN: "x" });
  });

  it("seals each time anew (one server's children do not share a ciphertext) and nothing when there is no environment", () => {
    expect(runScriptPayloadOf(KEY, input).sealedEnv).not.toBe(runScriptPayloadOf(KEY, input).sealedEnv);
    expect(runScriptPayloadOf(KEY, { ...input, env: {} })).not.toHaveProperty("sealedEnv");
  });

  it("opens only for its server and with its key, and the refusal quotes neither the value nor the sealed text", () => {
    const payload = runScriptPayloadOf(KEY, input);
    const moved = scriptEnvOf(KEY, { ...payload, serverId: OTHER });
    const rotated = scriptEnvOf(randomBytes(32), payload);
    const garbled = scriptEnvOf(KEY, { ...payload, sealedEnv: "v1.AAAA" });
    for (const refused of [moved, rotated, garbled]) {
      expect(refused).toBeInstanceOf(Error);
      const message = (refused as Error).message;
      expect(message.includes(SECRET)).toBe(false);
      expect(message.includes(payload.sealedEnv as string)).toBe(false);
    }
    expect((rotated as Error).message).toMatch(/cannot be opened with this agent\.credentialKey/);
    expect((garbled as Error).message).toMatch(/truncated/);
  });

  it("is not user data: each purpose has its own key, so one's sealed text does not open as the other", () => {
    const asUserData = sealUserData(KEY, SERVER, JSON.stringify({ TOKEN: SECRET }));
    expect(scriptEnvOf(KEY, { serverId: SERVER, env: {}, sealedEnv: asUserData })).toBeInstanceOf(Error);
    const payload = runScriptPayloadOf(KEY, input);
    expect(openUserData(KEY, SERVER, payload.sealedEnv as string)).toBeInstanceOf(Error);
  });

  it("of a payload written before sealing (env in clear) is still the one run with", () => {
    const older = runScriptPayload.parse({ serverId: SERVER, command: "sh", env: { TOKEN: "older" } });
    expect(older.sealedEnv).toBeUndefined();
    expect(scriptEnvOf(KEY, older)).toEqual({ TOKEN: "older" });
  });
});

describe("launch user data", () => {
  it("sealed before the sealing code moved to src/sealed.ts still opens (same format, key and associated data)", () => {
    const before = "v1.lQEEE82ra7AjDebRWKRSFgQgWt75AcyxOUqjLaHN3KNxfBfEr85BidAe4_osHwpCEdUaVUOkwelo";
    expect(openUserData(Buffer.alloc(32, 7), SERVER, before)).toBe("#!/bin/sh\necho sealed before\n");
    expect(openUserData(Buffer.alloc(32, 7), OTHER, before)).toBeInstanceOf(Error);
  });
});
