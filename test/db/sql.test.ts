// src/db/sql.ts against a real MariaDB: values are always parameters (a hostile string stays data, and out of the
// driver's error messages), lists and fragments, UTC sessions, commit and rollback, a deadlock retried, a busy pool
// reported as UNAVAILABLE, and the Prisma adapter joining a Prisma transaction.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createProvisioningClient } from "../../src/db/clients.js";
import { openConnection } from "../../src/db/connect.js";
import { compile, createSqlPool, sqlFragment, sqlOfPrisma, type SqlPool } from "../../src/db/sql.js";
import { UnavailableError } from "../../src/errors.js";
import { createTestDatabases, type TestDatabases } from "../support/db.js";

let dbs: TestDatabases;
let sql: SqlPool;

beforeAll(async () => {
  dbs = await createTestDatabases("sql_layer");
  sql = createSqlPool(dbs.urls.provisioning, 4);
  await sql.execute`CREATE TABLE sql_t (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, at DATETIME(3) NULL)`;
});
afterAll(async () => {
  await sql?.end();
  await dbs?.drop();
});

const names = async (): Promise<string[]> => (await sql.query<{ name: string }>`SELECT name FROM sql_t ORDER BY id`).map((r) => r.name);

describe("templates", () => {
  it("bind every value as a parameter: a hostile string is stored as written", async () => {
    const hostile = "x'); DROP TABLE sql_t; --";
    expect(await sql.execute`INSERT INTO sql_t (id, name) VALUES (${1}, ${hostile})`).toBe(1);
    expect(await names()).toEqual([hostile]);
    expect(compile(["SELECT ", " FROM t WHERE a = ", ""], [sqlFragment`x`, hostile])).toEqual({ text: "SELECT x FROM t WHERE a = ?", params: [hostile] });
  });

  it("expand lists to one parameter each, inline fragments with their values, and refuse an empty list", async () => {
    await sql.execute`INSERT INTO sql_t (id, name) VALUES (${2}, ${"b"}), (${3}, ${"c"})`;
    const cond = sqlFragment`name <> ${"c"}`;
    expect(await sql.query<{ id: number }>`SELECT id FROM sql_t WHERE id IN (${[1, 2, 3]}) AND ${cond} ORDER BY id`).toEqual([{ id: 1 }, { id: 2 }]);
    expect(compile(["a IN (", ")"], [[1, null, "z"]])).toEqual({ text: "a IN (?, ?, ?)", params: [1, null, "z"] });
    expect(() => compile(["a IN (", ")"], [[]])).toThrow(/empty list/);
    // One template, its text built once, its values bound afresh each time; the same template with a list is expanded.
    const template = ["a = ", " AND b = ", ""];
    expect(compile(template, [1, undefined])).toEqual({ text: "a = ? AND b = ?", params: [1, null] });
    expect(compile(template, ["x", 2])).toEqual({ text: "a = ? AND b = ?", params: ["x", 2] });
    expect(compile(template, [[1, 2], 3])).toEqual({ text: "a = ?, ? AND b = ?", params: [1, 2, 3] });
    expect(await sql.execute`DELETE FROM sql_t WHERE id IN (${[2, 3]})`).toBe(2);
  });

  it("keep bound values out of the driver's errors, which reach the log as causes (pool, connection, Prisma's adapter)", async () => {
    const marker = "bound-value-7f3a0c";
    const seen = (err: unknown): string => {
      expect(err).toBeInstanceOf(Error);
      const e = err as Error & { sql?: string; cause?: unknown };
      return [e.message, e.sql, String(e.stack), JSON.stringify(e.cause ?? null), String((e.cause as Error | undefined)?.message)].join("\n");
    };
    // A duplicate key: the statement fails after its values were bound.
    const pooled = seen(await sql.execute`INSERT INTO sql_t (id, name) VALUES (${1}, ${marker})`.catch((e: unknown) => e));
    expect(pooled).toMatch(/Duplicate entry/);
    expect(pooled).not.toContain(marker);
    const conn = await openConnection(dbs.urls.provisioning);
    try {
      const plain = seen(await conn.query("INSERT INTO sql_t (id, name) VALUES (?, ?)", [1, marker]).catch((e: unknown) => e));
      expect(plain).toMatch(/Duplicate entry/);
      expect(plain).not.toContain(marker);
    } finally {
      await conn.end();
    }
    const prisma = createProvisioningClient(dbs.urls.provisioning, 1);
    try {
      const viaPrisma = seen(await prisma.$executeRaw`INSERT INTO sql_t (id, name) VALUES (${1}, ${marker})`.catch((e: unknown) => e));
      expect(viaPrisma).toMatch(/Duplicate entry|Unique constraint/);
      expect(viaPrisma).not.toContain(marker);
    } finally {
      await prisma.$disconnect();
    }
  });

  it("runs sessions in UTC, so a Date written comes back the same instant and NOW() is UTC", async () => {
    const at = new Date("2026-01-02T03:04:05.678Z");
    await sql.execute`UPDATE sql_t SET at = ${at} WHERE id = ${1}`;
    const [row] = await sql.query<{ at: Date; tz: string; drift: bigint | number }>`
      SELECT at, @@session.time_zone AS tz, ABS(TIMESTAMPDIFF(SECOND, NOW(), UTC_TIMESTAMP())) AS drift FROM sql_t WHERE id = ${1}`;
    expect(row?.at.toISOString()).toBe(at.toISOString());
    expect(row?.tz).toBe("+00:00");
    expect(Number(row?.drift)).toBeLessThanOrEqual(1);
  });
});

describe("transactions", () => {
  it("commit what fn wrote, and roll all of it back when fn throws", async () => {
    await sql.transaction(async (tx) => {
      await tx.execute`INSERT INTO sql_t (id, name) VALUES (${10}, ${"kept"})`;
    });
    await expect(
      sql.transaction(async (tx) => {
        await tx.execute`INSERT INTO sql_t (id, name) VALUES (${11}, ${"dropped"})`;
        throw new Error("changed my mind");
      }),
    ).rejects.toThrow("changed my mind");
    expect(await names()).toContain("kept");
    expect(await names()).not.toContain("dropped");
  });

  it("leave no transaction open on a pooled connection when fn throws before its first statement", async () => {
    // START TRANSACTION goes out with fn's first statement: a throw that comes first must still end the transaction.
    const one = createSqlPool(dbs.urls.provisioning, 1);
    try {
      await expect(one.transaction(() => Promise.reject(new Error("before any statement")))).rejects.toThrow("before any statement");
      await one.execute`INSERT INTO sql_t (id, name) VALUES (${14}, ${"autocommitted"})`;
      // Written through the same single connection: visible to another connection only if no transaction held it.
      expect(await names()).toContain("autocommitted");
      await one.execute`DELETE FROM sql_t WHERE id = ${14}`;
    } finally {
      await one.end();
    }
  });

  it("roll back statements sent together when one of them fails", async () => {
    await expect(
      sql.transaction(async (tx) => {
        await Promise.all([
          tx.execute`INSERT INTO sql_t (id, name) VALUES (${12}, ${"first"})`,
          tx.execute`INSERT INTO sql_t (id, name) VALUES (${10}, ${"a duplicate key"})`,
          tx.execute`INSERT INTO sql_t (id, name) VALUES (${13}, ${"third"})`,
        ]);
      }),
    ).rejects.toThrow(/Duplicate/);
    expect(await names()).not.toContain("first");
    expect(await names()).not.toContain("third");
  });

  it("run fn again after a deadlock, and the retried transaction commits", async () => {
    await sql.execute`INSERT INTO sql_t (id, name) VALUES (${20}, ${"a"}), (${21}, ${"b"})`;
    let bothLocked!: () => void;
    const ready = new Promise<void>((r) => (bothLocked = r));
    let locked = 0;
    let runs = 0;
    const lockInOrder = (first: number, second: number) =>
      sql.transaction(async (tx) => {
        runs++;
        await tx.query`SELECT id FROM sql_t WHERE id = ${first} FOR UPDATE`;
        if (++locked === 2) bothLocked();
        await ready;
        await tx.execute`UPDATE sql_t SET name = ${`by ${first}`} WHERE id = ${second}`;
      });
    await Promise.all([lockInOrder(20, 21), lockInOrder(21, 20)]);
    // One of the two lost the deadlock, ran again and committed: three runs, both updates applied.
    expect(runs).toBe(3);
    expect((await sql.query<{ name: string }>`SELECT name FROM sql_t WHERE id IN (${[20, 21]}) ORDER BY id`).map((r) => r.name)).toEqual(["by 21", "by 20"]);
  });

  it("run READ COMMITTED by default (a later read sees rows committed meanwhile), REPEATABLE READ when asked", async () => {
    const seen = await sql.transaction(async (tx) => {
      const before = (await tx.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM sql_t`)[0]?.n;
      await sql.execute`INSERT INTO sql_t (id, name) VALUES (${30}, ${"meanwhile"})`;
      const after = (await tx.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM sql_t`)[0]?.n;
      return Number(after) - Number(before);
    });
    expect(seen).toBe(1);
    const repeatable = await sql.transaction(
      async (tx) => {
        const before = (await tx.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM sql_t`)[0]?.n;
        await sql.execute`INSERT INTO sql_t (id, name) VALUES (${31}, ${"unseen"})`;
        const after = (await tx.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM sql_t`)[0]?.n;
        return Number(after) - Number(before);
      },
      { isolation: "REPEATABLE READ" },
    );
    expect(repeatable).toBe(0);
    // The next transaction is READ COMMITTED again.
    expect(await sql.transaction(async (tx) => (await tx.query<{ i: string }>`SELECT @@tx_isolation AS i`)[0]?.i)).toBe("READ-COMMITTED");
  });

  it("report a pool with no free connection in time as UNAVAILABLE (DATABASE_BUSY), nothing run", async () => {
    const small = createSqlPool(dbs.urls.provisioning, 1, { acquireTimeoutMs: 200 });
    try {
      let release!: () => void;
      const held = small.transaction(() => new Promise<void>((r) => (release = r)));
      await new Promise((r) => setTimeout(r, 50));
      const err = await small.transaction(async (tx) => tx.execute`INSERT INTO sql_t (id, name) VALUES (${40}, ${"never"})`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect(err).toMatchObject({ reason: "DATABASE_BUSY" });
      release();
      await held;
      expect(await names()).not.toContain("never");
    } finally {
      await small.end();
    }
  });
});

describe("sqlOfPrisma", () => {
  it("runs templates inside the caller's Prisma transaction: they commit or roll back with it", async () => {
    await dbs.provisioning.$transaction(async (tx) => {
      const s = sqlOfPrisma(tx);
      await s.execute`INSERT INTO sql_t (id, name) VALUES (${50}, ${"with prisma"})`;
      expect(await s.query<{ id: number }>`SELECT id FROM sql_t WHERE id IN (${[50, 51]}) AND ${sqlFragment`name = ${"with prisma"}`}`).toEqual([{ id: 50 }]);
    });
    await expect(
      dbs.provisioning.$transaction(async (tx) => {
        await sqlOfPrisma(tx).execute`INSERT INTO sql_t (id, name) VALUES (${52}, ${"rolled back"})`;
        throw new Error("abort");
      }),
    ).rejects.toThrow("abort");
    expect(await names()).toContain("with prisma");
    expect(await names()).not.toContain("rolled back");
  });
});
