// KM as a server over mutual TLS against a real MariaDB database: who may connect and fetch, tampering with stored
// rows, rotation and re-wrap (then retiring the old key), crypto-shredding, the audit trail (fail closed), encryption
// counting and its limits, and what a client sees when KM is down.
import { X509Certificate, generateKeyPairSync } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, credentials, status, type ServiceError } from "@grpc/grpc-js";
import { ConfigError } from "../../src/config.js";
import { DeadlineExceededError, FailedPreconditionError, NotFoundError, PermissionDeniedError, UnavailableError } from "../../src/errors.js";
import { createKmClient, isRetryableKmError, type KmClient } from "../../src/km/client.js";
import { devPaths } from "../../src/km/dev-files.js";
import { kmClientCredentials } from "../../src/km/identity.js";
import { generateKeyText } from "../../src/km/keys.js";
import { kmClientSettings } from "../../src/km/settings.js";
import { certificatePem, createCertificate } from "../../src/km/x509.js";
import { writeFileSync } from "node:fs";
import { startInMemoryTracing, type InMemoryTracing } from "../telemetry/in-memory.js";
import { sql, startTestKm, type TestKm } from "./support.js";

const KEY1 = generateKeyText(1);
const KEY2 = generateKeyText(2);
const FIELDS = { access_key_id: "AKIAEXAMPLE", secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" };

let t: TestKm;
let worker: KmClient;
let dispatcher: KmClient;
let admin: KmClient;

let tracing: InMemoryTracing;

beforeAll(async () => {
  tracing = startInMemoryTracing();
  t = await startTestKm({ label: "km", masterKeys: KEY1 });
  worker = t.client("worker");
  dispatcher = t.client("dispatcher");
  admin = t.client("admin");
});

afterAll(async () => {
  await t?.cleanup();
  await tracing?.stop();
});

const store = (accountId = "acct-1", fields: Record<string, string> = FIELDS) => dispatcher.storeCredential({ accountId, type: "aws-access-key", fields, labels: { region: "eu-west-1" }, jobId: "job-1" });
const auditLines = (): Record<string, unknown>[] => readFileSync(t.config.km.auditFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);

describe("who may connect and fetch", () => {
  it("a worker (service principal) gets the fields back intact; the answer names the key version", async () => {
    const meta = await store();
    expect(meta.keyVersion).toBe(1);
    const got = await worker.getCredential({ id: meta.id, accountId: "acct-1", jobId: "job-7", purpose: "launch server" });
    expect(got.fields).toEqual(FIELDS);
    expect(got.credential.labels).toEqual({ region: "eu-west-1" });
  });

  it("an end-user principal (admin, but a person) gets PERMISSION_DENIED on GetCredential, recorded in the audit trail", async () => {
    const meta = await store();
    const err = await admin.getCredential({ id: meta.id, accountId: "acct-1" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermissionDeniedError);
    await t.km.audit.flush();
    await new Promise((r) => setTimeout(r, 50));
    expect(auditLines().some((l) => l.action === "denied" && l.principal === "cert:admin" && l.result === "PERMISSION_DENIED")).toBe(true);
    // The same admin may still list and rotate (not secrets).
    await expect(admin.listCredentials({ accountId: "acct-1" })).resolves.toBeDefined();
  });

  it("a worker may not store, list or delete credentials (it only uses them)", async () => {
    await expect(worker.storeCredential({ accountId: "a", type: "t", fields: { a: "b" } })).rejects.toBeInstanceOf(PermissionDeniedError);
    await expect(worker.listCredentials({ accountId: "a" })).rejects.toBeInstanceOf(PermissionDeniedError);
  });

  it("another account's credential is NOT_FOUND", async () => {
    const meta = await store("acct-1");
    await expect(worker.getCredential({ id: meta.id, accountId: "acct-2" })).rejects.toBeInstanceOf(NotFoundError);
  });

  it("a caller without a client certificate cannot connect", async () => {
    const ca = readFileSync(devPaths(t.dir).ca);
    const client = new Client(t.address, credentials.createSsl(ca), { "grpc.ssl_target_name_override": "localhost" });
    try {
      const err = await new Promise<ServiceError | null>((resolve) =>
        client.makeUnaryRequest("/km.v1.KeyManagementService/ListCredentials", (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), { deadline: Date.now() + 5_000 }, (e) => resolve(e)),
      );
      expect(err?.code).toBe(status.UNAVAILABLE);
    } finally {
      client.close();
    }
  });

  it("nor can one with a certificate from another CA; one from the CA with an unknown name is UNAUTHENTICATED", async () => {
    const dir = join(t.dir, "other");
    mkdirSync(dir, { recursive: true });
    const issue = (caKey: ReturnType<typeof generateKeyPairSync>, caCert: X509Certificate, cn: string): { cert: string; key: string } => {
      const k = generateKeyPairSync("ec", { namedCurve: "P-256" });
      const der = createCertificate({ commonName: cn, publicKey: k.publicKey, signingKey: caKey.privateKey, issuer: { commonName: caCert.subject.replace(/^.*CN=/s, ""), organization: "dispatcher (development)", publicKey: caCert.publicKey }, usage: ["client"], days: 1 });
      const cert = join(dir, `${cn}.pem`);
      const key = join(dir, `${cn}-key.pem`);
      writeFileSync(cert, certificatePem(der));
      writeFileSync(key, k.privateKey.export({ type: "pkcs8", format: "pem" }));
      return { cert, key };
    };
    const d = devPaths(t.dir);
    const ourCa = { publicKey: new X509Certificate(readFileSync(d.ca)).publicKey, privateKey: (await import("node:crypto")).createPrivateKey(readFileSync(d.caKey)) } as unknown as ReturnType<typeof generateKeyPairSync>;
    const foreignKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const foreignCa = new X509Certificate(createCertificate({ commonName: "dispatcher development CA", organization: "dispatcher (development)", publicKey: foreignKey.publicKey, signingKey: foreignKey.privateKey, ca: true, days: 1 }));
    const s = kmClientSettings(t.config, "worker");
    const clientWith = (files: { cert: string; key: string }): KmClient =>
      createKmClient({ address: t.address, channelKeys: s.channelKeys, transport: { kind: "tls", credentials: kmClientCredentials({ ca: d.ca, ...files }), serverName: "localhost" } });
    const forged = clientWith(issue(foreignKey, foreignCa, "worker"));
    const stranger = clientWith(issue(ourCa, new X509Certificate(readFileSync(d.ca)), "stranger"));
    try {
      await expect(forged.listCredentials({ accountId: "a" })).rejects.toBeInstanceOf(UnavailableError);
      await expect(stranger.listCredentials({ accountId: "a" })).rejects.toMatchObject({ code: "UNAUTHENTICATED" });
    } finally {
      forged.close();
      stranger.close();
    }
  });
});

describe("tampering with the stored row", () => {
  async function tamperAndGet(change: (id: string) => Promise<void>): Promise<unknown> {
    const meta = await store();
    await change(meta.id);
    return worker.getCredential({ id: meta.id, accountId: "acct-1" }).catch((e: unknown) => e);
  }
  const flipAt = (column: string, position: string) => (id: string) =>
    sql(t.dbUrl, `UPDATE credentials SET ${column} = CONCAT(SUBSTR(${column}, 1, ${position} - 1), CHAR(ASCII(SUBSTR(${column}, ${position}, 1)) ^ 1), SUBSTR(${column}, ${position} + 1)) WHERE id = ?`, [id]).then(() => undefined);

  it.each([
    ["a ciphertext byte", flipAt("ciphertext", "LENGTH(ciphertext) - 20")],
    ["the fields' nonce", flipAt("ciphertext", "5")],
    ["the wrapped data key", flipAt("wrapped_key", "40")],
    ["the key version column", (id: string) => sql(t.dbUrl, "UPDATE credentials SET key_version = 2 WHERE id = ?", [id]).then(() => undefined)],
    ["the type (associated data)", (id: string) => sql(t.dbUrl, "UPDATE credentials SET type = 'gcp-key' WHERE id = ?", [id]).then(() => undefined)],
  ])("%s → FAILED_PRECONDITION with a clear message and no fields", async (_what, change) => {
    const err = await tamperAndGet(change);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as FailedPreconditionError).message).toMatch(/failed its integrity check|cannot be decrypted/);
    expect((err as FailedPreconditionError).message).not.toContain("wJalr");
    expect(isRetryableKmError(err)).toBe(false);
  });

  it("a record copied onto another account's row does not decrypt", async () => {
    const victim = await store("acct-victim");
    const attacker = await store("acct-attacker", { access_key_id: "AKIAOTHER", secret_access_key: "other-secret" });
    await sql(t.dbUrl, "UPDATE credentials a JOIN credentials v ON v.id = ? SET a.wrapped_key = v.wrapped_key, a.ciphertext = v.ciphertext, a.key_version = v.key_version WHERE a.id = ?", [victim.id, attacker.id]);
    const err = await worker.getCredential({ id: attacker.id, accountId: "acct-attacker" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as FailedPreconditionError).reason).toBe("CREDENTIAL_INTEGRITY_FAILED");
    // The victim's own row still opens.
    expect((await worker.getCredential({ id: victim.id, accountId: "acct-victim" })).fields).toEqual(FIELDS);
  });
});

describe("deletion, limits and failure", () => {
  it("DeleteCredential destroys the wrapped data key (crypto-shredding); the credential is then NOT_FOUND; deleting twice is fine", async () => {
    const meta = await store();
    await dispatcher.deleteCredential({ id: meta.id, jobId: "job-9" });
    const [row] = await sql<{ wrapped_key: Buffer | null; ciphertext: Buffer | null; deleted_at: Date | null }>(t.dbUrl, "SELECT wrapped_key, ciphertext, deleted_at FROM credentials WHERE id = ?", [meta.id]);
    expect(row?.wrapped_key).toBeNull();
    expect(row?.ciphertext).toBeNull();
    expect(row?.deleted_at).toBeInstanceOf(Date);
    await expect(worker.getCredential({ id: meta.id, accountId: "acct-1" })).rejects.toBeInstanceOf(NotFoundError);
    await expect(dispatcher.deleteCredential({ id: meta.id })).resolves.toBeUndefined();
  });

  it("bad input is INVALID_ARGUMENT naming the fields, never echoing a secret value", async () => {
    const err = await dispatcher.storeCredential({ accountId: "", type: "Bad Type", fields: { "bad name": "s3cret-value" } }).catch((e: unknown) => e);
    expect((err as { code: string }).code).toBe("INVALID_ARGUMENT");
    expect(JSON.stringify(err)).not.toContain("s3cret-value");
    expect((err as Error).message).toMatch(/account_id/);
    expect((err as Error).message).toMatch(/type/);
  });

  it("passes the caller's deadline on: one already past fails at once with DEADLINE_EXCEEDED", async () => {
    await expect(worker.getCredential({ id: "01JDQ3Z5K8W8G4QF2Q6N2D7M9T", accountId: "a" }, { deadline: new Date(Date.now() - 1) })).rejects.toBeInstanceOf(DeadlineExceededError);
  });

  it("counts encryptions per master key version", async () => {
    const before = await sql<{ encryptions: bigint }>(t.dbUrl, "SELECT encryptions FROM master_key_versions WHERE is_current = 1");
    await store();
    await store();
    const after = await sql<{ encryptions: bigint }>(t.dbUrl, "SELECT encryptions FROM master_key_versions WHERE is_current = 1");
    expect(Number(after[0]?.encryptions) - Number(before[0]?.encryptions)).toBe(2);
  });
});

describe("rotation and re-wrap", () => {
  it("after RotateMasterKey old records still decrypt; after the re-wrap every record uses the newest version and the old version can be retired", async () => {
    const old = await store("acct-rot");
    await t.restart({ masterKeys: `${KEY1},${KEY2}` });
    // A new version configured is not used until rotation.
    expect((await store("acct-rot")).keyVersion).toBe(1);
    expect(await admin.rotateMasterKey()).toEqual({ currentVersion: 2 });
    const fresh = await store("acct-rot");
    expect(fresh.keyVersion).toBe(2);
    expect((await worker.getCredential({ id: old.id, accountId: "acct-rot" })).fields).toEqual(FIELDS);

    const partial = await admin.rewrapCredentials({ limit: 1 });
    expect(partial.rewrapped).toBe(1);
    expect(partial.remaining).toBeGreaterThan(0);
    const all = await admin.rewrapCredentials();
    // The rows tampered with above (wrapped key, type, copied row) cannot be unwrapped: they stay and are reported.
    expect(all.failed).toBe(3);
    expect(all.remaining).toBe(3);
    expect(all.currentVersion).toBe(2);
    expect(await admin.rewrapCredentials()).toMatchObject({ rewrapped: 0, failed: 3, remaining: 3 });
    // The operator shreds what cannot be recovered; then no live record uses version 1.
    const stuck = await sql<{ id: string }>(t.dbUrl, "SELECT id FROM credentials WHERE deleted_at IS NULL AND key_version <> 2");
    expect(stuck).toHaveLength(3);
    for (const { id } of stuck) await dispatcher.deleteCredential({ id });
    expect(await admin.rewrapCredentials()).toMatchObject({ rewrapped: 0, failed: 0, remaining: 0 });

    // Retire version 1: KM starts with version 2 alone, and every record still opens.
    await t.restart({ masterKeys: KEY2 });
    expect((await worker.getCredential({ id: old.id, accountId: "acct-rot" })).fields).toEqual(FIELDS);
    const [v1] = await sql<{ retired_at: Date | null }>(t.dbUrl, "SELECT retired_at FROM master_key_versions WHERE version = 1");
    expect(v1?.retired_at).toBeInstanceOf(Date);
    expect(auditLines().filter((l) => l.action === "rotate" || l.action === "rewrap").map((l) => l.result)).toEqual(expect.arrayContaining(["OK"]));
  });

  it("refuses to start when a configured key is not the one recorded for its version", async () => {
    await t.stop();
    await expect(t.restart({ masterKeys: generateKeyText(2) })).rejects.toBeInstanceOf(ConfigError);
    await t.restart({ masterKeys: KEY2 });
  });

  it("a version past its rotation point hands over to a newer configured one; at its limit it refuses to wrap", async () => {
    const key3 = generateKeyText(3);
    const [{ e }] = (await sql<{ e: bigint }>(t.dbUrl, "SELECT encryptions AS e FROM master_key_versions WHERE version = 2")) as [{ e: bigint }];
    await t.restart({ masterKeys: `${KEY2},${key3}`, limits: { rotateAt: BigInt(e) + 1n, refuseAt: 10_000n } });
    expect((await store("acct-lim")).keyVersion).toBe(2);
    expect((await store("acct-lim")).keyVersion).toBe(3);
    const [{ e3 }] = (await sql<{ e3: bigint }>(t.dbUrl, "SELECT encryptions AS e3 FROM master_key_versions WHERE version = 3")) as [{ e3: bigint }];
    await t.restart({ limits: { rotateAt: BigInt(e3), refuseAt: BigInt(e3) + 1n } });
    await store("acct-lim");
    const err = await store("acct-lim").catch((x: unknown) => x);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as FailedPreconditionError).reason).toBe("MASTER_KEY_EXHAUSTED");
    await t.restart({ limits: { rotateAt: 2n ** 30n, refuseAt: 2n ** 31n } });
  });
});

describe("the audit trail", () => {
  it("records store, get, delete and rotation with principal, credential, job and trace ids, in the table and the file", async () => {
    const meta = await store("acct-audit");
    await worker.getCredential({ id: meta.id, accountId: "acct-audit", jobId: "job-42", purpose: "launch" });
    await dispatcher.deleteCredential({ id: meta.id, jobId: "job-43" });
    await t.km.audit.flush();
    const rows = await sql<{ action: string; principal: string; job_id: string | null; trace_id: string | null; result: string }>(t.dbUrl, "SELECT action, principal, job_id, trace_id, result FROM audit_events WHERE credential_id = ? ORDER BY id", [meta.id]);
    expect(rows.map((r) => [r.action, r.principal, r.job_id, r.result])).toEqual([
      ["store", "cert:dispatcher", "job-1", "OK"],
      ["get", "cert:worker", "job-42", "OK"],
      ["delete", "cert:dispatcher", "job-43", "OK"],
    ]);
    for (const r of rows) expect(r.trace_id).toMatch(/^[0-9a-f]{32}$/);
    const file = auditLines().filter((l) => l.credential_id === meta.id);
    expect(file.map((l) => l.action)).toEqual(["store", "get", "delete"]);
    await expect(sql(t.dbUrl, "DELETE FROM audit_events")).rejects.toThrow(/append-only/);
  });

  it("concurrent GetCredential calls are each answered with their own fields and each recorded once, in the table and the file", async () => {
    const metas = await Promise.all(Array.from({ length: 5 }, (_, i) => store(`acct-group-${i}`, { ...FIELDS, n: String(i) })));
    const calls = Array.from({ length: 40 }, (_, i) => ({ meta: metas[i % metas.length]!, i }));
    const got = await Promise.all(calls.map(({ meta, i }) => worker.getCredential({ id: meta.id, accountId: meta.accountId, jobId: `job-group-${i}` })));
    got.forEach((g, i) => expect(g.fields.n).toBe(String(i % metas.length)));
    // Another account's id in the same batch of reads is still NOT_FOUND.
    await expect(worker.getCredential({ id: metas[0]!.id, accountId: "acct-group-1" })).rejects.toBeInstanceOf(NotFoundError);
    const rows = await sql<{ job_id: string }>(t.dbUrl, "SELECT job_id FROM audit_events WHERE action = 'get' AND result = 'OK' AND job_id LIKE 'job-group-%'");
    expect(rows.map((r) => r.job_id).sort()).toEqual(calls.map(({ i }) => `job-group-${i}`).sort());
    expect(auditLines().filter((l) => String(l.job_id).startsWith("job-group-") && l.result === "OK")).toHaveLength(calls.length);
  });

  it("fails closed: when the audit table cannot be written, GetCredential fails and returns no fields", async () => {
    const meta = await store("acct-closed-table");
    await sql(t.dbUrl, "CREATE TRIGGER audit_events_blocked BEFORE INSERT ON audit_events FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit blocked by the test'");
    try {
      const err = await worker.getCredential({ id: meta.id, accountId: "acct-closed-table" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as UnavailableError).message).toMatch(/audit/);
      expect(JSON.stringify(err)).not.toContain(FIELDS.secret_access_key);
    } finally {
      await sql(t.dbUrl, "DROP TRIGGER audit_events_blocked");
    }
    expect((await worker.getCredential({ id: meta.id, accountId: "acct-closed-table" })).fields).toEqual(FIELDS);
  });

  it("fails closed: when the audit file cannot be written, GetCredential fails and returns no fields", async () => {
    const meta = await store("acct-closed");
    const blocked = join(t.dir, "audit-is-a-directory");
    mkdirSync(blocked);
    await t.restart({ auditFile: blocked });
    try {
      const err = await worker.getCredential({ id: meta.id, accountId: "acct-closed" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as UnavailableError).message).toMatch(/audit/);
      await expect(store("acct-closed")).rejects.toBeInstanceOf(UnavailableError);
    } finally {
      await t.restart({ auditFile: join(t.dir, "km", "audit.jsonl") });
    }
    expect((await worker.getCredential({ id: meta.id, accountId: "acct-closed" })).fields).toEqual(FIELDS);
  });

  it("fails closed while running: the open audit file replaced by a directory refuses GetCredential until it is back", async () => {
    const meta = await store("acct-closed-live");
    const file = t.config.km.auditFile;
    await worker.getCredential({ id: meta.id, accountId: "acct-closed-live", jobId: "job-live-1" }); // the file is open now
    renameSync(file, `${file}.rotated`);
    mkdirSync(file);
    try {
      const err = await worker.getCredential({ id: meta.id, accountId: "acct-closed-live", jobId: "job-live-2" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as UnavailableError).message).toMatch(/audit/);
    } finally {
      rmSync(file, { recursive: true });
    }
    // A rotated file is followed at once: the next record is in the new file at the path.
    await worker.getCredential({ id: meta.id, accountId: "acct-closed-live", jobId: "job-live-3" });
    expect(auditLines().map((l) => l.job_id)).toEqual(["job-live-3"]);
  });
});

describe("a KM outage", () => {
  it("surfaces as UnavailableError, which jobs retry", async () => {
    await t.stop();
    try {
      const err = await worker.getCredential({ id: "01JDQ3Z5K8W8G4QF2Q6N2D7M9T", accountId: "a" }, { deadline: new Date(Date.now() + 3_000) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect(isRetryableKmError(err)).toBe(true);
    } finally {
      await t.restart();
    }
  });
});
