// A release round that starts the children it releases in the parent's worker (startHere), against the real MariaDB:
// the first ones go RUNNING under that worker's lease in the round's transaction with no outbox row, the rest are
// published as before, within the limit; and a child so started whose worker died is requeued and published by the
// reconciler's sweep of expired leases, as any job is.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { releaseRound } from "../../src/jobs/children.js";
import { requeueExpiredLeases } from "../../src/monitor/queries.js";
import { insertParentWithChildren, openExecHarness, type ExecHarness } from "./exec-support.js";

let h: ExecHarness;

beforeAll(async () => {
  h = await openExecHarness("children-start", { nats: false });
});
afterAll(async () => {
  await h.close();
});

const parentWithChildren = (n: number): Promise<{ parent: string; children: string[] }> => insertParentWithChildren(h, n, { n: 1 });

const rowsOf = (ids: string[]) =>
  h.sql.query<{ id: string; state: string; held: number; attempt: number; owner: string | null; deadline: Date | null; outbox: bigint }>`
    SELECT id, state, held, attempt, lease_owner AS owner, deadline_at AS deadline,
           (SELECT COUNT(*) FROM outbox_entries o WHERE o.job_id = j.id) AS outbox
      FROM jobs j WHERE id IN (${ids}) ORDER BY id`;

describe("a release round starting its children here", () => {
  it("starts the first ones under the worker's lease with no outbox row, publishes the rest, and stays within the limit", async () => {
    const { parent, children } = await parentWithChildren(4);
    const round = await releaseRound(h.sql, {
      jobId: parent, attempt: 1, maxRunning: 3, errorBudget: 1, childTimeoutMs: 60_000, subjectPrefix: "t",
      startHere: { owner: "worker-here", leaseMs: 30_000, max: 2, runs: (kind) => kind === "diagnostic" },
    });
    expect(round).toMatchObject({ status: "ok", counts: { pending: 1, running: 3 } });
    if (round.status !== "ok") return;
    expect(round.startedHere.map((j) => [j.id, j.attempt, j.payload])).toEqual(children.slice(0, 2).map((id) => [id, 1, { n: 1 }]));
    expect(round.released.map((r) => r.jobId)).toEqual([children[2]]);
    const rows = await rowsOf(children);
    expect(rows.map((r) => [r.state, Number(r.held), r.attempt, r.owner, r.deadline !== null, Number(r.outbox)])).toEqual([
      ["RUNNING", 0, 1, "worker-here", true, 0],
      ["RUNNING", 0, 1, "worker-here", true, 0],
      ["QUEUED", 0, 0, null, true, 1],
      ["QUEUED", 1, 0, null, false, 0],
    ]);
    const events = await h.sql.query<{ type: string; attempt: number; message: string }>`
      SELECT type, attempt, message FROM job_events WHERE job_id = ${children[0] as string} ORDER BY sequence`;
    expect(events.map((e) => e.type)).toEqual(["created", "released", "started"]);
    expect(events[2]).toMatchObject({ attempt: 1, message: `attempt 1 of 3 (started on release by job ${parent})` });
    // Nothing more while three run.
    const next = await releaseRound(h.sql, { jobId: parent, attempt: 1, maxRunning: 3, errorBudget: 1, childTimeoutMs: 60_000, subjectPrefix: "t", startHere: { owner: "worker-here", leaseMs: 30_000, max: 3, runs: () => true } });
    expect(next).toMatchObject({ status: "ok", counts: { pending: 1, running: 3 }, startedHere: [], released: [] });
  });

  it("publishes a child of a kind the worker does not run here instead of starting it", async () => {
    const { parent, children } = await parentWithChildren(2);
    const round = await releaseRound(h.sql, { jobId: parent, attempt: 1, maxRunning: 2, errorBudget: 1, childTimeoutMs: 60_000, subjectPrefix: "t", startHere: { owner: "worker-here", leaseMs: 30_000, max: 2, runs: (kind) => kind !== "diagnostic" } });
    expect(round).toMatchObject({ status: "ok", startedHere: [] });
    expect((await rowsOf(children)).map((r) => [r.state, Number(r.outbox)])).toEqual([["QUEUED", 1], ["QUEUED", 1]]);
  });

  it("leaves a child started so whose worker died to the reconciler, which requeues and publishes it", async () => {
    const { parent, children } = await parentWithChildren(1);
    const child = children[0] as string;
    await releaseRound(h.sql, { jobId: parent, attempt: 1, maxRunning: 1, errorBudget: 1, childTimeoutMs: 60_000, subjectPrefix: "t", startHere: { owner: "worker-dead", leaseMs: 30_000, max: 1, runs: () => true } });
    await h.sql.execute`UPDATE jobs SET lease_expires_at = NOW(3) - INTERVAL 1 SECOND WHERE id = ${child}`;
    const swept = await requeueExpiredLeases(h.ex, { limit: 100, actor: "monitor", republish: async (_tx, j) => j.jobId });
    expect(swept.published).toContain(child);
    expect((await rowsOf([child]))[0]).toMatchObject({ state: "QUEUED", attempt: 1, owner: null });
  });
});
