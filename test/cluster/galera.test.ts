// The private Galera cluster harness (test/support/galera.ts): three mariadbd nodes form one cluster, a write on node
// 1 is read on node 3, and a SIGKILLed node leaves the others writing and comes back with what it missed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openConnection } from "../../src/db/connect.js";
import { poll } from "../support/daemon.js";
import { startGaleraCluster, type GaleraCluster, type GaleraNode } from "../support/galera.js";

let cluster: GaleraCluster;

// Galera's defaults take 5 s to suspect a silent node; a shorter suspicion keeps the test short, nothing else changes.
beforeAll(async () => {
  cluster = await startGaleraCluster({ label: "smoke", providerOptions: "evs.suspect_timeout=PT2S;evs.inactive_timeout=PT4S;evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S" });
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
});

async function sql<T>(node: GaleraNode, statement: string, values: unknown[] = []): Promise<T[]> {
  const conn = await openConnection(node.url(), false);
  try {
    return (await conn.query(statement, values)) as T[];
  } finally {
    await conn.end();
  }
}

const node = (i: number): GaleraNode => cluster.nodes[i - 1] as GaleraNode;

describe("a private 3-node Galera cluster", () => {
  it("forms one primary component of three Synced nodes; a write on node 1 is read on node 3", async () => {
    for (const n of cluster.nodes) expect(await n.status(), n.name).toEqual({ size: 3, state: "Synced", ready: true, primary: true });
    await sql(node(1), "CREATE DATABASE smoke");
    await sql(node(1), "CREATE TABLE smoke.t (id INT PRIMARY KEY, v VARCHAR(16))");
    await sql(node(1), "INSERT INTO smoke.t VALUES (1, 'from node 1')");
    // wsrep_sync_wait makes the read wait until node 3 has applied everything committed before it.
    const conn = await openConnection(node(3).url(), false);
    try {
      await conn.query("SET SESSION wsrep_sync_wait = 1");
      expect(await conn.query("SELECT v FROM smoke.t WHERE id = 1")).toEqual([{ v: "from node 1" }]);
    } finally {
      await conn.end();
    }
  }, 30_000);

  it("a SIGKILLed node: the other two keep writing; restarted, it rejoins with the rows it missed", async () => {
    await node(2).kill();
    await poll(async () => (await node(1).status()).size === 2, 20_000, "node 2 to be evicted");
    expect(await node(3).status()).toMatchObject({ size: 2, primary: true, ready: true });
    await sql(node(1), "INSERT INTO smoke.t VALUES (2, 'while 2 was down')");
    await sql(node(3), "INSERT INTO smoke.t VALUES (3, 'also')");

    await node(2).restart();
    await cluster.waitSynced(40_000);
    expect(await node(2).status()).toEqual({ size: 3, state: "Synced", ready: true, primary: true });
    const rows = await sql<{ id: number }>(node(2), "SELECT id FROM smoke.t ORDER BY id");
    expect(rows.map((r) => r.id)).toEqual([1, 2, 3]);
  }, 60_000);
});
