// Direct mariadb connections (migrations, health checks, test set-up) and the one translation of "cannot reach the
// database" into an UnavailableError that tells the operator what to do.
import mariadb, { type Connection } from "mariadb";
import { retrying, type Backoff } from "../backoff.js";
import { UnavailableError } from "../errors.js";
import type { Logger } from "../log.js";
import { isDatabaseUnavailable } from "./errors.js";
import { connectionOptions, parseDatabaseUrl, redactDatabaseUrl } from "./url.js";

const START_HINT = "start it with `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`";
const UNREACHABLE = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EHOSTUNREACH", "ECONNRESET", "ER_CONNECTION_TIMEOUT", "ER_SOCKET_UNEXPECTED_CLOSE"]);
const ACCESS_DENIED = new Set(["ER_ACCESS_DENIED_ERROR", "ER_ACCESS_DENIED_NO_PASSWORD_ERROR", "ER_DBACCESS_DENIED_ERROR"]);

/**
 * Opens one connection to the server of `url`, to its database unless `useDatabase` is false.
 * Connection failures become an UnavailableError naming the server (never the password) and the fix.
 */
export async function openConnection(url: string, useDatabase = true): Promise<Connection> {
  let conn: Connection;
  try {
    conn = await mariadb.createConnection(connectionOptions(url, useDatabase));
  } catch (err) {
    throw databaseUnavailable(url, err);
  }
  // A connection dropped while idle (the server killed, a failover, a network cut) is closed by the driver, which
  // throws the error out of its socket handler — ending the process — unless someone listens. The next statement on
  // it fails with the driver's "connection closed", which its caller handles.
  conn.on("error", () => undefined);
  return conn;
}

/**
 * Resolves when the database of `url` accepts a query; otherwise throws an UnavailableError saying what to do.
 * With `requireDatabase: false` only the server and the credentials are checked (before `migrate` creates it).
 */
export async function checkDatabase(url: string, options: { requireDatabase?: boolean } = {}): Promise<void> {
  const conn = await openConnection(url, options.requireDatabase ?? true);
  try {
    await conn.query("SELECT 1");
  } catch (err) {
    throw databaseUnavailable(url, err);
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** Turns a driver error met while connecting into an UnavailableError whose message an operator can act on. */
export function databaseUnavailable(url: string, err: unknown): UnavailableError {
  const { host, port, user, database } = parseDatabaseUrl(url);
  const where = `${host}:${port}`;
  const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "";
  const detail = err instanceof Error ? err.message.replace(/^\(conn:[^)]*\)\s*/, "") : String(err);
  let message: string;
  if (UNREACHABLE.has(code)) {
    message = `MariaDB is not reachable at ${where} (${redactDatabaseUrl(url)}): ${START_HINT}`;
  } else if (ACCESS_DENIED.has(code)) {
    message = `MariaDB at ${where} refused user ${JSON.stringify(user)} (${redactDatabaseUrl(url)}): check the user and password in the database URL`;
  } else if (code === "ER_BAD_DB_ERROR") {
    message = `database ${JSON.stringify(database)} does not exist at ${where}: create it and its tables with \`dispatcher migrate\``;
  } else {
    message = `MariaDB at ${where} (${redactDatabaseUrl(url)}) failed: ${detail}`;
  }
  return new UnavailableError(message, "DATABASE_UNAVAILABLE", { cause: err });
}

/** How a process waits for a store at start: 0.5 s, then doubling, at most 10 s between tries. */
export const STARTUP_BACKOFF: Backoff = { initialMs: 500, maxMs: 10_000 };

/**
 * checkDatabase, waiting while the server cannot be reached (down, starting, out of connections, a Galera node not yet
 * in the primary component): each failed try logs what it waits for and when it tries again. Errors that waiting
 * cannot cure — wrong credentials, a database that does not exist — are thrown at once; so is the last failure once
 * `giveUpAfterMs` (when set) has passed.
 */
export async function waitForDatabase(url: string, options: { log: Logger; requireDatabase?: boolean; backoff?: Backoff; giveUpAfterMs?: number }): Promise<void> {
  const { host, port } = parseDatabaseUrl(url);
  const server = `${host}:${port}`;
  await retrying(() => checkDatabase(url, { requireDatabase: options.requireDatabase ?? true }), {
    backoff: options.backoff ?? STARTUP_BACKOFF,
    giveUpAfterMs: options.giveUpAfterMs,
    retryable: isDatabaseUnavailable,
    onRetry: (err, attempt, retryInMs) => options.log.warn({ server, attempt, retryInMs }, `waiting for MariaDB: ${err instanceof Error ? err.message : String(err)}`),
    onRecovered: (attempts) => options.log.info({ server, attempts }, "MariaDB is reachable; continuing"),
  });
}
