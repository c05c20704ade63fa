// KM's audit retention against the real credentials database: rows past km.auditRetentionDays leave in batches, each
// batch recorded in the trail (table and file); the trigger refuses to delete a row younger than 7 days or to change
// any, and the retention's own statement stops at that bound whatever KM's clock says; KM runs the retention from its
// start; the setting refuses what the trigger would.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { RETENTION_PRINCIPAL, pruneAuditRows, startAuditRetention } from "../../src/km/audit-retention.js";
import { generateKeyText } from "../../src/km/keys.js";
import { captureLogger } from "../mq/support.js";
import { until } from "../support/poll.js";
import { sql, startTestKm, type TestKm } from "./support.js";

let t: TestKm;

/** Adds audit rows `days` old (by the database's clock), one per detail. */
async function addRows(days: number, details: string[]): Promise<void> {
  for (const detail of details) {
    await sql(t.dbUrl, "INSERT INTO audit_events (time, action, principal, result, detail) VALUES (UTC_TIMESTAMP(3) - INTERVAL ? DAY, 'get', 'cert:worker', 'OK', ?)", [days, detail]);
  }
}

const details = async (): Promise<string[]> => (await sql<{ detail: string }>(t.dbUrl, "SELECT detail FROM audit_events WHERE detail LIKE 'row-%' ORDER BY detail")).map((r) => r.detail);
const pruneLines = (): Record<string, unknown>[] =>
  readFileSync(t.config.km.auditFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.action === "prune");

beforeAll(async () => {
  t = await startTestKm({ label: "auditret", masterKeys: generateKeyText(1) });
});

afterAll(async () => {
  await t?.cleanup();
});

describe("KM's audit retention", () => {
  it("deletes rows past retention in batches, oldest first, and records each batch in the table and the file", async () => {
    await addRows(400, ["row-400a", "row-400b"]);
    await addRows(30, ["row-30a", "row-30b", "row-30c"]);
    await addRows(9, ["row-9"]);
    await addRows(1, ["row-1"]);
    const { log, lines } = captureLogger("debug");
    const loop = startAuditRetention({ pool: t.km.pool, audit: t.km.audit, log, retentionDays: 10, share: 1, now: () => new Date(), batch: 2, intervalMs: 60_000 });
    try {
      await until(async () => (await details()).length === 2, 10_000, "rows past 10 days deleted");
    } finally {
      await loop.stop(1_000);
    }
    expect(await details()).toEqual(["row-1", "row-9"]);
    expect(lines.filter((l) => l.msg === "deleted audit records past retention").map((l) => l.records)).toEqual([2, 2, 1]);

    // Five rows in batches of two: 2 + 2 + 1, each batch one prune record in both copies.
    const rows = await sql<{ principal: string; result: string; detail: string }>(t.dbUrl, "SELECT principal, result, detail FROM audit_events WHERE action = 'prune' ORDER BY id");
    expect(rows.map((r) => r.detail.split(" ")[0])).toEqual(["2", "2", "1"]);
    expect(rows.every((r) => r.principal === RETENTION_PRINCIPAL && r.result === "OK" && / record\(s\) older than \d{4}-\d\d-\d\dT/.test(r.detail))).toBe(true);
    expect(pruneLines().map((l) => l.detail)).toEqual(rows.map((r) => r.detail));
  });

  it("the trigger refuses to delete a row younger than 7 days, or to change any, whoever asks", async () => {
    await expect(sql(t.dbUrl, "DELETE FROM audit_events WHERE detail = 'row-1'")).rejects.toThrow(/append-only: a record may be deleted only once it is older than 7 days/);
    await expect(sql(t.dbUrl, "UPDATE audit_events SET result = 'X' WHERE detail = 'row-9'")).rejects.toThrow(/append-only/);
    // A whole-table delete fails on its first young row and so deletes nothing.
    await expect(sql(t.dbUrl, "DELETE FROM audit_events")).rejects.toThrow(/append-only/);
    expect(await details()).toEqual(["row-1", "row-9"]);
    // A cut-off from a KM clock 30 days ahead would reach the 1-day-old row the trigger protects: the batch stops at
    // the trigger's bound by the database's clock and deletes the 9-day-old row alone, instead of failing whole.
    expect(await pruneAuditRows(t.km.pool, t.km.audit, { before: new Date(Date.now() + 30 * 86_400_000), limit: 100, now: new Date() })).toBe(1);
    expect(await details()).toEqual(["row-1"]);
  });

  it("KM runs the retention from its start, by km.auditRetentionDays", async () => {
    await addRows(40, ["row-40"]);
    await addRows(20, ["row-20"]);
    t.config.km.auditRetentionDays = 30;
    await t.restart();
    await until(async () => !(await details()).includes("row-40"), 10_000, "the 40-day row deleted by KM's own retention");
    expect(await details()).toEqual(["row-1", "row-20"]);
    expect(t.logLines.some((l) => l.msg === "deleted audit records past retention" && l.records === 1)).toBe(true);
  });

  it("km.auditRetentionDays takes 0 (keep every row) or 7 days on, 365 by default", () => {
    expect(loadConfig({}, "").km.auditRetentionDays).toBe(365);
    expect(loadConfig({ DISPATCHER_KM_AUDIT_RETENTION_DAYS: "0" }, "").km.auditRetentionDays).toBe(0);
    expect(loadConfig({ DISPATCHER_KM_AUDIT_RETENTION_DAYS: "7" }, "").km.auditRetentionDays).toBe(7);
    for (const bad of ["3", "-1", "7.5", "soon"]) {
      expect(() => loadConfig({ DISPATCHER_KM_AUDIT_RETENTION_DAYS: bad }, "")).toThrow(ConfigError);
      expect(() => loadConfig({ DISPATCHER_KM_AUDIT_RETENTION_DAYS: bad }, "")).toThrow(/km\.auditRetentionDays \(DISPATCHER_KM_AUDIT_RETENTION_DAYS\) = "[^"]+": expected 0 or a whole number of days from 7 on/);
    }
  });
});
