// The service's configuration: one typed object, read once from an optional JSON file and the environment.
// This module is the only reader of process.env in the project.
import { readFileSync, statSync } from "node:fs";
import { z } from "zod";
import { ConfigError } from "./config-error.js";

// Messages say what a good value looks like: zod's defaults ("expected number, received NaN") do not.
const wholeNumber = (min: number, max: number | undefined, what: string) =>
  z.coerce.number({ error: what }).int(what).min(min, what).max(max ?? Number.MAX_SAFE_INTEGER, what);
const port = wholeNumber(1, 65535, "expected a port number from 1 to 65535");
const millis = wholeNumber(0, undefined, "expected a whole number of milliseconds, 0 or more");
const positiveInt = wholeNumber(1, undefined, "expected a whole number, 1 or more");
const nonNegativeInt = wholeNumber(0, undefined, "expected a whole number, 0 or more");
const bool = z.union([z.boolean(), z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1")]);
const list = z.union([z.array(z.string()), z.string().transform((v) => v.split(",").map((s) => s.trim()).filter(Boolean))]);
/** "<Service>/<Method>=<bytes>" pairs, comma separated (or an object in the file): per-method request limits. */
const methodSizes = z.union([
  z.record(z.string().regex(/^\/?[A-Za-z0-9_.]+\/[A-Za-z0-9_]+$/, "expected <Service>/<Method> or /<package>.<Service>/<Method>"), positiveInt),
  list.pipe(z.array(z.string().regex(/^\/?[A-Za-z0-9_.]+\/[A-Za-z0-9_]+=\d+$/, "expected <Service>/<Method>=<bytes>, comma separated"))).transform((pairs) => Object.fromEntries(pairs.map((p) => [p.slice(0, p.lastIndexOf("=")), Number(p.slice(p.lastIndexOf("=") + 1))]))),
]);
/** An audit table's retention: 0 (keep every row) or 7 days and more, as the tables' triggers allow. */
const auditRetentionDays = z.coerce
  .number({ error: "expected 0 or a whole number of days from 7 on" })
  .int("expected 0 or a whole number of days from 7 on")
  .refine((n) => n === 0 || n >= 7, "expected 0 or a whole number of days from 7 on (the table refuses to delete younger records)");
const mysqlUrl = z.string().regex(/^(mysql|mariadb):\/\/[^/]+\/[A-Za-z0-9_]+(\?.*)?$/, "expected mysql://user:password@host:port/database");

/** One configurable field: where it lives in the config object, its environment variable, default and meaning. */
interface Field {
  path: string;
  env: string;
  schema: z.ZodType;
  default?: unknown;
  doc: string;
  secret?: boolean;
  /** A standard variable read when `env` is unset, e.g. OTEL_EXPORTER_OTLP_ENDPOINT. */
  fallbackEnv?: string;
}

const f = (path: string, schema: z.ZodType, dflt: unknown, doc: string, secret = false): Field => ({
  path,
  env: `DISPATCHER_${path.replace(/([a-z])([A-Z])/g, "$1_$2").replace(/\./g, "_").toUpperCase()}`,
  schema,
  default: dflt,
  doc,
  secret,
});

/** Every field of the configuration; the README's configuration reference lists the same. */
export const FIELDS: readonly Field[] = [
  f("mode", z.enum(["development", "production"]), "development", "development binds loopback addresses by default, enables reflection (authenticated) and allows plaintext KM; production binds every address by default and refuses unsafe settings"),
  f("dataDir", z.string().min(1), "./var", "directory for local state: logs, local cloud servers, development certificates"),
  f("server.bind", z.string().min(1), undefined, "address the dispatcher's gRPC server binds (default: 127.0.0.1 in development mode, 0.0.0.0 in production, so that a development install is not reachable from the network)"),
  f("server.port", port, 3302, "dispatcher gRPC port"),
  f("server.maxMessageBytes", positiveInt, 4 * 1024 * 1024, "largest gRPC message accepted or sent"),
  f("server.keepaliveTimeMs", millis, 60_000, "interval between server keepalive pings"),
  f("server.keepaliveTimeoutMs", millis, 20_000, "how long a keepalive ping may go unanswered before the connection closes"),
  f("server.shutdownGraceMs", millis, 15_000, "on SIGTERM, how long in-flight calls may run before they are cancelled"),
  f("server.reflection", bool, undefined, "serve gRPC reflection (default: on in development, off in production); every reflection stream authenticates with an API key holding system.read, in either mode"),
  f("server.defaultDeadlineMs", millis, 30_000, "deadline applied to calls that arrive without one"),
  f("server.rateLimitPerSecond", nonNegativeInt, 2_000, "calls per second each user, API key holder or agent may sustain on this server (a token bucket per principal; services are not limited); more is RESOURCE_EXHAUSTED with RetryInfo. 0: no rate limit"),
  f("server.rateLimitBurst", positiveInt, 4_000, "calls a principal may make at once after being idle (the token bucket's size)"),
  f("server.rateLimitHoldMs", millis, 1_000, "longest a refusal for going over the rate is held (a timer) before it is answered, never past the call's deadline; its RetryInfo names what is left of the wait. A caller that ignores RetryInfo can then make at most its calls in flight per hold. 0: answered at once"),
  f("server.rateLimitMaxHeld", nonNegativeInt, 256, "rate refusals held at once per principal; more are answered at once"),
  f("server.maxConcurrentCallsPerPrincipal", nonNegativeInt, 256, "unary calls one principal may have in flight at once; more is RESOURCE_EXHAUSTED with RetryInfo. 0: no cap"),
  f("server.maxOpenStreamsPerPrincipal", nonNegativeInt, 64, "server streams (WatchJob) one principal may have open at once; more is RESOURCE_EXHAUSTED with RetryInfo. 0: no cap"),
  f("server.maxRequestBytes", positiveInt, 256 * 1024, "largest request message of a method without a limit of its own (src/rpc/request-limits.ts: RunServerScript 2 MiB, CreateAccount and StoreCredential 1 MiB); more is RESOURCE_EXHAUSTED (REQUEST_TOO_LARGE) before authentication and decoding. No limit exceeds server.maxMessageBytes"),
  f("server.maxRequestBytesByMethod", methodSizes, {}, "per-method request limits overriding the built-in ones: <Service>/<Method>=<bytes>, comma separated (e.g. ServerAgentService/RunServerScript=4194304)"),
  f("server.maxMetadataBytes", positiveInt, 16 * 1024, "largest request metadata (all header names and values, in bytes) a call may carry; more is RESOURCE_EXHAUSTED before authentication. A single header over 64 KiB never gets that far: the HTTP/2 layer closes the connection"),
  f("bridge.bind", z.string().min(1), undefined, "address the gRPC-Web bridge binds (default: 127.0.0.1 in development mode, 0.0.0.0 in production)"),
  f("bridge.port", port, 3303, "gRPC-Web bridge port (HTTP/1.1)"),
  f("bridge.corsOrigins", list, [], "origins allowed to call the bridge from a browser (comma separated)"),
  f("bridge.maxRequestBytes", positiveInt, 4 * 1024 * 1024, "largest gRPC-Web request body accepted"),
  f("console.enabled", bool, true, "serve the operations console (role dispatcher) on console.bind:console.port; its page calls the API through the gRPC-Web bridge"),
  f("console.bind", z.string().min(1), undefined, "address the console's web server binds (default: 127.0.0.1 in development mode, 0.0.0.0 in production)"),
  f("console.port", port, 3304, "operations console port (HTTP)"),
  f("console.dir", z.string(), "", "directory of the built console (default: console/dist of the installation, made by `npm run build:console`)"),
  f("console.origins", list, [], "origins browsers reach the console at through a proxy or another name, e.g. https://ops.example.com (comma separated); added to bridge.corsOrigins. The console on this host's console.port is allowed without it"),
  f("console.bridgeUrl", z.string().regex(/^(https?:\/\/[^/]+\/?)?$/, "expected http(s)://host:port"), "", "gRPC-Web bridge URL the console's page calls (default: the host the page came from, on bridge.port)"),
  f("provisioning.url", mysqlUrl, "mysql://root@127.0.0.1:3306/dispatcher_provisioning", "provisioning database (clouds, accounts, users, jobs)", true),
  f("provisioning.poolSize", positiveInt, 10, "provisioning database connections per process"),
  f("provisioning.sqlPoolSize", positiveInt, 16, "provisioning database connections per process for the job paths (mariadb driver pool beside Prisma's); a process running the worker role opens at least jobs.workerConcurrency + 4"),
  f("provisioning.wsrepSyncWait", wholeNumber(0, 15, "expected a whole number from 0 to 15 (Galera's wsrep_sync_wait bit mask)"), 0, "on a MariaDB Galera cluster, the wsrep_sync_wait of every provisioning session: 3 (reads, updates and deletes wait until the node has applied what other nodes committed before them), so a worker on one node sees the job a dispatcher on another has just created; 0 leaves the server's setting. See docs/reliability.md"),
  f("provisioning.allowInsecureEndpoints", bool, false, "accept http:// cloud endpoints (only https:// otherwise)"),
  f("provisioning.allowLinkLocalEndpoints", bool, false, "accept cloud endpoints on link-local or cloud metadata addresses (169.254.0.0/16, fe80::/10, metadata.google.internal); SSRF guard"),
  f(
    "provisioning.auditRetentionDays",
    auditRetentionDays,
    365,
    "the monitor deletes rows of the audit trail (audit_events: who changed what) older than this many days, in batches, each batch recorded in the trail; 0 keeps every row, and the table's trigger refuses to delete a row younger than 7 days",
  ),
  f("provisioning.accountEventRetentionDays", wholeNumber(0, undefined, "expected a whole number of days, 0 or more"), 90, "account events (what discovery found changed or failed) older than this many days are deleted by the monitor; 0 keeps them all"),
  f("analytics.url", mysqlUrl, "mysql://root@127.0.0.1:3306/dispatcher_analytics", "analytics database (metrics, costs)", true),
  f("analytics.poolSize", positiveInt, 4, "analytics database connections per process"),
  f("analytics.rawRetentionMs", positiveInt, 7 * 86_400_000, "how long raw metric samples are kept (hourly roll-ups for analytics.hourlyRetentionDays, daily ones as long as their server: inventory.retentionDays)"),
  f("analytics.hourlyRetentionDays", wholeNumber(0, undefined, "expected a whole number of days, 0 or more"), 90, "hourly metric roll-ups and each server's hourly cost rows older than this many days are deleted by the monitor once summed into days (daily roll-ups and daily costs are kept): usage reports before then start and end on whole UTC days; 0 keeps them all"),
  f("analytics.retentionShare", z.coerce.number().gt(0).max(1), 0.1, "share of the time the retention's deletes (raw samples, expired hourly detail) may take while they work through a backlog: after a full pass the monitor rests (1 / share - 1) times as long as the pass took, so that the deletes leave the database room for other work; 1 goes on at once"),
  f("analytics.rollupIntervalMs", positiveInt, 300_000, "how often the monitor rolls raw samples up into hourly and daily aggregates (the current and previous hour again each time), and how often it deletes what is past its retention"),
  f("analytics.accrualIntervalMs", positiveInt, 60_000, "how often the monitor accrues running servers' cost and updates budget codes' usage"),
  f("analytics.retentionBatchSize", positiveInt, 10_000, "rows deleted per statement when pruning raw samples and expired hourly detail"),
  f("km.url", z.string().min(1), "127.0.0.1:2013", "address of the KM service, as its clients (dispatcher, workers) call it"),
  f("km.bind", z.string().min(1), undefined, "address the KM role binds (default: 127.0.0.1 in development mode, 0.0.0.0 in production)"),
  f("km.port", port, 2013, "port the KM role listens on"),
  f("km.databaseUrl", mysqlUrl, "mysql://root@127.0.0.1:3306/dispatcher_credentials", "credentials database, read and migrated by KM alone", true),
  f("km.poolSize", positiveInt, 16, "credentials database connections per KM process (GetCredential reads and audit writes are batched; a batch holds one)"),
  f("km.tlsCa", z.string(), "", "PEM file of the CA that signs the KM server certificate and its clients' certificates (development: <dataDir>/tls/ca.pem)"),
  f("km.tlsCert", z.string(), "", "PEM client certificate this process presents to KM; its CN names the caller (development: <dataDir>/tls/<dispatcher|worker>.pem)"),
  f("km.tlsKey", z.string(), "", "PEM private key of km.tlsCert"),
  f("km.serverCert", z.string(), "", "PEM server certificate of the KM role (development: <dataDir>/tls/km-server.pem)"),
  f("km.serverKey", z.string(), "", "PEM private key of km.serverCert"),
  f("km.serverName", z.string(), "", "name clients expect in KM's certificate when it differs from the host of km.url"),
  f("km.clientPrincipals", list, ["dispatcher=service:operator", "worker=service:worker", "admin=user:admin"], "client certificate CN → principal, as <cn>=<service|user>:<role> (comma separated); other certificates are refused"),
  f("km.plaintext", bool, false, "serve and call KM without TLS (development mode only; refused in production)"),
  f("km.auditFile", z.string(), "", "append-only JSON-lines audit file of KM (default: <dataDir>/km/audit.jsonl)"),
  f(
    "km.auditRetentionDays",
    auditRetentionDays,
    365,
    "KM deletes audit_events rows older than this many days, in batches, each batch recorded in the audit trail (the audit file keeps every record: rotate and ship it); 0 keeps every row, and the table's trigger refuses to delete a row younger than 7 days",
  ),
  f("km.auditRetentionShare", z.coerce.number().gt(0).max(1), 0.1, "share of the time KM's audit retention may take while it works through a backlog: after a full batch it rests (1 / share - 1) times as long as the batch took; 1 goes on at once"),
  f("mq.url", z.string().regex(/^(nats|tls):\/\/.+/, "expected nats://host:port"), "nats://127.0.0.1:4222", "NATS server with JetStream"),
  f("mq.jobsStream", z.string().regex(/^[A-Za-z0-9_-]+$/, "letters, digits, _ and - only"), "JOBS", "JetStream stream that carries jobs"),
  f("mq.jobsStreamReplicas", wholeNumber(1, 5, "expected a whole number of copies from 1 to 5"), 1, "copies of the jobs stream and its consumer in a JetStream cluster: 3 in production (a 3-node cluster then loses any one node with nothing lost and work going on); 1 on a single server. Every role brings an existing stream to this at start, logging the change; more than the cluster's JetStream servers is refused"),
  f("mq.subjectPrefix", z.string().regex(/^[A-Za-z0-9_-]+$/, "letters, digits, _ and - only"), "jobs", "jobs are published on <prefix>.<kind>"),
  f("mq.connectTimeoutMs", millis, 5_000, "how long to wait for NATS at start"),
  f("mq.maxAckPending", positiveInt, 10_000, "deliveries of the jobs consumer unacknowledged at once across all workers (running, buffered, and waiting out a retry's backoff); above it JetStream pauses delivery"),
  f("mq.workerDurable", z.string().regex(/^[A-Za-z0-9_-]+$/, "letters, digits, _ and - only"), "workers", "durable JetStream consumer the workers share"),
  f("runtime.heapGrowingPercent", wholeNumber(0, 400, "expected a whole number of percent from 0 to 400"), 100, "in each process running roles, how far the JavaScript heap's old generation may grow past what survived a full collection before the next one (100: to twice the live heap). 0 leaves it to V8, which in a long-running service keeps it about a tenth above the live heap, so that the little each call leaves behind brings a full collection every few seconds — tens of milliseconds of both cores each time on a small machine (docs/operations.md, \"Memory\")"),
  f("startup.waitForStoresMs", millis, 0, "how long a starting process waits for MariaDB, NATS and JetStream while they cannot be reached or are not ready, logging each try with backoff (0: until they come, as a replica under an orchestrator should); past it the process exits 2 saying what to start"),
  f("jobs.workerConcurrency", positiveInt, 32, "jobs one worker process runs at once"),
  f("jobs.reconcileIntervalMs", positiveInt, 5_000, "how often queued jobs and expired leases are re-examined"),
  f("jobs.leaseMs", positiveInt, 10_000, "how long a worker's claim on a running job lasts without renewal; renewed every third of it while the handler runs, and a killed or paused worker's jobs are taken over about this long after its last renewal"),
  f("jobs.claimAfterMs", millis, 1_000, "a worker with free slots that has received no delivery for this long claims due queued jobs straight from the database (one indexed query per this interval while idle), so that work goes on while JetStream elects a leader or a relay is stalled; the compare-and-set start decides between a claim and a delivery. 0: never claim"),
  f("jobs.republishAfterMs", positiveInt, 30_000, "a job still queued this long after its last publish is published again"),
  f("jobs.checkPollMs", positiveInt, 200, "how often the monitor looks for due completion checks"),
  f("jobs.retentionDays", wholeNumber(0, undefined, "expected a whole number of days, 0 or more"), 30, "finished jobs (with their events, dead letters and effect rows) older than this many days are purged by the monitor; 0 keeps them all"),
  f("jobs.purgeBatch", positiveInt, 200, "jobs the monitor purges per transaction: smaller transactions keep the commits that job creation waits behind short"),
  f("jobs.purgeIntervalMs", positiveInt, 60_000, "how often the monitor looks for jobs past retention (again after a rest when a batch was full)"),
  f("jobs.purgeShare", z.coerce.number().gt(0).max(1), 0.1, "share of the time a backlog's purge may work: after a full batch the monitor rests (1 / share - 1) times as long as the batch took, so that the purge leaves room for job creation; 1 goes on at once"),
  f("inventory.retentionDays", wholeNumber(0, undefined, "expected a whole number of days, 0 or more"), 90, "servers TERMINATED and resources DELETED longer ago than this many days are deleted by the monitor with their event histories (and a server's agent and metrics), once cost accrual has passed the hour they ended in; their costs stay in usage reports. 0 keeps them all"),
  f("discovery.intervalMs", positiveInt, 4 * 3_600_000, "how often the monitor re-discovers each account's regions, subscriptions, products and images"),
  f("discovery.serverSyncIntervalMs", positiveInt, 60_000, "how often the monitor lists each active account's servers from its cloud"),
  f("discovery.pollMs", positiveInt, 2_000, "how often the monitor looks for accounts due for discovery or a server sync"),
  f("localCloud.enabled", bool, true, "the embedded `local` cloud (servers are processes on this machine): registers its driver, and the dispatcher connects a cloud and account named `local` at start"),
  f("localCloud.catalogFile", z.string(), "", "JSON file of the local cloud's regions, products and images (see docs/clouds.md), re-read when it changes; empty: the built-in catalog"),
  f("localCloud.stopGraceMs", millis, 10_000, "how long a stopping local server may take after SIGTERM before it is killed"),
  f("agent.bridgeUrl", z.string().regex(/^(https?:\/\/.+)?$/, "expected http(s)://host:port"), "", "gRPC-Web bridge URL agents register through: handed to launched servers, and called by `dispatcher agent` (default http://127.0.0.1:<bridge.port>)"),
  f("agent.joinToken", z.string(), "", "`dispatcher agent`: the one-time join token its server was launched with", true),
  f("agent.traceparent", z.string().regex(/^([0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})?$/, "expected a W3C traceparent"), "", "`dispatcher agent`: W3C traceparent of the launch that started its server, so the registration joins the launch's trace"),
  f("agent.bind", z.string().min(1), "0.0.0.0", "`dispatcher agent`: address the agent's gRPC server binds"),
  f("agent.port", port, 2003, "`dispatcher agent`: port the agent serves agent.v1 on"),
  f("agent.address", z.string(), "", "`dispatcher agent`: address the dispatcher should call the agent at (default: the server's address)"),
  f("agent.stateDir", z.string(), "", "`dispatcher agent`: directory where the agent keeps its id and credential (file mode 0600) so a restart needs no new join token; empty: memory only"),
  f("agent.joinTokenTtlMs", positiveInt, 15 * 60_000, "how long a server's join token stays valid after its launch attempt"),
  f("agent.pingIntervalMs", positiveInt, 30_000, "how often the monitor pings each registered agent"),
  f("agent.maxMissedPings", positiveInt, 3, "missed pings in a row after which an agent is marked UNREACHABLE"),
  f("agent.credentialKey", z.string(), "", "the agent key: base64 of 32 bytes, the same in every dispatcher, worker and monitor; it unlocks agent.caKey (its passphrase) and, on a plaintext agent channel, derives agent credentials (HMAC-SHA256); development: generated under <dataDir>/agent when unset; production refuses to start without it", true),
  f("agent.caCert", z.string(), "", "PEM file of the agent CA's certificates, current first (older ones stay trusted while a rotation completes; see docs/agents.md); development: generated under <dataDir>/agent/ca.pem when unset with agent.caKey"),
  f("agent.caKey", z.string(), "", "PEM file of the current agent CA's private key, encrypted PKCS#8 whose passphrase is agent.credentialKey; production refuses to start without it"),
  f("agent.certificateTtlMs", positiveInt, 24 * 3_600_000, "lifetime of an agent's certificate; agents renew when two thirds of it have passed"),
  f("agent.channelIdleMs", positiveInt, 60_000, "a worker (agent.run_script) and the monitor (pings) keep their gRPC channel to an agent between calls and close it after this long unused (keep it above agent.pingIntervalMs)"),
  f("agent.maxChannels", positiveInt, 1_000, "channels to agents a worker, and the monitor, each keep at most; beyond it the least recently used idle one is closed (about 60 KB each)"),
  f("agent.plaintext", bool, false, "call agents over plaintext HTTP/2 with a bearer credential instead of mutual TLS (development mode only, with a warning; refused in production); a guest's `dispatcher agent` must be set the same"),
  f("faults.crashAfterJobCommit", bool, false, "TESTING ONLY: the dispatcher kills itself (SIGKILL) right after a job's transaction commits, before it is published, to prove the outbox poll and reconciler recover it; refused in production mode"),
  f("backup.key", z.string(), "", "key that encrypts backup archives (AES-256-GCM): base64 of 32 bytes, or version:base64 pairs, comma separated (the newest encrypts, every one decrypts); `dispatcher backup generate-key` makes one; never one of KM's keys", true),
  f("backup.keyFile", z.string(), "", "file holding backup.key (e.g. a mounted secret), read when that is unset"),
  f("backup.dir", z.string(), "", "directory `dispatcher backup` writes archives to (default: <dataDir>/backups)"),
  f("backup.keep", positiveInt, 14, "archives `dispatcher backup` keeps in backup.dir: after a new one is complete, the oldest beyond this many are deleted"),
  f("logging.level", z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]), "info", "service log level"),
  f("logging.dir", z.string(), "", "directory for YYYY_MM_DD.request.log files (default: <dataDir>/logs; '-' disables)"),
  f("logging.pretty", bool, false, "human-readable service log instead of JSON lines"),
  { ...f("telemetry.otlpEndpoint", z.string().regex(/^(https?:\/\/.+)?$/, "expected http(s)://host:port"), "", "OTLP/HTTP endpoint for traces, e.g. http://127.0.0.1:4318; /v1/traces is appended (unset: OTEL_EXPORTER_OTLP_ENDPOINT; empty: no export)"), fallbackEnv: "OTEL_EXPORTER_OTLP_ENDPOINT" },
  f("telemetry.sampleRatio", z.coerce.number().min(0).max(1), 1, "fraction of new traces sampled"),
  f("telemetry.serviceName", z.string().min(1), "dispatcher", "service.name resource attribute"),
  f("telemetry.file", z.string(), "", "also write every span as a JSON line to this file (tests; empty: off)"),
  f("telemetry.store.enabled", bool, undefined, "keep the spans of job traces in memory in each process running the dispatcher role, for its console and TraceService (default: on when no OTLP endpoint is set)"),
  f("telemetry.store.maxSpans", positiveInt, 10_000, "spans the embedded store keeps at most per process; the oldest go first"),
  f("telemetry.store.maxAgeMs", positiveInt, 3_600_000, "spans older than this leave the embedded store"),
  f("telemetry.traceUiUrl", z.string().regex(/^(https?:\/\/.*\{traceId\}.*)?$/, "expected an http(s) URL containing {traceId}"), "", "link to a trace in an external trace UI, {traceId} replaced, e.g. http://127.0.0.1:16686/trace/{traceId} for Jaeger; shown by the console (empty: no link)"),
  f("metrics.enabled", bool, true, "expose metrics for Prometheus (and /healthz, /readyz) on metrics.bind:metrics.port in each process running roles; also pushed over OTLP when telemetry.otlpEndpoint is set"),
  f("metrics.bind", z.string().min(1), undefined, "address the metrics port binds (default: 127.0.0.1 in development mode, 0.0.0.0 in production)"),
  f("metrics.port", port, undefined, "metrics port (default by role: dispatcher 9464, worker 9465, monitor 9466, km 9467; a process running several roles uses the first of them in that order)"),
  f("metrics.otlpIntervalMs", positiveInt, 60_000, "how often metrics are pushed over OTLP when telemetry.otlpEndpoint is set"),
  f("client.address", z.string().min(1), "127.0.0.1:3302", "dispatcher address the CLI's client commands call"),
  f("client.token", z.string(), "", "API key the CLI's client commands present (Bearer)", true),
  f("encryption.kmChannelKey", z.string(), "", "key sealing credential fields between KM and its clients: base64 of 32 bytes, or version:base64 pairs, comma separated (newest seals); development: generated under <dataDir>/km when unset", true),
  f("encryption.kmChannelKeyFile", z.string(), "", "file holding encryption.kmChannelKey (e.g. a mounted secret), read when that is unset"),
  f("encryption.masterKeys", z.string(), "", "KM master keys as version:base64 pairs of 32 random bytes, comma separated (`dispatcher km generate-key`)", true),
  f("encryption.masterKeysFile", z.string(), "", "file holding encryption.masterKeys (one pair per line or comma separated), read when that is unset"),
];

export type Config = {
  mode: "development" | "production";
  dataDir: string;
  server: { bind: string; port: number; maxMessageBytes: number; keepaliveTimeMs: number; keepaliveTimeoutMs: number; shutdownGraceMs: number; reflection: boolean; defaultDeadlineMs: number; maxMetadataBytes: number;
    maxRequestBytes: number; maxRequestBytesByMethod: Record<string, number>;
    rateLimitPerSecond: number; rateLimitBurst: number; rateLimitHoldMs: number; rateLimitMaxHeld: number; maxConcurrentCallsPerPrincipal: number; maxOpenStreamsPerPrincipal: number;
  };
  bridge: { bind: string; port: number; corsOrigins: string[]; maxRequestBytes: number };
  console: { enabled: boolean; bind: string; port: number; dir: string; origins: string[]; bridgeUrl: string };
  provisioning: { url: string; poolSize: number; sqlPoolSize: number; wsrepSyncWait: number; allowInsecureEndpoints: boolean; allowLinkLocalEndpoints: boolean; auditRetentionDays: number; accountEventRetentionDays: number };
  analytics: { url: string; poolSize: number; rawRetentionMs: number; hourlyRetentionDays: number; retentionShare: number; rollupIntervalMs: number; accrualIntervalMs: number; retentionBatchSize: number };
  km: {
    url: string; bind: string; port: number; databaseUrl: string; poolSize: number; tlsCa: string; tlsCert: string; tlsKey: string;
    serverCert: string; serverKey: string; serverName: string; clientPrincipals: string[]; plaintext: boolean; auditFile: string; auditRetentionDays: number;
    auditRetentionShare: number;
  };
  mq: { url: string; jobsStream: string; jobsStreamReplicas: number; subjectPrefix: string; connectTimeoutMs: number; workerDurable: string; maxAckPending: number };
  runtime: { heapGrowingPercent: number };
  startup: { waitForStoresMs: number };
  jobs: { workerConcurrency: number; reconcileIntervalMs: number; leaseMs: number; claimAfterMs: number; republishAfterMs: number; checkPollMs: number; retentionDays: number; purgeBatch: number; purgeIntervalMs: number; purgeShare: number };
  inventory: { retentionDays: number };
  discovery: { intervalMs: number; serverSyncIntervalMs: number; pollMs: number };
  localCloud: { enabled: boolean; catalogFile: string; stopGraceMs: number };
  agent: {
    bridgeUrl: string; joinToken: string; traceparent: string; bind: string; port: number; address: string; stateDir: string; joinTokenTtlMs: number; pingIntervalMs: number;
    maxMissedPings: number; credentialKey: string; caCert: string; caKey: string; certificateTtlMs: number; plaintext: boolean; channelIdleMs: number; maxChannels: number;
  };
  /** Fault injection for process-level tests; never set outside them (production mode refuses it). */
  faults: { crashAfterJobCommit: boolean };
  backup: { key: string; keyFile: string; dir: string; keep: number };
  logging: { level: string; dir: string; pretty: boolean };
  telemetry: {
    otlpEndpoint: string; sampleRatio: number; serviceName: string; file: string; traceUiUrl: string;
    store: { enabled: boolean; maxSpans: number; maxAgeMs: number };
  };
  metrics: { enabled: boolean; bind: string; port?: number; otlpIntervalMs: number };
  client: { address: string; token: string };
  encryption: { kmChannelKey: string; kmChannelKeyFile: string; masterKeys: string; masterKeysFile: string };
};

/** Raised when the configuration is invalid; lists every bad field at once. */
// Defined apart, so that code which only reports it (the command line) need not load the schema.
export { ConfigError };

/** Keys of a config file that no field reads: a misspelt key would otherwise be ignored without a word. */
function unknownKeys(obj: unknown, prefix = ""): string[] {
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) return [];
  return Object.entries(obj).flatMap(([k, v]) => {
    const path = prefix ? `${prefix}.${k}` : k;
    if (FIELDS.some((f) => f.path === path)) return [];
    if (FIELDS.some((f) => f.path.startsWith(`${path}.`))) return unknownKeys(v, path);
    return [path];
  });
}

function getPath(obj: unknown, path: string): unknown {
  return path.split(".").reduce<unknown>((o, k) => (o && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined), obj);
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  const last = keys.pop() as string;
  let node = obj;
  for (const k of keys) node = (node[k] ??= {}) as Record<string, unknown>;
  node[last] = value;
}

function show(value: unknown, secret: boolean | undefined): string {
  return secret ? "(hidden)" : JSON.stringify(value);
}

/**
 * Builds the configuration from a JSON file (DISPATCHER_CONFIG or `file`) overlaid by DISPATCHER_* variables.
 * Throws ConfigError naming every field that is wrong and where its value came from.
 *
 * A process loads its own configuration once: the telemetry register (before anything else loads) and then the
 * command ask for the same one, and every later ask from process.env with the same sources — the same variables, the
 * same file unchanged — gets a copy of that load (a copy, so that no caller sees another's changes). Any other `env`
 * is loaded afresh.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, file = env.DISPATCHER_CONFIG): Config {
  if (env !== process.env) return buildConfig(env, file);
  const sources = sourcesOf(env, file);
  if (processConfig?.sources !== sources) processConfig = { sources, config: buildConfig(env, file) };
  return structuredClone(processConfig.config);
}

/** This process's configuration as loaded from process.env, with what it was loaded from. */
let processConfig: { sources: string; config: Config } | undefined;

/** What a load reads: the variables the fields name, and the file's identity, size and modification time. */
function sourcesOf(env: NodeJS.ProcessEnv, file: string | undefined): string {
  const names = FIELDS.flatMap((f) => (f.fallbackEnv ? [f.env, f.fallbackEnv] : [f.env]));
  let stamp = "";
  if (file) {
    try {
      const s = statSync(file);
      stamp = `${s.dev}:${s.ino}:${s.size}:${Math.floor(s.mtimeMs)}`;
    } catch {
      stamp = "unreadable";
    }
  }
  return JSON.stringify([file ?? "", stamp, names.map((n) => env[n] ?? null)]);
}

function buildConfig(env: NodeJS.ProcessEnv, file: string | undefined): Config {
  const problems: string[] = [];
  let fromFile: unknown = {};
  if (file) {
    try {
      fromFile = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new ConfigError([`config file ${file}: ${err instanceof Error ? err.message : String(err)}`]);
    }
  }
  for (const key of unknownKeys(fromFile)) problems.push(`${file}: unknown key "${key}" (see the configuration reference)`);
  const out: Record<string, unknown> = {};
  for (const field of FIELDS) {
    const envName = field.fallbackEnv && !env[field.env] ? field.fallbackEnv : field.env;
    const envValue = env[envName];
    const raw = envValue !== undefined && envValue !== "" ? envValue : (getPath(fromFile, field.path) ?? field.default);
    if (raw === undefined) continue;
    const parsed = field.schema.safeParse(raw);
    if (parsed.success) {
      setPath(out, field.path, parsed.data);
    } else {
      const source = envValue !== undefined && envValue !== "" ? envName : file ? `${file}: ${field.path}` : "default";
      const why = parsed.error.issues.map((i) => i.message).join("; ");
      problems.push(`${field.path} (${source}) = ${show(raw, field.secret)}: ${why}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const config = out as unknown as Config;
  config.server.reflection ??= config.mode === "development";
  // A development install answers this machine only unless told otherwise; a production one (containers, VMs behind
  // their own network policy) every address.
  const bind = config.mode === "development" ? "127.0.0.1" : "0.0.0.0";
  config.server.bind ??= bind;
  config.bridge.bind ??= bind;
  config.console.bind ??= bind;
  config.km.bind ??= bind;
  config.metrics.bind ??= bind;
  if (config.logging.dir === "") config.logging.dir = `${config.dataDir}/logs`;
  if (config.km.auditFile === "") config.km.auditFile = `${config.dataDir}/km/audit.jsonl`;
  if (config.backup.dir === "") config.backup.dir = `${config.dataDir}/backups`;
  if (config.agent.bridgeUrl === "") config.agent.bridgeUrl = `http://127.0.0.1:${config.bridge.port}`;
  config.telemetry.store.enabled ??= config.telemetry.otlpEndpoint === "";
  if (config.console.enabled) config.bridge.corsOrigins = [...new Set([...config.bridge.corsOrigins, ...config.console.origins])];
  if (config.mode === "production" && config.faults.crashAfterJobCommit) throw new ConfigError(["faults.crashAfterJobCommit: fault injection is for tests only and refused in production mode"]);
  if (config.mode === "production" && config.agent.plaintext) throw new ConfigError(["agent.plaintext: a plaintext agent channel is for development mode only; agents are called over mutual TLS (agent.caCert, agent.caKey)"]);
  if (config.mode === "production" && config.km.plaintext) throw new ConfigError(["km.plaintext: plaintext KM transport is for development mode only; configure km.tlsCa, km.serverCert/km.serverKey and km.tlsCert/km.tlsKey"]);
  return config;
}

/** The configuration with secret fields masked, for `dispatcher config` and start-up logs. */
export function redactedConfig(config: Config): Config {
  const copy = structuredClone(config) as unknown as Record<string, unknown>;
  for (const field of FIELDS) {
    if (field.secret && getPath(copy, field.path)) setPath(copy, field.path, maskUrl(String(getPath(copy, field.path))));
  }
  return copy as unknown as Config;
}

function maskUrl(value: string): string {
  const m = /^([a-z]+:\/\/)([^@/]*@)?(.*)$/.exec(value);
  if (!m) return "(hidden)";
  // user:password@ keeps the user and hides the password; a bare user@ has nothing to hide.
  const auth = m[2] ?? "";
  const user = auth.includes(":") ? `${auth.slice(0, auth.indexOf(":"))}:***@` : auth;
  return `${m[1]}${user}${m[3]}`;
}
