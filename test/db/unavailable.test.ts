// A database that goes away reaches callers as UNAVAILABLE, never INTERNAL: the real errors the mariadb driver and
// Prisma raise when a private MariaDB is SIGKILLed under an open pool, or is not there at all, go through the one
// error edge (src/rpc/status.ts). A statement that is wrong stays INTERNAL.
import { status as Code } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createProvisioningClient, type ProvisioningClient } from "../../src/db/clients.js";
import { isDatabaseUnavailable } from "../../src/db/errors.js";
import { createSqlPool, type SqlPool } from "../../src/db/sql.js";
import { toRpcStatus } from "../../src/rpc/status.js";
import { startPrivateMariadb, type PrivateMariadb } from "../support/mariadb.js";
import { freePort } from "../support/net.js";

const failure = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (err: unknown) => err,
  );

function expectUnavailable(err: unknown): void {
  expect(isDatabaseUnavailable(err), String(err)).toBe(true);
  const status = toRpcStatus(err);
  expect(status.code).toBe(Code.UNAVAILABLE);
  expect(status.details).toBe("the database is unavailable; retry shortly");
}

describe("a database that goes away", () => {
  let server: PrivateMariadb;
  let sql: SqlPool;
  let prisma: ProvisioningClient;

  beforeAll(async () => {
    server = await startPrivateMariadb({ label: "unavail" });
    await server.query("CREATE DATABASE t");
    sql = createSqlPool(server.url("t"), 2, { acquireTimeoutMs: 2_000 });
    prisma = createProvisioningClient(server.url("t"), 2);
  }, 60_000);

  afterAll(async () => {
    await sql?.end().catch(() => undefined);
    await prisma?.$disconnect().catch(() => undefined);
    await server?.stop();
  });

  it("a wrong statement is still INTERNAL", async () => {
    const err = await failure(sql.query`SELECT * FROM no_such_table`);
    expect(isDatabaseUnavailable(err)).toBe(false);
    expect(toRpcStatus(err).code).toBe(Code.INTERNAL);
    const perr = await failure(prisma.$queryRaw`SELEC 1`);
    expect(toRpcStatus(perr).code).toBe(Code.INTERNAL);
  });

  it("killed under open pools: the driver's and Prisma's errors are UNAVAILABLE", async () => {
    expect(await sql.query`SELECT 1 AS one`).toEqual([{ one: 1 }]);
    expect(await prisma.$queryRaw`SELECT 1 AS one`).toEqual([{ one: 1 }]);
    await server.kill();
    expectUnavailable(await failure(sql.query`SELECT 1`));
    expectUnavailable(await failure(sql.transaction((tx) => tx.query`SELECT 1`)));
    expectUnavailable(await failure(prisma.$queryRaw`SELECT 1`));
  }, 30_000);

  it("nothing listening: UNAVAILABLE", async () => {
    const url = `mysql://root@127.0.0.1:${await freePort()}/t`;
    const nowhere = createSqlPool(url, 1, { acquireTimeoutMs: 1_000 });
    const nowherePrisma = createProvisioningClient(url, 1);
    try {
      expectUnavailable(await failure(nowhere.query`SELECT 1`));
      expectUnavailable(await failure(nowherePrisma.$queryRaw`SELECT 1`));
    } finally {
      await nowhere.end().catch(() => undefined);
      await nowherePrisma.$disconnect().catch(() => undefined);
    }
  }, 30_000);
});
