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
 * A deadlock (1213) or lock wait timeout (1205), however Prisma or the driver wrapped it — or 1467 ("Failed to read
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
