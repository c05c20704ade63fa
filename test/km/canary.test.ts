// The canary: a random secret stored through StoreCredential on a real `dispatcher serve --role km` process (mTLS,
// development certificates from `dispatcher km dev-certs`, a master key from `dispatcher km generate-key`) comes back
// intact through GetCredential (alone, and gathered into BatchGetCredentials), and appears nowhere else: not in a
// full dump of every database of the test, not in any service-log line, request-log line, audit line, or exported
// span (the KM process's span file and this process's client spans).
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { NotFoundError, PermissionDeniedError } from "../../src/errors.js";
import { createKmClientFromConfig, type KmClient } from "../../src/km/client.js";
import { createTestEnv, killStrayDispatchers, runDispatcher, spawnDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";
import { startInMemoryTracing, type InMemoryTracing } from "../telemetry/in-memory.js";
import { dumpDatabase } from "./support.js";

const CANARY = `canary-${randomBytes(16).toString("hex")}`;
/** The canary as it might appear if something encoded it on the way. */
const FORMS = [CANARY, Buffer.from(CANARY).toString("base64"), Buffer.from(CANARY).toString("base64url"), Buffer.from(CANARY).toString("hex")];

let t: TestEnv;
let p: DispatcherProcess;
let tracing: InMemoryTracing;
let credentialId = "";

beforeAll(async () => {
  tracing = startInMemoryTracing();
  t = await createTestEnv({ label: "kmcanary", migrate: true, telemetryFile: true, env: { DISPATCHER_LOGGING_LEVEL: "debug" } });
  const key = await runDispatcher(["km", "generate-key"], t.env);
  expect(key.code, key.stderr).toBe(0);
  const certs = await runDispatcher(["km", "dev-certs"], t.env);
  expect(certs.code, certs.stderr).toBe(0);
  p = spawnDispatcher(["serve", "--role", "km"], t.with({ DISPATCHER_ENCRYPTION_MASTER_KEYS: key.stdout.trim() }));
  await p.waitForOutput(/"msg":"KM serving"/, 30_000);

  const config = loadConfig(t.env, "");
  const dispatcher: KmClient = createKmClientFromConfig(config, "dispatcher");
  const worker: KmClient = createKmClientFromConfig(config, "worker");
  const admin: KmClient = createKmClientFromConfig(config, "admin");
  try {
    const stored = await dispatcher.storeCredential({ accountId: "acct-canary", type: "aws-access-key", fields: { access_key_id: "AKIACANARYTEST", secret_access_key: CANARY }, labels: { purpose: "canary" }, jobId: "job-canary" });
    credentialId = stored.id;
    const got = await worker.getCredential({ id: credentialId, accountId: "acct-canary", jobId: "job-canary", purpose: "canary test" });
    expect(got.fields.secret_access_key).toBe(CANARY);
    // Calls made together go as one BatchGetCredentials call (one seal for the batch, a span per request): scanned too.
    const gathered = await Promise.allSettled([
      worker.getCredential({ id: credentialId, accountId: "acct-canary", jobId: "job-canary-batch" }),
      worker.getCredential({ id: credentialId, accountId: "acct-other", jobId: "job-canary-batch" }),
    ]);
    expect(gathered[0].status === "fulfilled" && gathered[0].value.fields.secret_access_key).toBe(CANARY);
    expect(gathered[1].status === "rejected" && gathered[1].reason).toBeInstanceOf(NotFoundError);
    // Refusals and failures write log and audit lines too: they must not leak either.
    await expect(admin.getCredential({ id: credentialId, accountId: "acct-canary" })).rejects.toBeInstanceOf(PermissionDeniedError);
    await expect(worker.getCredential({ id: credentialId, accountId: "acct-other" })).rejects.toBeInstanceOf(NotFoundError);
    await expect(dispatcher.listCredentials({ accountId: "acct-canary" })).resolves.toMatchObject({ credentials: [{ id: credentialId }] });
  } finally {
    dispatcher.close();
    worker.close();
    admin.close();
  }
  const exit = await p.stop("SIGTERM");
  expect(exit, p.output()).toEqual({ code: 0, signal: null });
}, 120_000);

afterAll(async () => {
  await killStrayDispatchers();
  await t?.cleanup();
  await tracing?.stop();
});

function expectNoCanary(where: string, text: string): void {
  for (const form of FORMS) expect(text.includes(form), `${where} contains the canary (${form === CANARY ? "as is" : "encoded"})`).toBe(false);
}

const read = (file: string): string => readFileSync(file, "utf8");

describe("a canary secret stored through KM", () => {
  it("came back intact through GetCredential (checked above) and was stored", () => {
    expect(credentialId).toMatch(/^[0-9A-Z]{26}$/);
  });

  it("is absent from a full dump of every database of the test", async () => {
    for (const [name, url] of Object.entries(t.urls)) {
      const dump = await dumpDatabase(url);
      if (name === "credentials") {
        expect(dump).toContain(credentialId);
        expect(dump).toContain("audit_events.action=get");
      }
      expectNoCanary(`database ${name}`, dump);
    }
  });

  it("is absent from every service-log line (stdout and stderr of the KM process)", () => {
    expect(p.logLines().length).toBeGreaterThan(5);
    expect(p.stdout).toContain(credentialId);
    expectNoCanary("the service log", p.stdout);
    expectNoCanary("stderr", p.stderr);
  });

  it("is absent from the request log", () => {
    const files = readdirSync(t.logDir).filter((f) => f.endsWith(".request.log"));
    const text = files.map((f) => read(join(t.logDir, f))).join("");
    expect(text).toContain("/km.v1.KeyManagementService/GetCredential");
    expect(text).toContain("/km.v1.KeyManagementService/BatchGetCredentials");
    expect(text).toContain("cert:worker");
    expectNoCanary("the request log", text);
  });

  it("is absent from the audit file", () => {
    const text = read(join(t.dir, "km", "audit.jsonl"));
    expect(text).toContain(credentialId);
    expect(text).toContain('"action":"store"');
    expect(text).toContain('"action":"denied"');
    expectNoCanary("the audit file", text);
  });

  it("is absent from every exported span: the KM process's span file and this process's KM client spans", () => {
    const file = t.telemetryFile as string;
    expect(existsSync(file)).toBe(true);
    const text = read(file);
    expect(text).toContain("KeyManagementService/GetCredential");
    expect(text).toContain('"km.get"');
    expectNoCanary("the KM process's spans", text);
    const spans = tracing.spans();
    const names = spans.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(["km.StoreCredential", "km.GetCredential"]));
    const get = spans.find((s) => s.name === "km.GetCredential");
    expect(get?.attributes["km.credential.id"]).toBe(credentialId);
    expectNoCanary("the client spans", JSON.stringify(spans.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events, status: s.status, links: s.links, resource: s.resource.attributes }))));
  });
});
