// `dispatcher migrate` through the command line: twice in a row, and two processes at once on new databases (made
// to overlap), each exits 0 and leaves one correct schema (every migration recorded once, finished, and the tables,
// columns and indexes Prisma's schema describes).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { openConnection } from "../../src/db/connect.js";
import { DATABASES } from "../../src/db/databases.js";
import { readMigrations } from "../../src/db/migrate.js";
import { createTestEnv, killStrayDispatchers, runDispatcher, spawnDispatcher, type TestEnv } from "../support/process.js";
import { actualShape, diffShapes, expectedShape } from "../support/schema-shape.js";
import { until } from "../support/poll.js";

let sequential: TestEnv;
let concurrent: TestEnv;

beforeAll(async () => {
  [sequential, concurrent] = await Promise.all([createTestEnv({ label: "migtwice" }), createTestEnv({ label: "migpair" })]);
});

afterAll(async () => {
  await killStrayDispatchers();
  await Promise.allSettled([sequential?.cleanup(), concurrent?.cleanup()]);
});

/** Both databases of `t` hold exactly their schema, each migration recorded once and finished. */
async function expectOneCorrectSchema(t: TestEnv): Promise<void> {
  const config = loadConfig(t.env, "");
  const owned = DATABASES.filter((d) => d.owner === "dispatcher");
  expect(owned.map((d) => d.name)).toEqual(expect.arrayContaining(["provisioning", "analytics"]));
  for (const db of owned) {
    const url = db.url(config);
    const conn = await openConnection(url);
    try {
      const names = readMigrations(db.migrationsDir).map((m) => m.name);
      const rows = (await conn.query("SELECT migration_name AS name, COUNT(*) AS n, SUM(finished_at IS NULL) AS unfinished FROM _prisma_migrations GROUP BY migration_name ORDER BY migration_name")) as { name: string; n: bigint; unfinished: string | number }[];
      expect(rows.map((r) => [r.name, Number(r.n), Number(r.unfinished)]), db.name).toEqual(names.map((n) => [n, 1, 0]));
      const schema = readFileSync(join(db.migrationsDir, "..", "schema.prisma"), "utf8");
      expect(diffShapes(expectedShape(schema), await actualShape(conn, new URL(url).pathname.slice(1))), db.name).toEqual([]);
    } finally {
      await conn.end();
    }
  }
}

it("`dispatcher migrate` twice: the first creates and migrates both databases, the second finds nothing to do", async () => {
  const first = await runDispatcher(["migrate"], sequential.env);
  expect(first.code, first.stderr).toBe(0);
  expect(first.stderr).toMatch(/provisioning: applied \S+ \(1\/\d+\)/);
  expect(first.stderr).toMatch(/analytics: applied/);
  expect(first.stderr).toMatch(/migrations done in \d+ ms/);

  const second = await runDispatcher(["migrate"], sequential.env);
  expect(second.code, second.stderr).toBe(0);
  expect(second.stderr).toMatch(/provisioning: up to date/);
  expect(second.stderr).toMatch(/analytics: up to date/);
  expect(second.stderr).not.toMatch(/applied/);
  await expectOneCorrectSchema(sequential);
});

it("two `dispatcher migrate` processes at once on new databases: both exit 0, one applies, one correct schema", async () => {
  // The test holds the provisioning database's migration lock until both processes wait for it, so they surely
  // overlap; then one applies the migrations and the other finds them applied.
  const database = new URL(concurrent.urls.provisioning).pathname.slice(1);
  const holder = await openConnection(concurrent.urls.provisioning, false);
  try {
    expect(Number(((await holder.query("SELECT GET_LOCK(?, 5) AS got", [`dispatcher_migrate:${database}`])) as { got: bigint }[])[0]?.got)).toBe(1);
    const pair = [spawnDispatcher(["migrate"], concurrent.env), spawnDispatcher(["migrate"], concurrent.env)];
    const bothWaiting = async () => {
      const rows = (await holder.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT GET_LOCK(%' AND ID <> CONNECTION_ID()")) as { n: bigint }[];
      if (pair.some((p) => !p.running)) throw new Error(`both migrations should wait for the lock\n${pair.map((p) => p.output()).join("\n")}`);
      return Number(rows[0]?.n) >= 2;
    };
    await until(bothWaiting, 20_000, "both migrations waiting for the lock", () => `\n${pair.map((p) => p.output()).join("\n")}`);
    await holder.query("SELECT RELEASE_LOCK(?)", [`dispatcher_migrate:${database}`]);
    const exits = await Promise.all(pair.map((p) => p.exited));
    for (const [i, exit] of exits.entries()) expect(exit.code, pair[i]?.output()).toBe(0);
    const said = pair.map((p) => (/provisioning: applied/.test(p.stderr) ? "applied" : /provisioning: up to date/.test(p.stderr) ? "up to date" : "?")).sort();
    expect(said).toEqual(["applied", "up to date"]);
  } finally {
    await holder.end();
  }
  await expectOneCorrectSchema(concurrent);
});
