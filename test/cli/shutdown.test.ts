// SIGTERM on the real process while 50 calls are in flight: health turns NOT_SERVING, a new call gets UNAVAILABLE,
// all 50 complete OK, the process exits 0.
//
// The calls are held in flight by the database, not by a test-only RPC: a new API key's first use records
// last_used_at, and this test holds that row's lock, so every call waits inside the server (authenticated, in the
// in-flight set) until the test lets go. A call that reached the server only after the stop began would be answered
// UNAVAILABLE, so "all 50 OK" proves they were in flight when SIGTERM arrived.
import { afterAll, beforeAll, expect, it } from "vitest";
import { status } from "@grpc/grpc-js";
import { checkHealth, createDispatcherClients, DispatcherError } from "../../src/client/index.js";
import { openConnection } from "../../src/db/connect.js";
import { createTestApiKey, createTestEnv, killStrayDispatchers, startDispatcher, type DispatcherProcess, type TestEnv } from "../support/process.js";
import { readRequestLog } from "./request-log.js";
import { sleep, until } from "../support/poll.js";

let t: TestEnv;
let p: DispatcherProcess;

beforeAll(async () => {
  t = await createTestEnv({ label: "drain", env: { DISPATCHER_PROVISIONING_POOL_SIZE: "10" } });
  p = await startDispatcher(t);
});

afterAll(async () => {
  await killStrayDispatchers();
  await t?.cleanup();
});


it("SIGTERM with 50 calls in flight: NOT_SERVING, new calls UNAVAILABLE, all 50 complete OK, exit 0", async () => {
  const key = await createTestApiKey(t.urls.provisioning, { role: "reader" });
  const database = new URL(t.urls.provisioning).pathname.slice(1);
  const lock = await openConnection(t.urls.provisioning);
  const watcher = await openConnection(t.urls.provisioning);
  const client = createDispatcherClients({ address: t.address, token: key.secret, retry: false });
  try {
    await lock.beginTransaction();
    await lock.query("SELECT id FROM api_keys WHERE id = ? FOR UPDATE", [key.id]);

    let settled = 0;
    const calls = Array.from({ length: 50 }, () => client.system.getServerInfo({}, { deadlineMs: 30_000 }).finally(() => settled++));
    // Judged below with allSettled; this keeps an early failure from also reporting 50 unhandled rejections.
    for (const call of calls) call.catch(() => undefined);
    // The server's connections queue on the row lock (the other calls wait for a pooled connection)...
    await until(
      async () => {
        const rows = (await watcher.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE '%api_keys%' AND ID <> CONNECTION_ID() AND ID <> ?", [database, lock.threadId])) as { n: bigint }[];
        return Number(rows[0]?.n ?? 0) >= 1;
      },
      10_000,
      "calls waiting on the api_keys row lock",
      () => `\n${p.output()}`,
    );
    // ...and the last of the 50 frames, written together with the first, has surely been read.
    await sleep(300);
    expect(settled).toBe(0);

    p.signal("SIGTERM");
    await until(async () => (await checkHealth(t.address, "", 1_000).catch(() => "DOWN")) === "NOT_SERVING", 10_000, "NOT_SERVING", () => `\n${p.output()}`);
    const late = await client.system.getServerInfo({}).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(DispatcherError);
    expect((late as DispatcherError).code).toBe(status.UNAVAILABLE);
    expect((late as DispatcherError).errorInfo?.reason).toBe("SHUTTING_DOWN");
    expect(settled, "the 50 calls are still held by the lock").toBe(0);
    expect(p.running).toBe(true);

    await lock.rollback();
    const results = await Promise.allSettled(calls);
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
    expect(results.every((r) => r.status === "fulfilled" && r.value.roles.includes("dispatcher"))).toBe(true);
    expect(await p.exited, p.output()).toEqual({ code: 0, signal: null });
  } finally {
    client.close();
    await lock.end().catch(() => undefined);
    await watcher.end().catch(() => undefined);
  }

  const served = readRequestLog(t.logDir).filter((l) => l.method === "/dispatcher.v1.SystemService/GetServerInfo");
  expect(served.filter((l) => l.code === "OK")).toHaveLength(50);
  expect(served.filter((l) => l.code === "UNAVAILABLE")).toHaveLength(1);
  expect(served).toHaveLength(51);
});
