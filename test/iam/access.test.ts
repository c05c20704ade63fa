// IAM access control over a real server with the DB-backed authenticator: every served method refuses callers
// without valid credentials, and a role × method matrix generated from the permission table shows each built-in
// role allowed exactly what the table says (and the table says what IAM promises).
import { status, type Client, type MethodDefinition } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { idempotentMethods, loadDescriptorSet } from "../../src/client/service-config.js";
import { METHOD_PERMISSIONS, isAllowed, roleGrants } from "../../src/iam/permissions.js";
import { insecureClient, rawCall } from "../rpc/fixtures.js";
import { BUILT_IN, startIamFixture, type IamFixture } from "./support.js";

let f: IamFixture;
let raw: Client;

beforeAll(async () => {
  f = await startIamFixture("iam_access");
  raw = insecureClient(f.server.address);
});
afterAll(async () => {
  raw?.close();
  await f?.close();
});

const methods = (): Array<MethodDefinition<unknown, unknown>> => f.services.flatMap((s) => Object.values(s.definition) as Array<MethodDefinition<unknown, unknown>>);
const IAM_SERVICES = ["UserService", "GroupService", "RoleService", "ApiKeyService"];

describe("IAM access control", () => {
  it("serves every IAM method, each named in the permission table", () => {
    const paths = methods().map((m) => m.path);
    for (const service of IAM_SERVICES) expect(paths.some((p) => p.startsWith(`/dispatcher.v1.${service}/`)), service).toBe(true);
    expect(paths.filter((p) => !Object.hasOwn(METHOD_PERMISSIONS, p))).toEqual([]);
    expect(paths.length).toBeGreaterThanOrEqual(21);
  });

  it("answers UNAUTHENTICATED on every served method without credentials, with a malformed or unknown key", async () => {
    const unknownKey = `dsp_${"A".repeat(43)}`;
    for (const token of [undefined, "garbage", unknownKey, f.users.admin.secret.slice(0, -1)]) {
      for (const m of methods()) {
        const err = await rawCall(raw, m.path, m.responseStream, token);
        expect(err?.code, `${m.path} with ${token ?? "no token"}`).toBe(status.UNAUTHENTICATED);
      }
    }
  });

  it("allows each built-in role exactly the methods the permission table grants it", async () => {
    const seen = { allowed: 0, denied: 0 };
    for (const role of BUILT_IN) {
      for (const m of methods()) {
        const permission = METHOD_PERMISSIONS[m.path] as string;
        const allowed = isAllowed({ id: "x", kind: "user", roles: [role], displayName: "x" }, permission);
        // An empty request: allowed methods answer something (INVALID_ARGUMENT, NOT_FOUND, OK), never a refusal.
        const err = await rawCall(raw, m.path, m.responseStream, f.users[role].secret);
        if (allowed) {
          expect([status.PERMISSION_DENIED, status.UNAUTHENTICATED], `${role} ${m.path}`).not.toContain(err?.code);
          seen.allowed++;
        } else {
          expect(err?.code, `${role} ${m.path}`).toBe(status.PERMISSION_DENIED);
          seen.denied++;
        }
      }
    }
    expect(seen.allowed).toBeGreaterThan(0);
    expect(seen.denied).toBeGreaterThan(0);
  });

  it("the table keeps who-may-do-what with admins, reads open, and own API keys to everyone", () => {
    const iam = Object.entries(METHOD_PERMISSIONS).filter(([m]) => IAM_SERVICES.some((s) => m.startsWith(`/dispatcher.v1.${s}/`)));
    for (const [method, permission] of iam) {
      const verb = method.slice(method.lastIndexOf("/") + 1);
      const grants = Object.fromEntries(BUILT_IN.map((r) => [r, roleGrants(r, permission)]));
      if (method.includes("ApiKeyService")) expect(grants, method).toEqual({ admin: true, operator: true, finance: true, reader: true });
      else if (/^(Get|List)/.test(verb)) expect(grants, method).toEqual({ admin: true, operator: true, finance: true, reader: true });
      else expect(grants, method).toEqual({ admin: true, operator: false, finance: false, reader: false });
    }
  });

  it("marks the read methods NO_SIDE_EFFECTS, so the client's retry policy covers them, and never a Create", () => {
    const retried = new Set(idempotentMethods(loadDescriptorSet()).map((m) => `/${m.service}/${m.method}`));
    const iam = methods().map((m) => m.path).filter((p) => IAM_SERVICES.some((s) => p.startsWith(`/dispatcher.v1.${s}/`)));
    for (const path of iam) {
      const verb = path.slice(path.lastIndexOf("/") + 1);
      if (/^(Get|List)/.test(verb)) expect(retried.has(path), path).toBe(true);
      if (/^Create/.test(verb)) expect(retried.has(path), path).toBe(false);
    }
  });
});
