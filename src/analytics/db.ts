// The analytics database through the mariadb driver: a pool whose failures to reach the database (server down, database
// missing or not migrated) all become one UnavailableError, so callers answer UNAVAILABLE and never crash; and a
// cached probe that says whether analytics is up, for health details.
import { UnavailableError } from "../errors.js";
import { createSqlPool, type Sql, type SqlArg, type SqlPool } from "../db/sql.js";
import type { Logger } from "../log.js";

/** Errors that mean "the analytics database cannot serve now", as opposed to a bug in a statement. */
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ECONNRESET",
  "EPIPE",
  "ER_CONNECTION_TIMEOUT",
  "ER_SOCKET_UNEXPECTED_CLOSE",
  "ER_GET_CONNECTION_TIMEOUT",
  "ER_CONNECTION_ALREADY_CLOSED",
  "ER_POOL_ALREADY_CLOSED",
  "ER_CMD_CONNECTION_CLOSED",
  "ER_BAD_DB_ERROR",
  "ER_NO_SUCH_TABLE",
  "ER_ACCESS_DENIED_ERROR",
  "ER_DBACCESS_DENIED_ERROR",
  "ER_SERVER_SHUTDOWN",
]);

function driverCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === "object" && depth < 6; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && UNAVAILABLE_CODES.has(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Whether `err` says the analytics database is unreachable, missing or not migrated (as createAnalyticsSql reports it). */
export function isAnalyticsUnavailable(err: unknown): boolean {
  return err instanceof UnavailableError && err.reason === "ANALYTICS_UNAVAILABLE";
}

/**
 * Runs work that needs the analytics database: while it is unavailable the work answers false, with one warning per
 * outage (`down`) and one line when it is back (`back`); any other error passes.
 */
export function analyticsOutageGuard(log: Logger, messages: { down: string; back: string }): (work: () => Promise<boolean>) => Promise<boolean> {
  let down = false;
  return async (work) => {
    try {
      const more = await work();
      if (down) log.info(messages.back);
      down = false;
      return more;
    } catch (err) {
      if (!isAnalyticsUnavailable(err)) throw err;
      if (!down) log.warn({ err: (err as Error).message }, messages.down);
      down = true;
      return false;
    }
  };
}

/** What callers see: no URL, no host (the log has the cause). */
function unavailable(err: unknown): unknown {
  if (err instanceof UnavailableError && err.reason === "ANALYTICS_UNAVAILABLE") return err;
  const code = driverCode(err) ?? (err instanceof UnavailableError ? err.reason : undefined);
  if (code === undefined) return err;
  const why = code === "ER_NO_SUCH_TABLE" || code === "ER_BAD_DB_ERROR" ? "its tables are missing (run `dispatcher migrate`)" : "it cannot be reached";
  return new UnavailableError(`the analytics database is unavailable: ${why}; metrics and cost reports are off until it is back`, "ANALYTICS_UNAVAILABLE", { cause: err });
}

function guard(sql: Sql): Sql {
  return {
    execute: (strings: TemplateStringsArray, ...values: SqlArg[]) => sql.execute(strings, ...values).catch((err: unknown) => Promise.reject(unavailable(err))),
    query: <T>(strings: TemplateStringsArray, ...values: SqlArg[]) => sql.query<T>(strings, ...values).catch((err: unknown) => Promise.reject(unavailable(err))),
  };
}

/**
 * A pool on the analytics database. A caller waits at most `acquireTimeoutMs` (default 2 s) for a connection when the
 * server is down, then gets UnavailableError ANALYTICS_UNAVAILABLE. Nothing connects until the first statement.
 */
export function createAnalyticsSql(url: string, size: number, options: { acquireTimeoutMs?: number } = {}): SqlPool {
  // Made on first use: a process that never touches analytics never connects (nor retries against a server that is down).
  let pool: SqlPool | undefined;
  const get = (): SqlPool => (pool ??= createSqlPool(url, size, { acquireTimeoutMs: options.acquireTimeoutMs ?? 2_000 }));
  return {
    ...guard({ execute: (strings, ...values) => get().execute(strings, ...values), query: (strings, ...values) => get().query(strings, ...values) }),
    transaction: (fn, opts) => get().transaction((tx) => fn(guard(tx)), opts).catch((err: unknown) => Promise.reject(unavailable(err))),
    end: async () => {
      await pool?.end();
    },
  };
}

export interface ComponentStatus {
  name: string;
  available: boolean;
  detail: string;
}

export interface AnalyticsStatus {
  /** Whether analytics answered a probe lately (cached for `ttlMs`). */
  check(): Promise<ComponentStatus>;
}

/** Probes the analytics tables at most once per `ttlMs` (default 5 s); concurrent callers share one probe. */
export function analyticsStatus(sql: Sql, ttlMs = 5_000, now: () => number = Date.now): AnalyticsStatus {
  let last: { at: number; status: ComponentStatus } | undefined;
  let inFlight: Promise<ComponentStatus> | undefined;
  const probe = async (): Promise<ComponentStatus> => {
    try {
      await sql.query`SELECT 1 FROM analytics_progress LIMIT 1`;
      return { name: "analytics", available: true, detail: "" };
    } catch (err) {
      const e = unavailable(err);
      return { name: "analytics", available: false, detail: e instanceof Error ? e.message : String(e) };
    }
  };
  return {
    check() {
      if (last && now() - last.at < ttlMs) return Promise.resolve(last.status);
      inFlight ??= probe().then((status) => {
        last = { at: now(), status };
        inFlight = undefined;
        return status;
      });
      return inFlight;
    },
  };
}
