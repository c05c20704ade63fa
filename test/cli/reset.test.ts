// A fresh clone beside an earlier install's databases, as a newcomer meets it: the first install's development master
// key stays in its own data directory, so the second start (a new directory, a new key) exits 2 saying the fingerprint
// differs and naming `dispatcher reset`; reset lists what it would remove and removes nothing without --yes, refuses
// in production mode and while a dispatcher listens, and with --yes removes the databases, the jobs stream and the
// data directory, after which `dispatcher start` begins anew.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { openConnection } from "../../src/db/connect.js";
import { databaseNameFromUrl } from "../../src/db/url.js";
import { bootstrapToken, createTestEnv, killStrayDispatchers, runDispatcher, startDispatcher, type TestEnv } from "../support/process.js";

let t: TestEnv;

beforeAll(async () => {
  t = await createTestEnv({ label: "reset" });
});

let cloneDir: string | undefined;

afterAll(async () => {
  await killStrayDispatchers();
  await t?.cleanup();
  if (cloneDir) rmSync(cloneDir, { recursive: true, force: true });
});

async function databasesLeft(): Promise<string[]> {
  const names = Object.values(t.urls).map(databaseNameFromUrl);
  const conn = await openConnection(t.urls.provisioning, false);
  try {
    const rows = (await conn.query(`SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (${names.map(() => "?").join(",")})`, names)) as { name: string }[];
    return rows.map((r) => r.name).sort();
  } finally {
    await conn.end();
  }
}

async function streamExists(): Promise<boolean> {
  const nc = await connect({ servers: t.natsUrl, timeout: 2_000 });
  try {
    return await (await jetstreamManager(nc)).streams.info(t.stream).then(() => true, () => false);
  } finally {
    await nc.close();
  }
}

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => resolve(s));
  });
}

it("a start beside an earlier install's databases says what to do; reset --yes clears the way for a new start", async () => {
  const first = await startDispatcher(t, ["start"], { timeoutMs: 120_000 });
  first.signal("SIGTERM");
  expect((await first.exited).code, first.output()).toBe(0);

  // The fresh clone: same databases, stream and ports, another data directory (so another development master key).
  cloneDir = mkdtempSync(join(tmpdir(), "dispatcher-reset-clone-"));
  const clone = t.with({ DISPATCHER_DATA_DIR: cloneDir });
  const refused = await runDispatcher(["start"], clone, 120_000);
  expect(refused.code, refused.stderr).toBe(2);
  expect(refused.stderr).toContain("fingerprint differs");
  expect(refused.stderr).toContain("`dispatcher reset`");

  const all = Object.values(t.urls).map(databaseNameFromUrl).sort();
  expect(await databasesLeft()).toEqual(all);

  const dry = await runDispatcher(["reset"], clone);
  expect(dry.code, dry.stderr).toBe(2);
  for (const name of all) expect(dry.stderr).toContain(`database ${name}`);
  expect(dry.stderr).toContain(`stream ${t.stream}`);
  expect(dry.stderr).toContain("Nothing was removed");

  const production = await runDispatcher(["reset", "--yes"], { ...clone, DISPATCHER_MODE: "production" });
  expect(production.code, production.stderr).toBe(2);
  expect(production.stderr).toContain("refused: mode is production");

  const held = await listen(t.ports.server);
  try {
    const running = await runDispatcher(["reset", "--yes"], clone);
    expect(running.code, running.stderr).toBe(2);
    expect(running.stderr).toMatch(/refused: a dispatcher seems to be running .*Stop it first/);
  } finally {
    held.close();
  }
  expect(await databasesLeft()).toEqual(all);
  expect(await streamExists()).toBe(true);

  const reset = await runDispatcher(["reset", "--yes"], clone);
  expect(reset.code, reset.stderr).toBe(0);
  expect(await databasesLeft()).toEqual([]);
  expect(await streamExists()).toBe(false);
  expect(existsSync(clone.DISPATCHER_DATA_DIR as string)).toBe(false);

  const again = await startDispatcher(t, ["start"], { env: clone, timeoutMs: 120_000 });
  expect(bootstrapToken(again), again.output()).toMatch(/^dsp_/);
  again.signal("SIGTERM");
  expect((await again.exited).code, again.output()).toBe(0);
}, 400_000);
