// A small SQL layer over the mariadb driver's pool for hot paths (Prisma costs several times the driver's CPU per
// statement): tagged templates whose values are always bound as parameters, transactions on one pooled connection
// retried on deadlocks, and an adapter that lets a Prisma client or transaction act as an `Sql` (so code written
// against `Sql` can join a caller's Prisma transaction).
import mariadb, { type Pool, type PoolConnection } from "mariadb";
import { Prisma } from "../gen/prisma/provisioning/client.js";
import { UnavailableError } from "../errors.js";
import { isDatabaseUnavailable, isTransientConflict } from "./errors.js";
import type { ProvisioningDb } from "./clients.js";
import { connectionOptions, LAZY_POOL, sessionInitSql } from "./url.js";
import { coalescedStream } from "./socket.js";

/** A value bound as one parameter. */
export type SqlValue = string | number | bigint | boolean | Date | Buffer | null | undefined;

/** What a template may hold: a value, a list of values (bound as `?, ?, …`, e.g. for IN (…)), or a fragment. */
export type SqlArg = SqlValue | readonly SqlValue[] | SqlFragment;

/** A piece of SQL with its values, built with sqlFragment`…` and placed inside another template. */
export class SqlFragment {
  constructor(
    readonly strings: readonly string[],
    readonly values: readonly SqlArg[],
  ) {}
}

/** A reusable piece of SQL (a column list, a condition); its values stay parameters. */
export function sqlFragment(strings: TemplateStringsArray, ...values: SqlArg[]): SqlFragment {
  return new SqlFragment(strings, values);
}

/**
 * True only inside a transaction. Statements sent together (pipelined) with one before them must carry it in their
 * condition: a deadlock, or a Galera node's applier aborting the transaction, rolls the WHOLE transaction back, and
 * the statements already sent behind the failing one then run on their own, in autocommit. With this condition they
 * change nothing there. (A lock wait timeout rolls back only its statement; the transaction stays open and the
 * caller's ROLLBACK undoes the rest.)
 */
export const IN_TRANSACTION = sqlFragment`@@in_transaction = 1`;

/** Fragments one after another with a separator between them (e.g. the WHEN … THEN … arms of a CASE). */
export function sqlJoin(fragments: readonly SqlFragment[], separator: ", " | " " | " AND " | " OR "): SqlFragment {
  if (fragments.length === 0) return new SqlFragment([""], []);
  return new SqlFragment(["", ...fragments.slice(1).map(() => separator), ""], fragments);
}

/** Statement text per template (kept while the template lives: a tagged template's strings are one object per site). */
const plainText = new WeakMap<readonly string[], string>();

/** Runs statements; every `${value}` in a template is a bound parameter, never text. */
export interface Sql {
  /** Runs a statement (INSERT, UPDATE, DELETE); resolves with the number of rows it changed. */
  execute(strings: TemplateStringsArray, ...values: SqlArg[]): Promise<number>;
  /** Runs a statement that returns rows (SELECT, … RETURNING). */
  query<T>(strings: TemplateStringsArray, ...values: SqlArg[]): Promise<T[]>;
}

export type Isolation = "READ COMMITTED" | "REPEATABLE READ";

export interface TransactionOptions {
  /** Default READ COMMITTED (the pool's sessions); REPEATABLE READ for a consistent snapshot over several reads. */
  isolation?: Isolation;
  /** Tries in all when a deadlock or lock wait timeout ends a try (default 3). `fn` runs again from the start. */
  tries?: number;
  /**
   * `fn` may run again even after a try whose COMMIT may have applied (an idempotency-keyed insert that finds its own
   * row, a compare-and-set): a connection lost mid-transaction, or a Galera node that left the primary component, is
   * then tried again on another connection too, within the same `tries`. Otherwise such a failure is the caller's.
   */
  idempotent?: boolean;
}

/** An `Sql` whose statements each run on their own (autocommit), plus transactions. */
export interface SqlPool extends Sql {
  /**
   * Runs `fn` in one transaction on one connection: BEGIN, fn's statements, COMMIT; ROLLBACK when fn throws. A
   * deadlock or lock wait timeout runs `fn` again (nothing of the failed try remains), up to `tries`.
   */
  transaction<T>(fn: (tx: Sql) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** Closes every connection. */
  end(): Promise<void>;
  /** Connections in use and idle, and callers waiting for one (for the pool's metrics). */
  stats?(): { active: number; idle: number; waiting: number };
}

export interface SqlPoolOptions {
  /** How long a caller may wait for a free connection before an UnavailableError (default 5000 ms). */
  acquireTimeoutMs?: number;
  /**
   * Galera's wsrep_sync_wait for every session (provisioning.wsrepSyncWait): 0 leaves the server's; 3 makes reads,
   * updates and deletes wait until the node has applied every write committed anywhere in the cluster before them.
   */
  wsrepSyncWait?: number;
}

/** `?` placeholders and the flat parameter list of a template (lists expanded, fragments inlined). */
export function compile(strings: readonly string[], values: readonly SqlArg[]): { text: string; params: SqlValue[] } {
  // The common statement binds single values only: its text depends on the template alone, built once.
  let plain = true;
  for (const v of values) if (v instanceof SqlFragment || Array.isArray(v)) plain = false;
  if (plain) {
    let cached = plainText.get(strings);
    if (cached === undefined) plainText.set(strings, (cached = strings.join("?")));
    return { text: cached, params: values.map((v) => (v as SqlValue) ?? null) };
  }
  let text = strings[0] ?? "";
  const params: SqlValue[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v instanceof SqlFragment) {
      const inner = compile(v.strings, v.values);
      text += inner.text;
      params.push(...inner.params);
    } else if (Array.isArray(v)) {
      if (v.length === 0) throw new TypeError("an empty list cannot be bound (IN () is not SQL)");
      text += v.map(() => "?").join(", ");
      for (const x of v as SqlValue[]) params.push(x ?? null);
    } else {
      text += "?";
      params.push((v as SqlValue) ?? null);
    }
    text += strings[i + 1] ?? "";
  }
  return { text, params };
}

type Runner = { query(sql: string, values: unknown[]): Promise<unknown> };

function driverSql(runner: Runner): Sql {
  return {
    async execute(strings, ...values) {
      const { text, params } = compile(strings, values);
      const res = (await runner.query(text, params)) as { affectedRows?: number } | unknown[];
      return Array.isArray(res) ? res.length : Number(res.affectedRows ?? 0);
    },
    async query<T>(strings: TemplateStringsArray, ...values: SqlArg[]) {
      const { text, params } = compile(strings, values);
      const res = await runner.query(text, params);
      return (Array.isArray(res) ? res : []) as T[];
    },
  };
}

const ISOLATION: Record<Exclude<Isolation, "READ COMMITTED">, string> = {
  "REPEATABLE READ": "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
};

/**
 * A pool of `size` connections to the database of `url`, in UTC sessions like the Prisma clients (src/db/url.ts).
 * Nothing connects until the first statement.
 *
 * Sessions run READ COMMITTED: the hot paths lock single rows by primary key and re-check their conditions in the
 * UPDATE (compare-and-set), so they need no gap locks — and under REPEATABLE READ the gap and next-key locks of
 * `INSERT … SELECT MAX(sequence)` (job events) on the newest jobs' index range made concurrent creates and starts
 * deadlock (reported by MariaDB as error 1467, "Failed to read auto-increment value"). Reads inside a transaction
 * see what committed before each statement.
 */
export function createSqlPool(url: string, size: number, options: SqlPoolOptions = {}): SqlPool {
  const driver = connectionOptions(url);
  const pool: Pool = mariadb.createPool({
    ...driver,
    stream: coalescedStream(driver.host, driver.port),
    ...LAZY_POOL,
    connectionLimit: size,
    initSql: sessionInitSql(options),
    acquireTimeout: options.acquireTimeoutMs ?? 5_000,
  });

  const acquire = async (): Promise<PoolConnection> => {
    try {
      return await pool.getConnection();
    } catch (err) {
      throw busyOrUnavailable(err);
    }
  };

  const once = async <T>(fn: (tx: Sql) => Promise<T>, isolation: Isolation | undefined): Promise<T> => {
    const conn = await acquire();
    let healthy = true;
    try {
      // READ COMMITTED is every session's own level (initSql): only another level costs a statement.
      if (isolation && isolation !== "READ COMMITTED") await conn.query(ISOLATION[isolation]);
      // START TRANSACTION goes out with fn's first statement (the driver pipelines commands on a connection and runs
      // them in order): one round trip less per transaction. It is awaited before COMMIT; on a live connection it does
      // not fail alone (a lost connection fails fn's statements too, and rolls back whatever had begun).
      const begun = conn.beginTransaction();
      begun.catch(() => undefined);
      try {
        const result = await fn(driverSql(conn));
        await begun;
        await conn.commit();
        return result;
      } catch (err) {
        // A connection whose rollback fails is in an unknown state: drop it rather than hand it out again. The rollback
        // waits for START TRANSACTION's reply, so that the driver knows a transaction is open (fn may throw early).
        await begun.catch(() => undefined);
        await conn.rollback().catch(() => (healthy = false));
        throw err;
      }
    } finally {
      if (healthy) await conn.release().catch(() => undefined);
      else await conn.destroy();
    }
  };

  const base = driverSql({
    async query(text, params) {
      try {
        return await pool.query(text, params);
      } catch (err) {
        throw isAcquireTimeout(err) ? busyOrUnavailable(err) : err;
      }
    },
  });

  return {
    ...base,
    async transaction(fn, opts = {}) {
      const tries = Math.max(1, opts.tries ?? 3);
      for (let attempt = 1; ; attempt++) {
        try {
          return await once(fn, opts.isolation);
        } catch (err) {
          const lost = opts.idempotent === true && isDatabaseUnavailable(err);
          if (attempt >= tries || !(isTransientConflict(err) || lost)) throw err;
          // A lost connection waits longer: a Galera cluster takes a moment to evict a dead node.
          await new Promise((r) => setTimeout(r, (lost ? 200 : 10) * attempt + Math.random() * 20));
        }
      }
    },
    end: () => pool.end(),
    stats: () => ({ active: pool.activeConnections(), idle: pool.idleConnections(), waiting: pool.taskQueueSize() }),
  };
}

function isAcquireTimeout(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "ER_GET_CONNECTION_TIMEOUT";
}

/** No free connection in time (nothing ran: the caller may retry), or the server cannot be reached. */
function busyOrUnavailable(err: unknown): Error {
  // The pool names the last failure to connect as the cause: then the server is away, not busy.
  if (isAcquireTimeout(err) && isDatabaseUnavailable((err as { cause?: unknown }).cause)) {
    return new UnavailableError("the database is unavailable; retry shortly", "DATABASE_UNAVAILABLE", { cause: err });
  }
  if (isAcquireTimeout(err)) return new UnavailableError("the database is busy; retry shortly", "DATABASE_BUSY", { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * A Prisma client or transaction client as an `Sql`: statements go through its $executeRaw / $queryRaw (still
 * parameterised), so they join that transaction. For createJob inside a caller's Prisma transaction, and for tests.
 */
export function sqlOfPrisma(db: ProvisioningDb): Sql {
  return {
    execute: (strings, ...values) => db.$executeRaw(toPrisma(strings, values)),
    query: <T>(strings: TemplateStringsArray, ...values: SqlArg[]) => db.$queryRaw<T[]>(toPrisma(strings, values)),
  };
}

function toPrisma(strings: readonly string[], values: readonly SqlArg[]): Prisma.Sql {
  const mapped = values.map((v): unknown => {
    if (v instanceof SqlFragment) return toPrisma(v.strings, v.values);
    if (Array.isArray(v)) {
      if (v.length === 0) throw new TypeError("an empty list cannot be bound (IN () is not SQL)");
      return Prisma.join(v.map((x: SqlValue) => x ?? null));
    }
    return v ?? null;
  });
  return new Prisma.Sql(strings, mapped as Prisma.Sql["values"]);
}

/** Whether `db` is an `Sql` (rather than a Prisma client or transaction). */
export function isSql(db: object): db is Sql {
  return typeof (db as Partial<Sql>).execute === "function" && typeof (db as Partial<Sql>).query === "function";
}
