// The provisioning database's histories against a real database: the audit trail's rows past
// provisioning.auditRetentionDays leave in batches, each batch recorded in the trail, and the trigger refuses to
// delete a row younger than 7 days whoever asks, which the retention's own statement respects whatever the clocks say;
// account events past provisioning.accountEventRetentionDays leave in batches through their time index; the settings
// refuse what the trigger would.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RETENTION_PRINCIPAL, pruneAuditTrail, startAuditTrailRetention } from "../../src/audit/retention.js";
import { ConfigError, loadConfig } from "../../src/config.js";
import { newId } from "../../src/db/ids.js";
import { createSqlPool, type SqlPool } from "../../src/db/sql.js";
import { startAccountEventRetention } from "../../src/provisioning/discovery/event-retention.js";
import { captureLogger } from "../mq/support.js";
import { createTestDatabases, type TestDatabases } from "../support/db.js";
import { until } from "../support/poll.js";

let dbs: TestDatabases;
let sql: SqlPool;

beforeAll(async () => {
  dbs = await createTestDatabases("history_retention");
  sql = createSqlPool(dbs.urls.provisioning, 2);
});

afterAll(async () => {
  await sql?.end();
  await dbs?.drop();
});

/** Audit rows `days` old (by the database's clock), one per object id. */
async function addAuditRows(days: number, objectIds: string[]): Promise<void> {
  for (const objectId of objectIds) {
    await sql.execute`
      INSERT INTO audit_events (time, principal, action, object_type, object_id)
      VALUES (UTC_TIMESTAMP(3) - INTERVAL ${days} DAY, 'u1', 'group.update', 'group', ${objectId})`;
  }
}

const groupRows = async (): Promise<string[]> =>
  (await sql.query<{ objectId: string }>`SELECT object_id AS objectId FROM audit_events WHERE object_type = 'group' ORDER BY object_id`).map((r) => r.objectId);

/** Account events `days` old for one account, one per message. */
async function addAccountEvents(accountId: string, days: number, messages: string[]): Promise<void> {
  for (const message of messages) {
    await sql.execute`
      INSERT INTO account_events (account_id, type, message, created_at)
      VALUES (${accountId}, 'VALIDATION_FAILED', ${message}, UTC_TIMESTAMP(3) - INTERVAL ${days} DAY)`;
  }
}

const eventMessages = async (accountId: string): Promise<string[]> =>
  (await sql.query<{ message: string }>`SELECT message FROM account_events WHERE account_id = ${accountId} ORDER BY message`).map((r) => r.message);

describe("the audit trail's retention", () => {
  it("deletes rows past retention in batches, oldest first, and records each batch in the trail", async () => {
    await addAuditRows(400, ["g-400a", "g-400b"]);
    await addAuditRows(30, ["g-30a", "g-30b", "g-30c"]);
    await addAuditRows(9, ["g-9"]);
    await addAuditRows(1, ["g-1"]);
    const { log, lines } = captureLogger("debug");
    const loop = startAuditTrailRetention({ sql, log, retentionDays: 10, now: () => new Date(), batch: 2, share: 1, intervalMs: 60_000 });
    try {
      await until(async () => (await groupRows()).length === 2, 10_000, "rows past 10 days deleted");
    } finally {
      await loop.stop(1_000);
    }
    expect(await groupRows()).toEqual(["g-1", "g-9"]);
    expect(lines.filter((l) => l.msg === "deleted audit records past retention").map((l) => l.records)).toEqual([2, 2, 1]);

    // Five rows in batches of two: 2 + 2 + 1, each batch one record of the trail's own, by the retention.
    const prunes = await sql.query<{ principal: string; action: string; objectId: string; diff: string }>`
      SELECT principal, action, object_id AS objectId, diff FROM audit_events WHERE object_type = 'audit_trail' ORDER BY id`;
    expect(prunes.map((r) => JSON.parse(r.diff).records)).toEqual([{ to: 2 }, { to: 2 }, { to: 1 }]);
    for (const r of prunes) {
      expect(r).toMatchObject({ principal: RETENTION_PRINCIPAL, action: "audit_trail.prune", objectId: "audit_events" });
      expect(JSON.parse(r.diff).olderThan.to).toMatch(/^\d{4}-\d\d-\d\dT/);
    }
  });

  it("records nothing when nothing is due", async () => {
    const before = await sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM audit_events`;
    expect(await pruneAuditTrail(sql, { before: new Date(Date.now() - 10 * 86_400_000), limit: 100 })).toBe(0);
    expect(await sql.query<{ n: bigint }>`SELECT COUNT(*) AS n FROM audit_events`).toEqual(before);
  });

  it("the trigger refuses to delete a row younger than 7 days, or to change any, whoever asks", async () => {
    await expect(sql.execute`DELETE FROM audit_events WHERE object_id = 'g-1'`).rejects.toThrow(/append-only: a record may be deleted only once it is older than 7 days/);
    await expect(sql.execute`UPDATE audit_events SET principal = 'someone-else' WHERE object_id = 'g-9'`).rejects.toThrow(/append-only/);
    // A whole-table delete fails on its first young row and so deletes nothing.
    await expect(sql.execute`DELETE FROM audit_events`).rejects.toThrow(/append-only/);
    expect(await groupRows()).toEqual(["g-1", "g-9"]);
  });

  it("stops at the trigger's bound by the database's clock: a cut-off from a clock days ahead deletes what may go", async () => {
    // As from a monitor whose clock is 30 days ahead: its cut-off would reach the 1-day-old row, which the trigger
    // protects; the batch deletes the 9-day-old row and leaves that one, instead of failing whole at every interval.
    // Both bounds on the time index: the batch reads the oldest rows, not the table (of a size where that matters).
    await sql.execute`
      INSERT INTO audit_events (time, principal, action, object_type, object_id)
      SELECT UTC_TIMESTAMP(3) - INTERVAL seq MINUTE, 'u1', 'user.update', 'user', CONCAT('u-', seq) FROM seq_1_to_5000`;
    await sql.execute`ANALYZE TABLE audit_events`;
    const [plan] = await sql.query<{ key: string | null }>`
      EXPLAIN DELETE FROM audit_events WHERE time < ${new Date()} AND time < UTC_TIMESTAMP(3) - INTERVAL 7 DAY ORDER BY time LIMIT 1000`;
    expect(plan?.key).toBe("audit_events_time_idx");
    expect(await pruneAuditTrail(sql, { before: new Date(Date.now() + 30 * 86_400_000), limit: 100 })).toBe(1);
    expect(await groupRows()).toEqual(["g-1"]);
  });
});

describe("account events' retention", () => {
  it("deletes events past retention in batches, oldest first, and keeps the rest", async () => {
    const [a, b] = [newId(), newId()];
    await addAccountEvents(a, 200, ["a-200"]);
    await addAccountEvents(a, 100, ["a-100a", "a-100b"]);
    await addAccountEvents(b, 95, ["b-95"]);
    await addAccountEvents(a, 10, ["a-10"]);
    await addAccountEvents(b, 0, ["b-0"]);
    const { log, lines } = captureLogger("debug");
    const loop = startAccountEventRetention({ sql, log, retentionDays: 90, now: () => new Date(), batch: 3, share: 1, intervalMs: 60_000 });
    try {
      await until(async () => (await eventMessages(a)).length === 1 && (await eventMessages(b)).length === 1, 10_000, "events past 90 days deleted");
    } finally {
      await loop.stop(1_000);
    }
    expect(await eventMessages(a)).toEqual(["a-10"]);
    expect(await eventMessages(b)).toEqual(["b-0"]);
    expect(lines.filter((l) => l.msg === "deleted account events past retention").map((l) => l.records)).toEqual([3, 1]);
  });

  it("finds the oldest through the time index, not by reading the table", async () => {
    const [plan] = await sql.query<{ key: string | null; type: string }>`
      EXPLAIN DELETE FROM account_events WHERE created_at < ${new Date()} ORDER BY created_at LIMIT 1000`;
    expect(plan?.key).toBe("account_events_created_at_idx");
  });

  it("keeps every event with 0 days", async () => {
    const id = newId();
    await addAccountEvents(id, 3_000, ["old"]);
    const { log } = captureLogger("debug");
    const loop = startAccountEventRetention({ sql, log, retentionDays: 0, now: () => new Date(), share: 1, intervalMs: 10 });
    await new Promise((r) => setTimeout(r, 100));
    await loop.stop(1_000);
    expect(await eventMessages(id)).toEqual(["old"]);
  });
});

describe("the settings", () => {
  it("refuse an audit retention the trigger would refuse, and default to a year of audit and 90 days of events", () => {
    expect(() => loadConfig({ DISPATCHER_PROVISIONING_AUDIT_RETENTION_DAYS: "3" }, "")).toThrow(ConfigError);
    expect(() => loadConfig({ DISPATCHER_PROVISIONING_AUDIT_RETENTION_DAYS: "3" }, "")).toThrow(/provisioning\.auditRetentionDays.*from 7 on/s);
    expect(() => loadConfig({ DISPATCHER_PROVISIONING_ACCOUNT_EVENT_RETENTION_DAYS: "-1" }, "")).toThrow(/provisioning\.accountEventRetentionDays/);
    expect(loadConfig({ DISPATCHER_PROVISIONING_AUDIT_RETENTION_DAYS: "0" }, "").provisioning.auditRetentionDays).toBe(0);
    const defaults = loadConfig({}, "");
    expect(defaults.provisioning).toMatchObject({ auditRetentionDays: 365, accountEventRetentionDays: 90 });
  });
});
