// The outbox relay while JetStream is down (a private nats-server, SIGKILLed): the poll loop backs off instead of
// retrying every row every pass, the outage is one warning rather than one per row and pass, and once the server is
// back every job goes out once, with one line saying the outage ended.
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSqlPool, type SqlPool } from "../../src/db/sql.js";
import { createOutboxRelay, type OutboxRelay } from "../../src/jobs/relay.js";
import { createJobService } from "../../src/jobs/service.js";
import { createAckedPublisher } from "../../src/mq/acked-publisher.js";
import { ensureJobsStream } from "../../src/mq/jobs-stream.js";
import { captureLogger, startPrivateNats, type LogLine, type PrivateNats } from "../mq/support.js";
import { createTestDatabases, type TestDatabases } from "../support/db.js";
import { sleep, until } from "../support/poll.js";
import { principal, testCatalog } from "./support.js";

const JOBS = 300;
const OUTAGE_MS = 8_000;

describe("outbox relay while JetStream is down", () => {
  let nats: PrivateNats;
  let nc: NatsConnection;
  let dbs: TestDatabases;
  let sql: SqlPool;
  let relay: OutboxRelay;
  let lines: LogLine[];

  beforeAll(async () => {
    nats = await startPrivateNats();
    dbs = await createTestDatabases("relayout");
    sql = createSqlPool(dbs.urls.provisioning, 8);
    nc = await connect({ servers: nats.url, timeout: 5_000, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    await ensureJobsStream(await jetstreamManager(nc), { stream: "JOBS", subjectPrefix: "jobs" });
    const captured = captureLogger("info");
    lines = captured.lines;
    // The roles' publisher: acks through one reply subscription, which must come back with the connection.
    relay = createOutboxRelay({ sql, js: createAckedPublisher(nc), log: captured.log, pollIntervalMs: 100, publishTimeoutMs: 300 });
    relay.start();
  }, 60_000);

  afterAll(async () => {
    await relay?.stop(1_000);
    await nc?.close();
    await sql?.end();
    await dbs?.drop();
    await nats?.stop();
  });

  it("backs off, warns once, and publishes every job once when the server is back", async () => {
    await nats.kill();
    const jobs = createJobService({ sql, catalog: testCatalog(), subjectPrefix: "jobs", log: captureLogger("silent").log, relay, nats: nc });
    for (let i = 0; i < JOBS; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => jobs.createJob({ kind: "note", payload: { text: `n${i + j}` }, requester: principal("reader-token") })));
    }
    await sleep(OUTAGE_MS);

    // Without backoff a pass every 100 ms would have tried each row some 70 times; with it, a handful.
    const [tries] = await sql.query<{ most: number; rows: bigint }>`
      SELECT MAX(publish_attempts) AS most, COUNT(*) AS \`rows\` FROM outbox_entries`;
    expect(Number(tries?.rows)).toBe(JOBS);
    expect(Number(tries?.most)).toBeLessThanOrEqual(8);
    const warnings = lines.filter((l) => l.level === "warn");
    expect(warnings.map((l) => l.msg)).toEqual([expect.stringMatching(/^publishing job messages to JetStream failed; backing off/)]);

    await nats.restart();
    await until(async () => {
      const [left] = await sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM outbox_entries`;
      return left?.n === 0n ? true : undefined;
    }, 60_000, "every row to be published");
    const info = await (await jetstreamManager(nc)).streams.info("JOBS");
    expect(info.state.messages).toBe(JOBS);
    expect(lines.some((l) => l.msg === "publishing job messages to JetStream works again")).toBe(true);
  }, 120_000);
});
