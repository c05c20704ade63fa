// Recognising database errors that callers handle (duplicate keys), whichever layer raised them: Prisma's query
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
