// Backups that restore, end to end with real processes: `dispatcher backup` runs while a client keeps creating jobs;
// `dispatcher restore` loads the archive into a private, empty MariaDB; a dispatcher started on it knows the same
// users, API keys and accounts, a consistent set of the jobs (each with its first event, no outbox entry without its
// job), runs the restored jobs to their end exactly once, and its KM decrypts the restored credential. A tampered
// archive is refused with a clear message before anything is written, and a non-empty target is refused.
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDispatcherClients, type DispatcherClients } from "../../src/client/index.js";
import { loadConfig } from "../../src/config.js";
import { createProvisioningClient, type ProvisioningClient } from "../../src/db/clients.js";
import { DiagnosticOutcome } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { UserKind } from "../../src/gen/proto/dispatcher/v1/iam.js";
import { AccountStatus } from "../../src/gen/proto/dispatcher/v1/provisioning.js";
import { createKmClientFromConfig } from "../../src/km/client.js";
import { generateKeyText } from "../../src/km/keys.js";
import { SMALL_POOLS } from "../jobs/faults-support.js";
import { poll } from "../support/daemon.js";
import { startPrivateMariadb, type PrivateMariadb } from "../support/mariadb.js";
import { bootstrapToken, createTestEnv, killStrayDispatchers, runDispatcher, startDispatcher, type TestEnv } from "../support/process.js";

const MASTER_KEYS = generateKeyText(1);
const BACKUP_KEY = generateKeyText(1);
const keys = { DISPATCHER_ENCRYPTION_MASTER_KEYS: MASTER_KEYS, DISPATCHER_BACKUP_KEY: BACKUP_KEY };

let src: TestEnv;
let dst: TestEnv;
let mariadb: PrivateMariadb;
let token = "";
let archive = "";
const clients: DispatcherClients[] = [];
const dbs: ProvisioningClient[] = [];

/** The private server's URLs for a set of database names (prefix_prov, …). */
const privateUrls = (prefix: string): Record<string, string> => ({
  DISPATCHER_PROVISIONING_URL: mariadb.url(`${prefix}_prov`),
  DISPATCHER_ANALYTICS_URL: mariadb.url(`${prefix}_anl`),
  DISPATCHER_KM_DATABASE_URL: mariadb.url(`${prefix}_cred`),
});

function client(address: string): DispatcherClients {
  const c = createDispatcherClients({ address, token, retry: false });
  clients.push(c);
  return c;
}

function db(url: string): ProvisioningClient {
  const c = createProvisioningClient(url, 2);
  dbs.push(c);
  return c;
}

beforeAll(async () => {
  [src, dst, mariadb] = await Promise.all([
    createTestEnv({ label: "bksrc", env: { ...SMALL_POOLS, ...keys, DISPATCHER_LOGGING_LEVEL: "warn" } }),
    // The restored dispatcher republishes queued jobs after 1 s and reclaims running ones after a short lease, so the
    // jobs that were under way at the snapshot end within the test.
    createTestEnv({ label: "bkdst", env: { ...SMALL_POOLS, ...keys, DISPATCHER_LOGGING_LEVEL: "warn", DISPATCHER_JOBS_REPUBLISH_AFTER_MS: "1000", DISPATCHER_JOBS_LEASE_MS: "5000", DISPATCHER_JOBS_RECONCILE_INTERVAL_MS: "500" } }),
    startPrivateMariadb({ label: "restore" }),
  ]);
  const p = await startDispatcher(src, ["start"], { timeoutMs: 90_000 });
  token = bootstrapToken(p) ?? "";
  expect(token, p.output()).not.toBe("");
  const c = client(src.address);
  await c.users.createUser({ email: "ann@example.test", name: "Ann Ünicode \"quoted\"", kind: UserKind.USER_KIND_USER, roles: ["reader"] });
  await c.users.createUser({ email: "bot@example.test", name: "Bot", kind: UserKind.USER_KIND_SERVICE, roles: ["operator"] });
  // The quick start connects the `local` account, its key stored through KM: the credential the restore must keep.
  await poll(async () => (await c.accounts.listAccounts({ pageSize: 10 })).accounts.find((a) => a.name === "local" && a.status === AccountStatus.ACCOUNT_STATUS_ACTIVE), 60_000, "the local account to be ACTIVE");
}, 150_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.allSettled(dbs.map((d) => d.$disconnect()));
  await killStrayDispatchers();
  await Promise.allSettled([src?.cleanup(), dst?.cleanup()]);
  await mariadb?.stop();
});

describe("dispatcher backup while jobs are created, then restore into an empty private server", () => {
  it("the restored dispatcher has the same users, accounts and a consistent set of the jobs, runs them once, and KM decrypts the credential", async () => {
    const c = client(src.address);
    let created = 0;
    let stop = false;
    const failures: string[] = [];
    const creating = Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; !stop && created < 4_000; i++) {
          await c.jobs
            .runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED, note: `w${w}-${i}`, idempotencyKey: `bk-${w}-${i}` })
            .then(() => created++)
            .catch((e: unknown) => failures.push(String(e)));
        }
      }),
    );
    await poll(async () => created >= 100, 60_000, "100 jobs created");
    const before = created;
    const backup = await runDispatcher(["backup"], src.env, 120_000);
    const after = created;
    stop = true;
    await creating;
    expect(failures).toEqual([]);
    expect(backup.code, `${backup.stdout}\n${backup.stderr}`).toBe(0);
    // Jobs were being created while the backup ran.
    expect(after).toBeGreaterThan(before);
    archive = backup.stdout.trim();
    expect(archive).toMatch(new RegExp(`^${src.dir}/backups/dispatcher-backup-\\d{8}T\\d{9}Z\\.dbk$`));
    expect(backup.stderr).toMatch(/provisioning\.jobs: [\d,]+ rows/);
    expect(backup.stderr).toMatch(/backup written: .* \(\d+\.\d MB, [\d,]+ rows, sha256 [0-9a-f]{64}\)/);
    expect(readFileSync(`${archive}.sha256`, "utf8")).toMatch(/^[0-9a-f]{64} {2}dispatcher-backup-.*\.dbk\n$/);
    // The archive holds no secret in clear: the backup key, the master key, the API key.
    const bytes = readFileSync(archive);
    for (const secret of [BACKUP_KEY.slice(2), MASTER_KEYS.slice(2), token]) expect(bytes.includes(Buffer.from(secret))).toBe(false);

    const restore = await runDispatcher(["restore", archive], dst.with(privateUrls("dispatcher")), 180_000);
    expect(restore.code, `${restore.stdout}\n${restore.stderr}`).toBe(0);
    expect(restore.stderr).toMatch(/verifying the archive: 100%/);
    expect(restore.stderr).toMatch(/provisioning: checked \d+ tables, \d+ rows: equal to the archive/);
    expect(restore.stderr).toMatch(/credentials: checked \d+ tables, \d+ rows: equal to the archive/);
    expect(restore.stdout).toMatch(/^provisioning\t\d+ tables\t\d+ rows\ncredentials\t\d+ tables\t\d+ rows\n$/);

    // Row for row, as the snapshot saw them: users, API keys, accounts.
    const from = db(src.urls.provisioning);
    const to = db(mariadb.url("dispatcher_prov"));
    for (const q of ["SELECT id, email, name, kind, status, version, created_at FROM users ORDER BY id", "SELECT id, user_id, prefix, secret_hash FROM api_keys ORDER BY id", "SELECT id, name, cloud_id, credential_id FROM accounts ORDER BY id"]) {
      expect(await to.$queryRawUnsafe(q), q).toEqual(await from.$queryRawUnsafe(q));
    }
    // A consistent snapshot of the jobs: between what existed when the backup started and what existed when it ended,
    // each job exactly as the source has it, each with its first event and each outbox entry with its job (each written
    // in one transaction; an outbox entry leaves once published, so a job may have none).
    const restored = await to.$queryRaw<{ id: string; kind: string; idempotency_key: string; payload: unknown }[]>`SELECT id, kind, idempotency_key, payload FROM jobs WHERE kind = 'diagnostic' ORDER BY id`;
    expect(restored.length).toBeGreaterThanOrEqual(before);
    expect(restored.length).toBeLessThanOrEqual(after + 8);
    const source = await from.$queryRaw<{ id: string; kind: string; idempotency_key: string; payload: unknown }[]>`SELECT id, kind, idempotency_key, payload FROM jobs WHERE kind = 'diagnostic' ORDER BY id`;
    const byId = new Map(source.map((j) => [j.id, j]));
    for (const j of restored) expect(byId.get(j.id)).toEqual(j);
    expect(source.length).toBeGreaterThan(restored.length);
    const [orphans] = await to.$queryRaw<{ noEvent: bigint; noJob: bigint }[]>`
      SELECT (SELECT COUNT(*) FROM jobs j WHERE NOT EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = j.id AND e.type = 'created')) AS noEvent,
             (SELECT COUNT(*) FROM outbox_entries o WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = o.job_id)) AS noJob`;
    expect(orphans).toEqual({ noEvent: 0n, noJob: 0n });

    // A dispatcher on the restored server: the same API key works, and it lists the same users and accounts.
    const dstEnv = dst.with(privateUrls("dispatcher"));
    const p = await startDispatcher(dst, ["start"], { env: dstEnv, timeoutMs: 90_000 });
    expect(bootstrapToken(p), "no new admin key: the restored users are there").toBeUndefined();
    const r = client(dst.address);
    const users = async (x: DispatcherClients) => (await x.users.listUsers({ pageSize: 100 })).users.map((u) => [u.id, u.email, u.name]).sort();
    expect(await users(r)).toEqual(await users(c));
    const accounts = async (x: DispatcherClients) => (await x.accounts.listAccounts({ pageSize: 100 })).accounts.map((a) => [a.id, a.name]).sort();
    expect(await accounts(r)).toEqual(await accounts(c));

    // KM on the restored server decrypts the local account's credential to what the source's KM holds.
    const [local] = await to.$queryRaw<{ id: string; credentialId: string }[]>`SELECT id, credential_id AS credentialId FROM accounts WHERE name = 'local'`;
    const fields = async (env: NodeJS.ProcessEnv) => {
      const km = createKmClientFromConfig(loadConfig(env, ""), "worker");
      try {
        return await km.useCredential({ id: local?.credentialId ?? "", accountId: local?.id ?? "", purpose: "restore test" }, async (f) => ({ ...f }));
      } finally {
        km.close();
      }
    };
    const restoredFields = await fields(dstEnv);
    expect(restoredFields.key?.length).toBeGreaterThan(20);
    expect(restoredFields).toEqual(await fields(src.env));

    // Every restored job ends, and each that succeeded took effect once: the ones done before the snapshot kept
    // their effect row, the others ran here.
    await poll(async () => {
      const [n] = await to.$queryRaw<{ open: bigint }[]>`SELECT COUNT(*) AS open FROM jobs WHERE state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')`;
      return n?.open === 0n;
    }, 90_000, "every restored job to end");
    const [effects] = await to.$queryRaw<{ succeeded: bigint; once: bigint; twice: bigint }[]>`
      SELECT (SELECT COUNT(*) FROM jobs WHERE kind = 'diagnostic' AND state = 'SUCCEEDED') AS succeeded,
             (SELECT COUNT(DISTINCT job_id) FROM diagnostic_effects) AS once,
             (SELECT COUNT(*) FROM (SELECT job_id FROM diagnostic_effects GROUP BY job_id HAVING COUNT(*) > 1) x) AS twice`;
    expect(effects).toEqual({ succeeded: BigInt(restored.length), once: BigInt(restored.length), twice: 0n });
    console.info(`backup/restore: ${before} jobs before the backup, ${after} after, ${restored.length} in the archive (${(bytes.length / 1024).toFixed(0)} KB)`);
  }, 400_000);

  it("a tampered archive is refused before anything is written; a non-empty target is refused", async () => {
    expect(archive, "the first test made the archive").not.toBe("");
    const tampered = join(dst.dir, "tampered.dbk");
    copyFileSync(archive, tampered);
    const bytes = readFileSync(tampered);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = (bytes[middle] ?? 0) ^ 0x20;
    writeFileSync(tampered, bytes);
    const r = await runDispatcher(["restore", tampered], dst.with(privateUrls("tampered")), 60_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dispatcher: .*tampered\.dbk is damaged or was altered: chunk \d+ \(at byte \d+\) failed authentication$/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await mariadb.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'tampered%'")).toEqual([]);

    const again = await runDispatcher(["restore", archive], dst.with(privateUrls("dispatcher")), 60_000);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/restore refused: the target databases are not empty: provisioning \(dispatcher_prov at 127\.0\.0\.1:\d+, \d+ tables\)/);
  }, 120_000);
});
