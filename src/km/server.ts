// Runs KM: migrates its credentials database, reconciles the master key versions, and serves km.v1 over mutual TLS
// (or, in development mode when asked explicitly, plaintext) with health, the request log and the audit trail (and its
// retention).
import type { Config } from "../config.js";
import { DATABASES } from "../db/databases.js";
import { migrate } from "../db/migrate.js";
import type { Principal } from "../iam/principal.js";
import type { Logger, RequestLogEntry } from "../log.js";
import { createRpcServer } from "../rpc/server.js";
import { createAuditLog, type AuditLog } from "./audit.js";
import { startAuditRetention } from "./audit-retention.js";
import { kmHandlers } from "./handlers.js";
import { principalFromCertificate, verifyPlaintextIdentityToken } from "./identity.js";
import { syncKeyVersions, type EncryptionLimits } from "./key-versions.js";
import { createCredentialsPool, type CredentialsPool } from "./repository.js";
import type { KmService } from "./model.js";
import { createKmService } from "./service.js";
import { kmServerSettings, type KmServerSettings } from "./settings.js";

export interface StartKmOptions {
  config: Config;
  log: Logger;
  requestLog?: { write(entry: RequestLogEntry): void } | undefined;
  now?: () => Date;
  /** Resolved settings (default: from `config`; throws ConfigError when they are not usable). */
  settings?: KmServerSettings;
  limits?: EncryptionLimits;
}

export interface RunningKm {
  /** The bound port. */
  port: number;
  service: KmService;
  audit: AuditLog;
  /** The credentials database. */
  pool: CredentialsPool;
  /** Graceful stop: in-flight calls finish (up to graceMs), the audit trail is flushed, the database closed. */
  stop(graceMs?: number): Promise<void>;
}

const KM_METHODS = "/km.v1.KeyManagementService/";

export async function startKm(options: StartKmOptions): Promise<RunningKm> {
  const { config } = options;
  const log = options.log.child({ component: "km" });
  const now = options.now ?? (() => new Date());
  const settings = options.settings ?? kmServerSettings(config);
  for (const warning of settings.warnings) log.warn(warning);

  const credentials = DATABASES.find((d) => d.name === "credentials");
  if (!credentials) throw new Error("the credentials database is missing from src/db/databases.ts");
  await migrate(config.km.databaseUrl, credentials.migrationsDir, { log: { info: (m) => log.info(m), warn: (m) => log.warn(m) } });

  const pool = createCredentialsPool(config.km.databaseUrl, config.km.poolSize);
  try {
    const sync = await syncKeyVersions(pool, settings.masterKeys, now());
    for (const m of sync.missing) {
      if (m.records > 0) log.error({ version: m.version, records: m.records }, "master key version is not configured but records still use it: they cannot be decrypted until it is configured again");
      else log.info({ version: m.version }, "master key version retired: no record uses it");
    }
    const audit = createAuditLog({ pool, file: settings.auditFile });
    const service = createKmService({ pool, masterKeys: settings.masterKeys, channelKeys: settings.channelKeys, audit, log, now, ...(options.limits ? { limits: options.limits } : {}) });
    const principalOf = (identity: string | null): Principal | null => (identity ? (settings.principals.get(identity) ?? null) : null);
    const server = createRpcServer({
      config: { mode: config.mode, server: { ...config.server, bind: config.km.bind, port: config.km.port, reflection: false } },
      log,
      requestLog: auditingRequestLog(options.requestLog, audit, log),
      // Under TLS only the certificate names the caller; in plaintext development mode, a token keyed by the channel key.
      authenticate: async (token) => (settings.transport.kind === "plaintext" ? principalOf(verifyPlaintextIdentityToken(settings.channelKeys, token)) : null),
      ...(settings.transport.kind === "tls" ? { credentials: settings.transport.credentials, authenticatePeer: async (auth) => principalFromCertificate(auth.sslPeerCertificate, settings.principals) } : {}),
      services: [kmHandlers(service)],
    });
    // Records that no configured key decrypts (a development key deleted, a retired version still in use): KM answers,
    // refusing those credentials, but must not look healthy to a probe or a rollout.
    const undecryptable = sync.missing.filter((m) => m.records > 0);
    if (undecryptable.length > 0) {
      const records = undecryptable.reduce((n, m) => n + m.records, 0);
      server.setNotServing(
        `${records} stored credential(s) use master key version(s) ${undecryptable.map((m) => m.version).join(", ")}, which encryption.masterKeys does not hold: configure the key(s) that wrote them and restart KM (on a development install whose credentials can go: \`dispatcher reset\`)`,
      );
    }
    const port = await server.start();
    const retention = startAuditRetention({ pool, audit, log, retentionDays: config.km.auditRetentionDays, share: config.km.auditRetentionShare, now });
    log.info({ port, transport: settings.transport.kind, keyVersions: settings.masterKeys.versions, currentKeyVersion: sync.current, audit: settings.auditFile }, "KM serving");
    return {
      port,
      service,
      audit,
      pool,
      async stop(graceMs) {
        await Promise.all([retention.stop(graceMs), server.stop(graceMs)]);
        await audit.close();
        await pool.end().catch(() => undefined);
      },
    };
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
}

/** The request log, plus an audit record for every call refused before it reached the KM service. */
function auditingRequestLog(requestLog: StartKmOptions["requestLog"], audit: AuditLog, log: Logger): { write(entry: RequestLogEntry): void } {
  return {
    write(entry) {
      requestLog?.write(entry);
      if (entry.method.startsWith(KM_METHODS) && (entry.code === "UNAUTHENTICATED" || entry.code === "PERMISSION_DENIED")) {
        audit
          .record({ time: entry.time, action: "denied", principal: entry.principal, traceId: entry.traceId || undefined, result: entry.code, detail: `${entry.method.slice(KM_METHODS.length)} from ${entry.peer}` })
          .catch((err: unknown) => log.error({ err }, "audit record of a refused call could not be written"));
      }
    },
  };
}
