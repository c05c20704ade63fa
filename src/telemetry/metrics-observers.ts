// Gauges read at collection time (each Prometheus scrape or OTLP export): the database pool of this process, and the
// deployment's queues as the monitor sees them — outbox backlog and oldest age, the JetStream consumer's pending and
// redelivered messages, dead letters, jobs past their deadline, agents by presence. Cluster-wide values are observed by
// the monitor role only, so a deployment with many dispatchers and workers reports each once per monitor replica.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { SqlPool } from "../db/sql.js";
import { METRIC, observeGauge, type Rows } from "./metrics.js";

/** What a pool reports about its connections (src/db/sql.ts). */
export interface PoolStats {
  active: number;
  idle: number;
  waiting: number;
}

/** Connections in use and idle, and callers waiting for one, of a pool named `name` (OpenTelemetry db.client names). */
export function observePool(name: string, stats: () => PoolStats): () => void {
  const pool = { "db.client.connection.pool.name": name };
  const removeCount = observeGauge(METRIC.poolConnections, { unit: "{connection}", description: "Database connections of this process's pools, by state (used, idle)" }, () => {
    const s = stats();
    return [
      [s.active, { ...pool, "db.client.connection.state": "used" }],
      [s.idle, { ...pool, "db.client.connection.state": "idle" }],
    ];
  });
  const removePending = observeGauge(METRIC.poolPending, { unit: "{request}", description: "Callers waiting for a database connection" }, () => [[stats().waiting, pool]]);
  return () => {
    removeCount();
    removePending();
  };
}

export interface QueueObserverOptions {
  sql: SqlPool;
  jsm: JetStreamManager;
  stream: string;
  durable: string;
}

/** The queue gauges of the deployment; returns their removal. */
export function observeQueues(options: QueueObserverOptions): () => void {
  const { sql, jsm, stream, durable } = options;
  // One read serves the gauges that share it within a collection (their callbacks run side by side).
  const consumerInfo = shared(async () => {
    const i = await jsm.consumers.info(stream, durable);
    return { pending: i.num_pending, ackPending: i.num_ack_pending, redelivered: i.num_redelivered };
  });
  const outbox = shared(async () => {
    const [row] = await sql.query<{ n: bigint | number; age: number | string | null }>`
      SELECT COUNT(*) AS n, TIMESTAMPDIFF(MICROSECOND, MIN(created_at), NOW(3)) AS age FROM outbox_entries`;
    return { backlog: Number(row?.n ?? 0), ageSeconds: row?.age === null || row?.age === undefined ? 0 : Number(row.age) / 1e6 };
  });
  const byConsumer = { "messaging.consumer.group.name": durable };

  const removers = [
    observeGauge(METRIC.outboxBacklog, { unit: "{entry}", description: "Outbox entries not yet published to JetStream" }, async () => [[(await outbox()).backlog, {}]]),
    observeGauge(METRIC.outboxOldestAge, { unit: "s", description: "Age of the oldest unpublished outbox entry (0 when none)" }, async () => [[(await outbox()).ageSeconds, {}]]),
    observeGauge(METRIC.consumerPending, { unit: "{message}", description: "Job messages not yet delivered to a worker" }, async () => [[(await consumerInfo()).pending, byConsumer]]),
    observeGauge(METRIC.consumerAckPending, { unit: "{message}", description: "Job messages delivered and not yet acknowledged" }, async () => [[(await consumerInfo()).ackPending, byConsumer]]),
    observeGauge(METRIC.consumerRedelivered, { unit: "{message}", description: "Unacknowledged job messages delivered more than once" }, async () => [[(await consumerInfo()).redelivered, byConsumer]]),
    observeGauge(METRIC.deadLetters, { unit: "{letter}", description: "Dead letters not replayed, by kind" }, async () =>
      kindRows(await sql.query<{ kind: string; n: bigint | number }>`SELECT kind, COUNT(*) AS n FROM dead_letters WHERE replayed_at IS NULL GROUP BY kind`)),
    observeGauge(METRIC.jobsOverdue, { unit: "{job}", description: "Queued or running jobs past their deadline (the reconciler ends them within seconds)" }, async () =>
      kindRows(await sql.query<{ kind: string; n: bigint | number }>`
        SELECT kind, COUNT(*) AS n FROM jobs WHERE state IN ('QUEUED', 'RUNNING') AND deadline_at < NOW(3) GROUP BY kind`)),
    observeGauge(METRIC.agents, { unit: "{agent}", description: "Registered agents by presence (connected, unreachable, gone)" }, async () => {
      const rows = await sql.query<{ state: string; n: bigint | number }>`SELECT state, COUNT(*) AS n FROM agents GROUP BY state`;
      const counts = new Map(rows.map((r) => [r.state, Number(r.n)]));
      // Every presence is reported, zeros too, so that an alert on "unreachable" has a series to compare.
      return ["CONNECTED", "UNREACHABLE", "GONE"].map((s) => [counts.get(s) ?? 0, { "agent.presence": s.toLowerCase() }] as const);
    }),
  ];
  return () => removers.forEach((remove) => remove());
}

function kindRows(rows: Array<{ kind: string; n: bigint | number }>): Rows {
  return rows.map((r) => [Number(r.n), { "job.kind": r.kind }] as const);
}

/** `read` shared by the callers of the next second: one query or request per collection, not one per gauge. */
function shared<T>(read: () => Promise<T>): () => Promise<T> {
  let current: Promise<T> | undefined;
  return () => {
    if (!current) {
      current = read();
      const clear = (): void => void setTimeout(() => (current = undefined), 1_000).unref();
      current.then(clear, clear);
    }
    return current;
  };
}
