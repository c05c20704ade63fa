// How transactions meet a connection killed under them and a real deadlock, on the real MariaDB: an idempotent
// transaction runs again on another connection, any other leaves the failure to its caller as UNAVAILABLE; a deadlock
// is tried again, and one that outlasts the tries reaches a caller as ABORTED, never INTERNAL.
import { status as Code } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openConnection } from "../../src/db/connect.js";
import { isDatabaseUnavailable, isTransientConflict } from "../../src/db/errors.js";
import { quoteIdentifier } from "../../src/db/migrate.js";
import { createSqlPool, type SqlPool } from "../../src/db/sql.js";
import { sessionInitSql } from "../../src/db/url.js";
import { toRpcStatus } from "../../src/rpc/status.js";
import { newTestDatabaseName, testDatabaseUrl } from "../support/db.js";

const database = newTestDatabaseName("sqlretry", "db");
const url = testDatabaseUrl(database);
let pool: SqlPool;
let other: SqlPool;

beforeAll(async () => {
  const conn = await openConnection(testDatabaseUrl(""), false);
  try {
    await conn.query(`CREATE DATABASE ${quoteIdentifier(database)}`);
    await conn.query(`CREATE TABLE ${quoteIdentifier(database)}.items (id INT PRIMARY KEY, v INT NOT NULL)`);
  } finally {
    await conn.end();
  }
  pool = createSqlPool(url, 2);
  other = createSqlPool(url, 2);
});

afterAll(async () => {
  await pool?.end();
  await other?.end();
  const conn = await openConnection(testDatabaseUrl(""), false);
  await conn.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(database)}`).finally(() => conn.end());
});

/** Kills the connection that runs this transaction, from another one: its next statement meets a lost connection. */
async function killOwnConnection(tx: { query<T>(s: TemplateStringsArray, ...v: unknown[]): Promise<T[]> }): Promise<void> {
  const [row] = await tx.query<{ id: bigint }>`SELECT CONNECTION_ID() AS id`;
  await other.execute`KILL CONNECTION ${Number(row?.id)}`;
}

describe("a connection killed in the middle of a transaction", () => {
  it("an idempotent transaction runs again on another connection and commits once", async () => {
    let runs = 0;
    await pool.transaction(
      async (tx) => {
        runs++;
        await tx.execute`INSERT INTO items (id, v) VALUES (1, 1) ON DUPLICATE KEY UPDATE v = v`;
        if (runs === 1) await killOwnConnection(tx);
        await tx.execute`UPDATE items SET v = 2 WHERE id = 1`;
      },
      { idempotent: true },
    );
    expect(runs).toBe(2);
    expect(await pool.query<{ v: number }>`SELECT v FROM items WHERE id = 1`).toEqual([{ v: 2 }]);
  });

  it("any other transaction fails once, as UNAVAILABLE to a caller, with nothing applied", async () => {
    let runs = 0;
    const err = await pool
      .transaction(async (tx) => {
        runs++;
        await tx.execute`INSERT INTO items (id, v) VALUES (2, 1)`;
        await killOwnConnection(tx);
        await tx.execute`UPDATE items SET v = 2 WHERE id = 2`;
      })
      .catch((e: unknown) => e);
    expect(runs).toBe(1);
    expect(isDatabaseUnavailable(err), String(err)).toBe(true);
    expect(toRpcStatus(err)).toMatchObject({ code: Code.UNAVAILABLE, details: "the database is unavailable; retry shortly" });
    expect(await pool.query`SELECT v FROM items WHERE id = 2`).toEqual([]);
  });
});

describe("a deadlock", () => {
  /** Two transactions that lock rows 10 and 11 in opposite orders: MariaDB picks one of them as the victim. */
  async function deadlock(tries: number): Promise<{ errors: unknown[]; runs: number }> {
    await pool.execute`INSERT INTO items (id, v) VALUES (10, 0), (11, 0) ON DUPLICATE KEY UPDATE v = 0`;
    let runs = 0;
    let arrived = 0;
    let release: () => void = () => undefined;
    const bothHoldOne = new Promise<void>((r) => (release = r));
    const side = (db: SqlPool, first: number, second: number) =>
      db.transaction(
        async (tx) => {
          runs++;
          await tx.execute`UPDATE items SET v = v + 1 WHERE id = ${first}`;
          if (++arrived === 2) release();
          await bothHoldOne;
          await tx.execute`UPDATE items SET v = v + 1 WHERE id = ${second}`;
        },
        { tries },
      );
    const results = await Promise.allSettled([side(pool, 10, 11), side(other, 11, 10)]);
    return { errors: results.flatMap((r) => (r.status === "rejected" ? [r.reason] : [])), runs };
  }

  it("is tried again, and both transactions commit", async () => {
    const { errors, runs } = await deadlock(3);
    expect(errors).toEqual([]);
    expect(runs).toBe(3);
    expect(await pool.query<{ v: number }>`SELECT v FROM items WHERE id IN (10, 11) ORDER BY id`).toEqual([{ v: 2 }, { v: 2 }]);
  });

  it("one that outlasts the tries reaches a caller as ABORTED, not INTERNAL", async () => {
    const { errors } = await deadlock(1);
    expect(errors).toHaveLength(1);
    expect(isTransientConflict(errors[0])).toBe(true);
    expect(toRpcStatus(errors[0])).toMatchObject({ code: Code.ABORTED, details: "the database aborted the change for a concurrent one; retry it" });
  });
});

describe("sessionInitSql", () => {
  it("adds wsrep_sync_wait only when asked, and refuses a value Galera does not know", () => {
    expect(sessionInitSql()).toEqual(["SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"]);
    expect(sessionInitSql({ wsrepSyncWait: 3 })).toEqual(["SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", "SET SESSION wsrep_sync_wait = 3"]);
    expect(() => sessionInitSql({ wsrepSyncWait: 16 })).toThrow(/0 to 15/);
  });
});
