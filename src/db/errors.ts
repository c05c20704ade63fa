// Recognising database errors that callers handle (duplicate keys, deadlocks), whichever layer raised them: Prisma's query
// engine (P2002), a raw query through the driver adapter, or the mariadb driver itself (ER_DUP_ENTRY, 1062).

/** Whether `err` reports a UNIQUE or PRIMARY KEY violation. */
export function isUniqueViolation(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === "object" && depth < 6; depth++) {
    const o = e as { code?: unknown; errno?: unknown; kind?: unknown; meta?: { driverAdapterError?: unknown }; cause?: unknown };
    if (o.code === "P2002" || o.code === "ER_DUP_ENTRY" || o.errno === 1062 || o.kind === "UniqueConstraintViolation") return true;
    e = o.meta?.driverAdapterError ?? o.cause;
  }
  return false;
}

/**
 * A deadlock (1213) or lock wait timeout (1205), however Prisma or the driver wrapped it (on Galera, 1213 is also how a
 * transaction that lost certification to a conflicting one committed on another node is reported, at COMMIT or at its
 * next statement) — or 1467 ("Failed to read
 * auto-increment value from storage engine"), which is how MariaDB reports a deadlock met while waiting for a table's
 * AUTO-INC lock (concurrent INSERT … SELECT into one table under REPEATABLE READ): the transaction was rolled back.
 */
export function isTransientConflict(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === "object" && depth < 6; depth++) {
    const o = e as { code?: unknown; errno?: unknown; kind?: unknown; meta?: { driverAdapterError?: unknown }; cause?: unknown };
    if (o.code === "P2034" || o.kind === "TransactionWriteConflict" || o.errno === 1213 || o.errno === 1205 || o.errno === 1467) return true;
    if (o.kind === "mysql" && (o.code === 1213 || o.code === 1205 || o.code === 1467)) return true;
    if (o.code === "ER_LOCK_DEADLOCK" || o.code === "ER_LOCK_WAIT_TIMEOUT" || o.code === "ER_AUTOINC_READ_FAILED") return true;
    e = o.meta?.driverAdapterError ?? o.cause;
  }
  return false;
}

/** Server errors that say the server or the connection went away, or that the server takes no work now. */
const LOST_ERRNOS = new Set([
  1040, // too many connections
  1047, // WSREP has not yet prepared node for application use (a Galera node out of the primary component)
  1053, // server shutdown in progress
  1927, // connection was killed
  2002, 2003, 2006, 2013, // cannot connect, server has gone away, lost connection during query
  // the mariadb driver's own: connection closed or timed out, socket errors, pool closed or out of connections
  45001, 45009, 45012, 45013, 45019, 45026, 45027, 45028, 45035, 45037, 45039, 45042,
]);
const LOST_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN",
  "ER_CON_COUNT_ERROR", "ER_SERVER_SHUTDOWN", "ER_CONNECTION_KILLED", "ER_UNKNOWN_COM_ERROR",
  "ER_CONNECTION_ALREADY_CLOSED", "ER_SOCKET_UNEXPECTED_CLOSE", "ER_CONNECTION_TIMEOUT", "ER_CMD_CONNECTION_CLOSED", "ER_SOCKET",
  "ER_SOCKET_TIMEOUT", "ER_POOL_ALREADY_CLOSED", "ER_GET_CONNECTION_TIMEOUT", "ER_ADD_CONNECTION_CLOSED_POOL", "ER_CLOSING_POOL",
  "ER_INITIAL_TIMEOUT_ERROR", "ER_PING_TIMEOUT",
  // Prisma: cannot reach the server, timed out, server closed the connection, no pooled connection in time
  "P1001", "P1002", "P1008", "P1017", "P2024",
]);
/** Prisma driver adapters' error kinds for the same. */
const LOST_KINDS = new Set(["DatabaseNotReachable", "ConnectionClosed", "SocketTimeout", "TooManyConnections"]);

/**
 * Whether `err` (however Prisma or the driver wrapped it) says the database cannot serve now — unreachable, the
 * connection lost mid-statement, shutting down, out of connections, a Galera node outside the primary component —
 * rather than that a statement was wrong. Callers see such a failure as UNAVAILABLE and may retry.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === "object" && depth < 6; depth++) {
    const o = e as { code?: unknown; errno?: unknown; kind?: unknown; meta?: { driverAdapterError?: unknown }; cause?: unknown };
    if (typeof o.errno === "number" && LOST_ERRNOS.has(o.errno)) return true;
    if (typeof o.code === "string" && LOST_CODES.has(o.code)) return true;
    if (typeof o.kind === "string" && LOST_KINDS.has(o.kind)) return true;
    if (o.kind === "mysql" && typeof o.code === "number" && LOST_ERRNOS.has(o.code)) return true;
    e = o.meta?.driverAdapterError ?? o.cause;
  }
  return false;
}
