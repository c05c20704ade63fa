// A parent's release round and a child's start, interleaved by hand against the real MariaDB: the start holds the
// child's row and then changes its state while the round waits to lock that child. Both must go through, neither
// chosen as a deadlock victim (the round once locked children through the (parent, held, state) index and did).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SqlPool } from "../../src/db/sql.js";
import { releaseRound } from "../../src/jobs/children.js";
import { insertParentWithChildren, openExecHarness, type ExecHarness } from "./exec-support.js";

let h: ExecHarness;

beforeAll(async () => {
  h = await openExecHarness("children-locks", { nats: false });
});
afterAll(async () => {
  await h.close();
});

/** The pool with no retry of a transaction: a deadlock surfaces instead of being tried again. */
const once = (pool: SqlPool): SqlPool => ({ ...pool, transaction: (fn, opts) => pool.transaction(fn, { ...opts, tries: 1 }) });

const parentWithChildren = (n: number): Promise<{ parent: string; children: string[] }> => insertParentWithChildren(h, n);

describe("a release round and a starting child", () => {
  it("wait for each other without a deadlock", async () => {
    const { parent, children } = await parentWithChildren(3);
    const round = { jobId: parent, attempt: 1, maxRunning: 2, errorBudget: 1, childTimeoutMs: 60_000, subjectPrefix: "t" };
    const first = await releaseRound(once(h.sql), round);
    expect(first).toMatchObject({ status: "ok", counts: { pending: 1, running: 2 } });
    const child = children[0] as string;

    let locked!: () => void;
    const hasLock = new Promise<void>((r) => (locked = r));
    let go!: () => void;
    const gate = new Promise<void>((r) => (go = r));
    // The start's order: the child's row first, then the UPDATE that moves it from QUEUED to RUNNING.
    const start = once(h.sql).transaction(async (tx) => {
      await tx.query`SELECT id FROM jobs WHERE id = ${child} FOR UPDATE`;
      locked();
      await gate;
      return tx.execute`UPDATE jobs SET state = 'RUNNING', attempt = 1, started_at = NOW(3) WHERE id = ${child} AND state = 'QUEUED'`;
    });
    await hasLock;
    const second = releaseRound(once(h.sql), round);
    // Long enough for the round to be waiting on the child's row.
    await new Promise((r) => setTimeout(r, 300));
    go();
    const [started, released] = await Promise.allSettled([start, second]);
    expect(started).toEqual({ status: "fulfilled", value: 1 });
    expect(released).toMatchObject({ status: "fulfilled", value: { status: "ok", counts: { pending: 1, running: 2 } } });
  });
});
