// Test support for KM: a real KM (mutual TLS, real MariaDB database of this run, audit file, request log) in the test
// process on an ephemeral port, clients for the development identities, and a raw view of the credentials table.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type Config } from "../../src/config.js";
import { openConnection } from "../../src/db/connect.js";
import type { RequestLogEntry } from "../../src/log.js";
import { createKmClient, type KmClient } from "../../src/km/client.js";
import { ensureDevCerts } from "../../src/km/dev-files.js";
import type { EncryptionLimits } from "../../src/km/key-versions.js";
import { startKm, type RunningKm } from "../../src/km/server.js";
import { kmClientSettings } from "../../src/km/settings.js";
import { captureLogger, type LogLine } from "../mq/support.js";
import { dropDatabases, newTestDatabaseName, testDatabaseUrl } from "../support/db.js";

export interface TestKm {
  config: Config;
  dir: string;
  dbUrl: string;
  km: RunningKm;
  address: string;
  logLines: LogLine[];
  requests: RequestLogEntry[];
  /** A client presenting the development certificate of `identity` (dispatcher, worker, admin). */
  client(identity: string): KmClient;
  /** Stops KM (the database and directory stay). */
  stop(): Promise<void>;
  /** Starts KM again on the same database and directory with other settings (e.g. other master keys). */
  restart(change?: Partial<Config["encryption"]> & { limits?: EncryptionLimits; auditFile?: string }): Promise<void>;
  /** Stops KM, closes the clients, drops the database, removes the directory. */
  cleanup(): Promise<void>;
}

export interface TestKmOptions {
  label: string;
  masterKeys: string;
  limits?: EncryptionLimits;
  auditFile?: string;
}

export async function startTestKm(options: TestKmOptions): Promise<TestKm> {
  const dir = mkdtempSync(join(tmpdir(), `km-${options.label}-`));
  ensureDevCerts(dir);
  const dbUrl = testDatabaseUrl(newTestDatabaseName(options.label, "cred"));
  const base = loadConfig({ DISPATCHER_DATA_DIR: dir, DISPATCHER_KM_DATABASE_URL: dbUrl, DISPATCHER_ENCRYPTION_MASTER_KEYS: options.masterKeys, DISPATCHER_KM_BIND: "127.0.0.1" }, "");
  const config: Config = { ...base, km: { ...base.km, port: 0, ...(options.auditFile ? { auditFile: options.auditFile } : {}) }, server: { ...base.server, shutdownGraceMs: 2_000 } };
  const { log, lines: logLines } = captureLogger("debug");
  const requests: RequestLogEntry[] = [];
  const clients: KmClient[] = [];
  let limits = options.limits;
  let km: RunningKm | undefined;
  const t: TestKm = {
    config,
    dir,
    dbUrl,
    get km() {
      if (!km) throw new Error("KM is stopped");
      return km;
    },
    get address() {
      return `127.0.0.1:${t.km.port}`;
    },
    logLines,
    requests,
    client(identity) {
      const s = kmClientSettings(config, identity);
      const c = createKmClient({ address: t.address, channelKeys: s.channelKeys, transport: s.transport, defaultDeadlineMs: 10_000 });
      clients.push(c);
      return c;
    },
    async stop() {
      await km?.stop(2_000);
      km = undefined;
    },
    async restart(change = {}) {
      // Same port, so the clients made earlier reconnect to the new instance.
      if (km) config.km.port = km.port;
      await t.stop();
      const { limits: l, auditFile, ...encryption } = change;
      if (l) limits = l;
      Object.assign(config.encryption, encryption);
      if (auditFile) config.km.auditFile = auditFile;
      km = await startKm({ config, log, requestLog: { write: (e) => void requests.push(e) }, ...(limits ? { limits } : {}) });
    },
    async cleanup() {
      for (const c of clients) c.close();
      await t.stop().catch(() => undefined);
      await dropDatabases([dbUrl]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  km = await startKm({ config, log, requestLog: { write: (e) => void requests.push(e) }, ...(limits ? { limits } : {}) });
  return t;
}

/** Runs SQL against the credentials database of `url` (tampering, dumps). */
export async function sql<T = Record<string, unknown>>(url: string, query: string, params: unknown[] = []): Promise<T[]> {
  const conn = await openConnection(url);
  try {
    return (await conn.query(query, params)) as T[];
  } finally {
    await conn.end();
  }
}

/** Every row of every table of the database at `url`, as text: binary columns as hex and as UTF-8 (and latin1). */
export async function dumpDatabase(url: string): Promise<string> {
  const conn = await openConnection(url);
  try {
    const tables = (await conn.query("SHOW TABLES")) as Record<string, string>[];
    const out: string[] = [];
    for (const t of tables) {
      const name = Object.values(t)[0] as string;
      const rows = (await conn.query(`SELECT * FROM \`${name}\``)) as Record<string, unknown>[];
      for (const row of rows) {
        for (const [col, value] of Object.entries(row)) {
          const text = Buffer.isBuffer(value) ? `${value.toString("hex")} ${value.toString("utf8")} ${value.toString("latin1")}` : typeof value === "object" && value !== null && !(value instanceof Date) ? JSON.stringify(value) : String(value);
          out.push(`${name}.${col}=${text}`);
        }
      }
    }
    return out.join("\n");
  } finally {
    await conn.end();
  }
}
