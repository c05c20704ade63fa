// Database URLs (mysql://user:password@host:port/database): parsing into driver options and safe display.
export interface DatabaseAddress {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Empty when the URL names no database. */
  database: string;
}

/** Splits a mysql:// or mariadb:// URL; throws a TypeError naming the (redacted) URL when it is not one. */
export function parseDatabaseUrl(url: string): DatabaseAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`not a database URL: ${redactDatabaseUrl(url)} (expected mysql://user:password@host:port/database)`);
  }
  if (u.protocol !== "mysql:" && u.protocol !== "mariadb:") {
    throw new TypeError(`not a database URL: ${redactDatabaseUrl(url)} (expected mysql://user:password@host:port/database)`);
  }
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, "$1") || "127.0.0.1",
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username) || "root",
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.replace(/^\//, "")),
  };
}

/** The database a URL names; throws when it names none. */
export function databaseNameFromUrl(url: string): string {
  const { database } = parseDatabaseUrl(url);
  if (!database) throw new TypeError(`database URL names no database: ${redactDatabaseUrl(url)}`);
  return database;
}

/** The same URL pointing at another database on the same server. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/** The URL without its password, fit for logs and error messages. */
export function redactDatabaseUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:@/]*):[^@/]*@/i, "$1:***@");
}

/** The mariadb driver options this project sets (a subset valid for every mariadb 3.x the tree holds). */
export interface DriverOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  database?: string;
  timezone: string;
  connectTimeout: number;
  logParam: boolean;
}

/**
 * mariadb driver options for a URL. Sessions run in UTC so that DATETIME defaults (CURRENT_TIMESTAMP(3)) agree
 * with the UTC values Prisma writes. The driver's errors name their statement; `logParam` off keeps the bound values
 * (an email address, a payload, a hash) out of those messages, which reach the service log as causes.
 */
export function connectionOptions(url: string, withDb = true): DriverOptions {
  const a = parseDatabaseUrl(url);
  return {
    host: a.host,
    port: a.port,
    user: a.user,
    password: a.password,
    ...(withDb && a.database ? { database: a.database } : {}),
    timezone: "Z",
    connectTimeout: 5_000,
    logParam: false,
  };
}

/**
 * Every pool of the process (the driver's, Prisma's, KM's) opens connections as work needs them, up to its size, and closes
 * those idle for a minute down to one: an idle process holds about one connection per pool, not its pools' sizes
 * (mariadb's default opens every pool in full at once). docs/reliability.md has the budget per role.
 */
export const LAZY_POOL = { minimumIdle: 1, idleTimeout: 60 } as const;

/** The statements every session of a pool starts with (wsrep_sync_wait 0–15: Galera's read-your-writes, 0 is off). */
export function sessionInitSql(options: { wsrepSyncWait?: number | undefined } = {}): string[] {
  const sync = options.wsrepSyncWait ?? 0;
  if (!Number.isInteger(sync) || sync < 0 || sync > 15) throw new RangeError(`wsrep_sync_wait must be a whole number from 0 to 15, not ${sync}`);
  return ["SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", ...(sync > 0 ? [`SET SESSION wsrep_sync_wait = ${sync}`] : [])];
}
