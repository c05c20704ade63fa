// The private JetStream cluster harness (test/support/nats-cluster.ts): three nats-servers form a cluster, a stream
// with three replicas keeps every message through a SIGKILL of the node that leads it, takes publishes again on the
// two others, and the killed node catches up when it comes back with its store.
import { AckPolicy, jetstream, jetstreamManager, StorageType, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { poll } from "../support/daemon.js";
import { startNatsCluster, type NatsCluster } from "../support/nats-cluster.js";

let cluster: NatsCluster;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;

beforeAll(async () => {
  cluster = await startNatsCluster({ label: "smoke" });
  nc = await connect({ servers: cluster.urls.split(","), timeout: 5_000, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
  js = jetstream(nc, { timeout: 2_000 });
  jsm = await jetstreamManager(nc, { timeout: 5_000 });
}, 40_000);

afterAll(async () => {
  await nc?.close();
  await cluster?.stop();
});

/** Publishes with a message id, retrying while the stream elects a new leader (the id makes a retry land once). */
async function publish(i: number): Promise<void> {
  await poll(() => js.publish("smoke.m", new TextEncoder().encode(String(i)), { msgID: `m-${i}` }).then(() => true), 20_000, `publish ${i}`, 100);
}

describe("a private 3-node JetStream cluster", () => {
  it("forms with a meta leader, and every node routes to the two others", async () => {
    expect(cluster.nodes).toHaveLength(3);
    for (const n of cluster.nodes) {
      const routez = await n.monitor<{ num_routes: number }>("routez");
      expect(routez.num_routes, n.name).toBeGreaterThanOrEqual(2);
    }
    const info = await jsm.getAccountInfo();
    expect(info.api.errors).toBe(0);
  });

  it("a stream of 3 replicas survives the SIGKILL of its leader: nothing lost, publishes resume, the node catches up", async () => {
    await jsm.streams.add({ name: "SMOKE", subjects: ["smoke.>"], num_replicas: 3, storage: StorageType.File });
    for (let i = 0; i < 100; i++) await publish(i);
    const before = await jsm.streams.info("SMOKE");
    expect(before.cluster?.replicas).toHaveLength(2);
    const leader = cluster.nodes.find((n) => n.name === before.cluster?.leader);
    expect(leader, JSON.stringify(before.cluster)).toBeDefined();
    await leader?.kill();

    for (let i = 100; i < 200; i++) await publish(i);
    const after = await poll(async () => {
      const info = await jsm.streams.info("SMOKE");
      return info.cluster?.leader && info.cluster.leader !== leader?.name ? info : undefined;
    }, 20_000, "a new stream leader");
    expect(after.state.messages).toBe(200);

    // Every message once, in order, read through a consumer on the surviving nodes (made once the cluster's meta
    // leader is back too: the killed node may have held that role as well).
    await poll(() => jsm.consumers.add("SMOKE", { durable_name: "reader", ack_policy: AckPolicy.Explicit }), 20_000, "the consumer to be created");
    const consumer = await js.consumers.get("SMOKE", "reader");
    // Keyed by stream sequence: a fetch cut short (missed heartbeats while the new leader settles on a loaded
    // machine) is retried, and a message redelivered after it counts once.
    const seen = new Map<number, number>();
    const deadline = Date.now() + 30_000;
    while (seen.size < 200 && Date.now() < deadline) {
      try {
        const batch = await consumer.fetch({ max_messages: 200, expires: 2_000 });
        for await (const m of batch) {
          seen.set(m.seq, Number(new TextDecoder().decode(m.data)));
          m.ack();
        }
      } catch (err) {
        if (!(err instanceof Error) || !/heartbeats missed/.test(err.message)) throw err;
      }
    }
    const bySeq = [...seen.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
    expect(bySeq).toEqual(Array.from({ length: 200 }, (_, i) => i));

    // The killed node comes back with its store and is current again.
    await leader?.restart();
    await cluster.waitReady();
    await poll(async () => {
      const info = await jsm.streams.info("SMOKE");
      const peer = [...(info.cluster?.replicas ?? []), { name: info.cluster?.leader, current: true }].find((r) => r.name === leader?.name);
      return peer?.current === true;
    }, 20_000, `${leader?.name} to be a current replica again`);
  }, 60_000);
});
