// src/db/coalesced-socket.ts: the writes of one tick leave in one writev, later ticks' in their own, and a pool on
// such sockets still runs pipelined statements and transactions against the real MariaDB.
import { once } from "node:events";
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { coalesceWrites } from "../../src/db/coalesced-socket.js";
import { createSqlPool, type SqlPool } from "../../src/db/sql.js";
import { createTestDatabases, type TestDatabases } from "../support/db.js";

let server: Server;
let received: Buffer[] = [];

beforeAll(async () => {
  server = createServer((s) => s.on("data", (b: Buffer) => received.push(b)));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

async function client(): Promise<Socket> {
  const s = connect((server.address() as AddressInfo).port, "127.0.0.1");
  await once(s, "connect");
  coalesceWrites(s);
  return s;
}

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("coalesceWrites", () => {
  it("sends the writes of one tick with one writev, in order", async () => {
    const s = await client();
    const writev = vi.spyOn(s as unknown as { _writev: () => void }, "_writev");
    const single = vi.spyOn(s as unknown as { _write: () => void }, "_write");
    received = [];
    s.write("a");
    await Promise.resolve();
    s.write("b");
    s.write("c");
    await nextTurn();
    expect(writev).toHaveBeenCalledTimes(1);
    expect(single).not.toHaveBeenCalled();
    s.write("d");
    await nextTurn();
    s.write("e");
    await nextTurn();
    // Two more ticks, two more sends (a lone write is never held past its tick).
    expect(writev.mock.calls.length + single.mock.calls.length).toBe(3);
    await vi.waitFor(() => expect(Buffer.concat(received).toString()).toBe("abcde"));
    s.destroy();
  });
});

describe("a pool on coalesced sockets", () => {
  let dbs: TestDatabases;
  let sql: SqlPool;
  beforeAll(async () => {
    dbs = await createTestDatabases("coalesced");
    sql = createSqlPool(dbs.urls.provisioning, 2);
    await sql.execute`CREATE TABLE co_t (id INT PRIMARY KEY)`;
  });
  afterAll(async () => {
    await sql?.end();
    await dbs?.drop();
  });

  it("runs pipelined statements in order and commits them, and rolls a failed transaction back", async () => {
    await sql.transaction(async (tx) => {
      await Promise.all([1, 2, 3].map((id) => tx.execute`INSERT INTO co_t (id) VALUES (${id})`));
    });
    await expect(
      sql.transaction(async (tx) => {
        await Promise.all([tx.execute`INSERT INTO co_t (id) VALUES (${4})`, tx.execute`INSERT INTO co_t (id) VALUES (${1})`]);
      }),
    ).rejects.toThrow(/Duplicate/);
    expect((await sql.query<{ id: number }>`SELECT id FROM co_t ORDER BY id`).map((r) => r.id)).toEqual([1, 2, 3]);
  });
});
