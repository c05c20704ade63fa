// Who may use credentials: the permission rules (credentials.use is service-only, whatever the role), the mapping of
// client certificates to principals, and the explicitly plaintext development mode with its keyed identity token.
import { describe, expect, it } from "vitest";
import { PermissionDeniedError, UnauthenticatedError } from "../../src/errors.js";
import { createKmClient } from "../../src/km/client.js";
import { certificateIdentity, parseClientPrincipals, plaintextIdentityToken, principalFromCertificate, verifyPlaintextIdentityToken } from "../../src/km/identity.js";
import { generateKeyText, parseKeyring } from "../../src/km/keys.js";
import { kmClientSettings } from "../../src/km/settings.js";
import { isAllowed, roleGrants, SERVICE_ONLY_PERMISSIONS } from "../../src/iam/permissions.js";
import { startTestKm } from "./support.js";

describe("permissions", () => {
  it("credentials.use is for service principals only: an admin person is refused, a worker service allowed", () => {
    expect(SERVICE_ONLY_PERMISSIONS.has("credentials.use")).toBe(true);
    expect(isAllowed({ id: "u", kind: "user", roles: ["admin"], displayName: "Ada" }, "credentials.use")).toBe(false);
    expect(isAllowed({ id: "w", kind: "service", roles: ["worker"], displayName: "worker" }, "credentials.use")).toBe(true);
    expect(isAllowed({ id: "d", kind: "service", roles: ["operator"], displayName: "dispatcher" }, "credentials.use")).toBe(true);
    expect(isAllowed({ id: "u", kind: "user", roles: ["admin"], displayName: "Ada" }, "admin.keys")).toBe(true);
  });

  it("the worker role grants credentials.use and nothing else", () => {
    expect(roleGrants("worker", "credentials.use")).toBe(true);
    for (const p of ["credentials.read", "credentials.write", "admin.keys", "jobs.read", "system.read"]) expect(roleGrants("worker", p), p).toBe(false);
  });
});

describe("client certificates → principals", () => {
  const { map, problems } = parseClientPrincipals(["dispatcher=service:operator", "worker=service:worker", "admin=user:admin"]);

  it("maps the certificate's CN (or first DNS name) to the configured principal; unknown names to none", () => {
    expect(problems).toEqual([]);
    expect(principalFromCertificate({ subject: { CN: "worker" } } as never, map)).toMatchObject({ id: "cert:worker", kind: "service", roles: ["worker"] });
    expect(certificateIdentity({ subject: {}, subjectaltname: "DNS:dispatcher, IP Address:127.0.0.1" } as never)).toBe("dispatcher");
    expect(principalFromCertificate({ subject: { CN: "mallory" } } as never, map)).toBeNull();
    expect(principalFromCertificate(undefined, map)).toBeNull();
  });

  it("names bad entries", () => {
    expect(parseClientPrincipals(["worker=robot:worker", "x=service:op", "x=user:admin"]).problems).toEqual([
      'km.clientPrincipals: "worker=robot:worker" is not <cn>=<service|user>:<role>',
      "km.clientPrincipals: x is listed twice",
    ]);
  });
});

describe("plaintext development mode", () => {
  it("identity tokens verify only under the same channel key and for the same name", () => {
    const keys = parseKeyring(generateKeyText(1), "k");
    const token = plaintextIdentityToken(keys, "worker");
    expect(verifyPlaintextIdentityToken(keys, token)).toBe("worker");
    expect(verifyPlaintextIdentityToken(keys, token.replace(/^worker/, "admin"))).toBeNull();
    expect(verifyPlaintextIdentityToken(parseKeyring(generateKeyText(1), "k"), token)).toBeNull();
    expect(verifyPlaintextIdentityToken(keys, "worker")).toBeNull();
  });

  it("serves without TLS only when asked, warns, and still checks who calls", async () => {
    const t = await startTestKm({ label: "kmplain", masterKeys: generateKeyText(1) });
    try {
      t.config.km.plaintext = true;
      await t.restart();
      expect(t.logLines.some((l) => l.level === "warn" && /WITHOUT TLS/.test(l.msg))).toBe(true);
      const s = kmClientSettings(t.config, "worker");
      expect(s.transport.kind).toBe("plaintext");
      const worker = createKmClient({ address: t.address, channelKeys: s.channelKeys, transport: s.transport });
      const dispatcher = t.client("dispatcher");
      const forged = createKmClient({ address: t.address, channelKeys: s.channelKeys, transport: { kind: "plaintext", token: "dispatcher.AAAA" } });
      try {
        const stored = await dispatcher.storeCredential({ accountId: "a1", type: "local", fields: { token: "plain-secret" } });
        expect((await worker.getCredential({ id: stored.id, accountId: "a1" })).fields).toEqual({ token: "plain-secret" });
        await expect(worker.listCredentials({ accountId: "a1" })).rejects.toBeInstanceOf(PermissionDeniedError);
        await expect(forged.listCredentials({ accountId: "a1" })).rejects.toBeInstanceOf(UnauthenticatedError);
      } finally {
        worker.close();
        forged.close();
      }
    } finally {
      await t.cleanup();
    }
  });
});
