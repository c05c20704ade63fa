// Cost accrual from servers' state history: the pure interval arithmetic, then runs against the real databases —
// a server running a measured interval accrues price × time, stopping stops it, running twice or restarting mid-period
// never double-counts, products billed while stopped keep accruing; a fleet larger than one read is accrued whole; a
// run reads a server's history from its last change before the range, not from its creation.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accrualRows, accrueRange, accruingIntervals, costOf, runAccrual, ACCRUAL_CHUNK, type AccrualServer } from "../../src/analytics/accrual.js";
import { createSqlPool, sqlFragment, sqlJoin } from "../../src/db/sql.js";
import { insertServer as insertServerRow } from "../support/rows.js";
import { accrued, HOUR, insertBudgetCode, insertServer, MINUTE, openAnalyticsFixture, rowsReadBy, type AnalyticsFixture, type State } from "./support.js";

const T0 = Date.UTC(2026, 10, 10, 9, 0, 0);
const PRICE = 120_000n; // 0.12 per hour: 2,000 micros a minute

describe("accruing intervals (pure)", () => {
  const server: AccrualServer = { id: "s", accountId: "a", budgetCode: "B", state: "STOPPED", hourlyPriceMicros: PRICE, accruesWhenStopped: false, createdAt: new Date(T0), stateChangedAt: new Date(T0 + 50 * MINUTE) };
  const changes = [
    { fromState: "PENDING" as const, toState: "RUNNING" as const, at: new Date(T0 + 5 * MINUTE) },
    { fromState: "RUNNING" as const, toState: "REBOOTING" as const, at: new Date(T0 + 20 * MINUTE) },
    { fromState: "REBOOTING" as const, toState: "RUNNING" as const, at: new Date(T0 + 22 * MINUTE) },
    { fromState: "RUNNING" as const, toState: "STOPPING" as const, at: new Date(T0 + 48 * MINUTE) },
    { fromState: "STOPPING" as const, toState: "STOPPED" as const, at: new Date(T0 + 50 * MINUTE) },
  ];

  it("runs from RUNNING to STOPPING, a reboot included; stopped time only for products billed while stopped", () => {
    expect(accruingIntervals(server, changes)).toEqual([{ start: T0 + 5 * MINUTE, end: T0 + 48 * MINUTE }]);
    expect(accruingIntervals({ ...server, accruesWhenStopped: true }, changes)).toEqual([{ start: T0 + 5 * MINUTE, end: Infinity }]);
  });

  it("takes the row's state when the history missed a change, and only the current state when there is no history", () => {
    expect(accruingIntervals({ ...server, state: "RUNNING", stateChangedAt: new Date(T0 + 55 * MINUTE) }, changes)).toEqual([
      { start: T0 + 5 * MINUTE, end: T0 + 48 * MINUTE },
      { start: T0 + 55 * MINUTE, end: Infinity },
    ]);
    expect(accruingIntervals({ ...server, state: "RUNNING", stateChangedAt: new Date(T0 + 30 * MINUTE) }, [])).toEqual([{ start: T0 + 30 * MINUTE, end: Infinity }]);
  });

  it("splits time into hours, counting only what lies before the cut-off", () => {
    const rows = accrualRows(server, [{ start: T0 + 30 * MINUTE, end: Infinity }], new Date(T0), new Date(T0 + 2 * HOUR + 15 * MINUTE));
    expect(rows.map((r) => [r.periodStart.getTime() - T0, r.accruingMs, r.amountMicros])).toEqual([
      [0, 30 * MINUTE, 60_000n],
      [HOUR, HOUR, 120_000n],
      [2 * HOUR, 15 * MINUTE, 30_000n],
    ]);
    expect(costOf(1n, HOUR - 1)).toBe(0n);
  });
});

describe("accrual runs", () => {
  let f: AnalyticsFixture;
  beforeAll(async () => {
    f = await openAnalyticsFixture("anl_accrual");
    await insertBudgetCode(f.sql, "ACC-1", { hard: 1_000_000n, soft: 0n });
  });
  afterAll(() => f?.close());

  it("a server running a measured interval accrues price × time; stopping stops it; runs twice and restarts never double-count", async () => {
    const srv = await insertServer(f.sql, { accountId: f.accountId, budgetCode: "ACC-1", hourlyPriceMicros: PRICE, createdAt: new Date(T0) });
    const started = T0 + 7 * MINUTE + 30_000; // 09:07:30
    await srv.change("RUNNING", new Date(started));

    // First run at 10:40:20: accrues up to 10:40:00 (the last whole minute), from the start of the month.
    const run1 = await runAccrual(f.sql, f.analytics, new Date(T0 + HOUR + 40 * MINUTE + 20_000));
    expect(run1.from).toEqual(new Date(Date.UTC(2026, 10, 1)));
    // Catch-up from the month's start takes several runs of at most 48 hours.
    let more = run1.more;
    let t = T0 + HOUR + 40 * MINUTE + 20_000;
    while (more) more = (await runAccrual(f.sql, f.analytics, new Date(t))).more;
    const upTo = T0 + HOUR + 40 * MINUTE;
    let a = await accrued(f.analytics, srv.id);
    expect(a.ms).toBe(upTo - started);
    // 1 h 32 min 30 s at 0.12/h: 185,000 micros, up to a micro per hour row lost to rounding down.
    expect(a.micros).toBeLessThanOrEqual(185_000n);
    expect(a.micros).toBeGreaterThanOrEqual(185_000n - BigInt(a.rows));

    // The same run again, and a "restarted" monitor a few seconds later in the same minute: the same figures.
    await runAccrual(f.sql, f.analytics, new Date(t));
    await runAccrual(f.sql, f.analytics, new Date(t + 10_000));
    expect(await accrued(f.analytics, srv.id)).toEqual(a);

    // It stops at 11:05:00 (STOPPING at 11:04:00); runs at 11:30 and 13:10 add 24 minutes, then nothing.
    await srv.change("STOPPING", new Date(T0 + 2 * HOUR + 4 * MINUTE));
    await srv.change("STOPPED", new Date(T0 + 2 * HOUR + 5 * MINUTE));
    t = T0 + 2 * HOUR + 30 * MINUTE;
    await runAccrual(f.sql, f.analytics, new Date(t));
    a = await accrued(f.analytics, srv.id);
    const runningMs = T0 + 2 * HOUR + 4 * MINUTE - started;
    expect(a.ms).toBe(runningMs);
    t = T0 + 4 * HOUR + 10 * MINUTE;
    await runAccrual(f.sql, f.analytics, new Date(t));
    await runAccrual(f.sql, f.analytics, new Date(t));
    expect(await accrued(f.analytics, srv.id)).toEqual(a);
    // Within one accrual period (an hour) of price × time, whatever the split into rows.
    const exact = (PRICE * BigInt(runningMs)) / BigInt(HOUR);
    expect(exact - a.micros).toBeGreaterThanOrEqual(0n);
    expect(exact - a.micros).toBeLessThan(BigInt(a.rows));
  });

  it("a product billed while stopped keeps accruing when stopped", async () => {
    const srv = await insertServer(f.sql, { accountId: f.accountId, budgetCode: "ACC-1", hourlyPriceMicros: PRICE, createdAt: new Date(T0 + 5 * HOUR), accruesWhenStopped: true });
    await srv.change("RUNNING", new Date(T0 + 5 * HOUR + 10 * MINUTE));
    await srv.change("STOPPED", new Date(T0 + 5 * HOUR + 20 * MINUTE));
    await runAccrual(f.sql, f.analytics, new Date(T0 + 6 * HOUR));
    expect((await accrued(f.analytics, srv.id)).ms).toBe(50 * MINUTE);
  });
  it("whatever the state changes and however the runs fall (repeated, restarted), the total is price × accruing time", async () => {
    const states: State[] = ["RUNNING", "STOPPING", "STOPPED", "REBOOTING", "RUNNING", "PENDING", "RUNNING", "TERMINATED"];
    let round = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ state: fc.constantFrom(...states), afterMs: fc.integer({ min: 1_000, max: 3 * HOUR }) }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 0, max: 30 * HOUR }), { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        async (changes, runAt, accruesWhenStopped) => {
          // Each case in its own month, so marks and rows of earlier cases stay out of its way.
          const base = Date.UTC(2027, round++, 3);
          await f.analytics.execute`DELETE FROM analytics_progress`;
          const srv = await insertServer(f.sql, { accountId: f.accountId, budgetCode: "ACC-1", hourlyPriceMicros: 3_600_000n, createdAt: new Date(base), accruesWhenStopped });
          const timeline: { state: State; at: number }[] = [{ state: "PENDING", at: base }];
          let t = base;
          for (const c of changes) {
            t += c.afterMs;
            await srv.change(c.state, new Date(t));
            timeline.push({ state: c.state, at: t });
          }
          const end = Math.floor((t + HOUR) / MINUTE) * MINUTE;
          // Runs at random moments (each also run twice), then one at the end.
          for (const at of [...runAt.map((x) => base + x).filter((x) => x < end).sort((a, b) => a - b), end]) {
            for (let more = true; more; ) more = (await runAccrual(f.sql, f.analytics, new Date(at))).more;
            await runAccrual(f.sql, f.analytics, new Date(at));
          }
          // 3,600,000 micros an hour = one micro a millisecond: the total is the accruing milliseconds.
          let ms = 0;
          timeline.forEach((seg, i) => {
            const until = timeline[i + 1]?.at ?? end;
            const on = seg.state === "RUNNING" || seg.state === "REBOOTING" || (accruesWhenStopped && (seg.state === "STOPPING" || seg.state === "STOPPED"));
            if (on) ms += until - seg.at;
          });
          const a = await accrued(f.analytics, srv.id);
          expect(a.ms).toBe(ms);
          expect(a.micros).toBe(BigInt(ms));
        },
      ),
      { numRuns: 8 },
    );
  });
});

describe("accrual over a fleet larger than one read", () => {
  let f: AnalyticsFixture;
  beforeAll(async () => {
    f = await openAnalyticsFixture("anl_accrual_fleet");
  });
  afterAll(() => f?.close());

  it("every server of several chunks accrues exactly once, the terminated ones only when they changed in the range", async () => {
    const count = 2 * ACCRUAL_CHUNK + 7;
    const running: string[] = [];
    for (let i = 0; i < count; i++) {
      running.push(await insertServerRow(f.sql, { accountId: f.accountId, state: "RUNNING", hourlyPriceMicros: PRICE, createdAt: new Date(T0 - HOUR) }));
    }
    // Terminated before the range: nothing to accrue, and never read.
    const gone = await insertServerRow(f.sql, { accountId: f.accountId, state: "TERMINATED", hourlyPriceMicros: PRICE, createdAt: new Date(T0 - 2 * HOUR) });

    const written = await accrueRange(f.sql, f.analytics, new Date(T0), new Date(T0 + HOUR));
    expect(written).toBe(count);
    const rows = await f.analytics.query<{ n: bigint; servers: bigint; micros: string }>`
      SELECT COUNT(*) AS n, COUNT(DISTINCT server_id) AS servers, SUM(amount_micros) AS micros FROM cost_accruals WHERE period_start = ${new Date(T0)}`;
    expect(Number(rows[0]?.n)).toBe(count);
    expect(Number(rows[0]?.servers)).toBe(count);
    expect(BigInt(rows[0]?.micros ?? 0)).toBe(PRICE * BigInt(count));
    expect((await accrued(f.analytics, running.at(-1) ?? "")).micros).toBe(PRICE);
    expect((await accrued(f.analytics, gone)).rows).toBe(0);
  });
});

describe("accrual of a server with a long history", () => {
  let f: AnalyticsFixture;
  beforeAll(async () => {
    f = await openAnalyticsFixture("anl_accrual_history");
  });
  afterAll(() => f?.close());

  it("reads the history from the last change before the range, and accrues what the whole history says", async () => {
    const DAY = 24 * HOUR;
    const created = T0 - 365 * DAY;
    const id = await insertServerRow(f.sql, { accountId: f.accountId, state: "STOPPED", hourlyPriceMicros: PRICE, createdAt: new Date(created) });
    // A year of working days: started 8 hours into each day, stopped 12 hours later (728 changes); then started 90
    // minutes before the range and stopped 20 minutes into its last hour.
    const changes: { from: State; to: State; at: number }[] = [];
    for (let d = 0; d < 364; d++) {
      changes.push({ from: "STOPPED", to: "RUNNING", at: created + d * DAY + 8 * HOUR }, { from: "RUNNING", to: "STOPPED", at: created + d * DAY + 20 * HOUR });
    }
    changes.push({ from: "STOPPED", to: "RUNNING", at: T0 - 90 * MINUTE }, { from: "RUNNING", to: "STOPPED", at: T0 + 20 * MINUTE });
    const values = changes.map((c) => sqlFragment`(${id}, 'STATE_CHANGED', ${c.from}, ${c.to}, 'change', ${new Date(c.at)})`);
    await f.sql.execute`INSERT INTO server_events (server_id, type, from_state, to_state, message, created_at) VALUES ${sqlJoin(values, ", ")}`;
    await f.sql.execute`UPDATE servers SET state_changed_at = ${new Date(T0 + 20 * MINUTE)} WHERE id = ${id}`;

    const one = createSqlPool(f.dbs.urls.provisioning, 1);
    try {
      const read = await rowsReadBy(one, () => accrueRange(one, f.analytics, new Date(T0 - 2 * HOUR), new Date(T0 + HOUR)));
      // The whole history is 730 rows of server_events; the run read the last change before the range and those after.
      expect(read).toBeLessThan(40);
    } finally {
      await one.end();
    }
    // 30 minutes of the hour before last, the whole last hour, 20 minutes of the range's hour.
    const rows = await f.analytics.query<{ period_start: Date; accruing_ms: number }>`SELECT period_start, accruing_ms FROM cost_accruals WHERE server_id = ${id} ORDER BY period_start`;
    expect(rows.map((r) => [r.period_start.getTime() - T0, Number(r.accruing_ms)])).toEqual([
      [-2 * HOUR, 30 * MINUTE],
      [-HOUR, HOUR],
      [0, 20 * MINUTE],
    ]);
    // Deep in the history, hours 7 to 10 of a working day: stopped until hour 8, then running.
    const day = created + 200 * DAY;
    await accrueRange(f.sql, f.analytics, new Date(day + 7 * HOUR), new Date(day + 10 * HOUR));
    const deep = await f.analytics.query<{ period_start: Date; accruing_ms: number }>`
      SELECT period_start, accruing_ms FROM cost_accruals WHERE server_id = ${id} AND period_start < ${new Date(T0 - 2 * HOUR)} ORDER BY period_start`;
    expect(deep.map((r) => [r.period_start.getTime() - day, Number(r.accruing_ms)])).toEqual([
      [8 * HOUR, HOUR],
      [9 * HOUR, HOUR],
    ]);
  });
});
