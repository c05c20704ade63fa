// WatchJob on a real server: the current state first, then every transition in order, ending at the terminal one;
// woken by the doorbell (not the safety-net interval, set to a minute here) and scoped like GetJob.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DispatcherClients } from "../../src/client/index.js";
import { DiagnosticOutcome, JobState, type WatchJobResponse } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { openHarness, principal, transition, type JobsHarness } from "./support.js";
import { until } from "../support/poll.js";

let h: JobsHarness;
let admin: DispatcherClients;

beforeAll(async () => {
  h = await openHarness("jobs_watch", { watchIntervalMs: 60_000 });
  admin = h.client("admin-token");
});
afterAll(() => h.close());

/** Collects a watch in the background; `next(n)` waits until n messages arrived. */
function collect(stream: AsyncIterable<WatchJobResponse>) {
  const got: WatchJobResponse[] = [];
  let error: unknown;
  const done = (async () => {
    try {
      for await (const m of stream) got.push(m);
    } catch (err) {
      error = err;
    }
  })();
  const next = async (n: number, timeoutMs = 5_000) => {
    const arrived = () => {
      if (error) throw error as Error;
      return got.length >= n;
    };
    await until(arrived, timeoutMs, `${n} watch messages`, () => `(had ${got.length})`);
  };
  return { got, done, next, error: () => error };
}

describe("WatchJob", () => {
  it("delivers every transition in order, each with the job as it stands, and ends at the terminal one", async () => {
    const { job } = await admin.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_FAIL_RETRYABLE });
    const id = job?.id as string;
    const w = collect(admin.jobs.watchJob({ id }, { deadlineMs: 20_000 }));
    await w.next(1);
    expect(w.got[0]?.event).toBeUndefined();
    expect(w.got[0]?.job?.state).toBe(JobState.JOB_STATE_QUEUED);
    // One transition at a time, each delivered (by the doorbell) before the next is made.
    const steps = [
      ["started", "QUEUED", "RUNNING", 1],
      ["retry_scheduled", "RUNNING", "QUEUED", 1],
      ["started", "QUEUED", "RUNNING", 2],
      ["succeeded", "RUNNING", "SUCCEEDED", 2],
    ] as const;
    for (const [i, [type, from, to, attempt]] of steps.entries()) {
      await transition(h, id, type, from, to, attempt);
      await w.next(i + 2, 3_000);
    }
    await w.done;
    expect(w.error()).toBeUndefined();
    expect(w.got.slice(1).map((m) => [m.event?.type, m.event?.sequence, m.event?.toState, m.job?.state, m.event?.attempt])).toEqual([
      ["started", "2", JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_RUNNING, 1],
      ["retry_scheduled", "3", JobState.JOB_STATE_QUEUED, JobState.JOB_STATE_QUEUED, 1],
      ["started", "4", JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_RUNNING, 2],
      ["succeeded", "5", JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_SUCCEEDED, 2],
    ]);
  });

  it("a burst of transitions arrives complete and in order", async () => {
    const { job } = await admin.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED });
    const id = job?.id as string;
    const w = collect(admin.jobs.watchJob({ id }, { deadlineMs: 20_000 }));
    await w.next(1);
    await transition(h, id, "started", "QUEUED", "RUNNING", 1);
    for (let p = 0; p < 20; p++) await transition(h, id, "progress", "RUNNING", "RUNNING", 1);
    await transition(h, id, "failed", "RUNNING", "FAILED", 1);
    await w.done;
    expect(w.error()).toBeUndefined();
    const seqs = w.got.slice(1).map((m) => Number(m.event?.sequence));
    expect(seqs).toEqual(Array.from({ length: 22 }, (_, i) => i + 2));
    expect(w.got.at(-1)?.job?.state).toBe(JobState.JOB_STATE_FAILED);
  });

  it("a finished job yields its state once and ends; unknown or another user's job → NOT_FOUND", async () => {
    const { job } = await admin.jobs.runDiagnosticJob({ outcome: DiagnosticOutcome.DIAGNOSTIC_OUTCOME_SUCCEED });
    await admin.jobs.cancelJob({ id: job?.id });
    const all: WatchJobResponse[] = [];
    for await (const m of admin.jobs.watchJob({ id: job?.id }, { deadlineMs: 5_000 })) all.push(m);
    expect(all.map((m) => m.job?.state)).toEqual([JobState.JOB_STATE_CANCELLED]);

    const reader = h.client("reader-token");
    const other = await h.jobs.createJob({ kind: "note", payload: { text: "x" }, requester: principal("reader2-token") });
    for (const id of [other.job.id, "01JDQ3Z5K8W8G4QF2Q6N2D7M9T"]) {
      const w = collect(reader.jobs.watchJob({ id }, { deadlineMs: 5_000 }));
      await w.done;
      expect(w.got).toEqual([]);
      expect((w.error() as { codeName?: string }).codeName).toBe("NOT_FOUND");
    }
  });

  it("without doorbells, the periodic read still delivers", async () => {
    const slow = await openHarness("jobs_watch_poll", { relay: false, server: false, watchIntervalMs: 100 });
    try {
      const { job } = await slow.jobs.createJob({ kind: "note", payload: { text: "x" }, requester: principal("reader-token") });
      const ac = new AbortController();
      const seen: string[] = [];
      const run = (async () => {
        for await (const u of slow.jobs.watchJob(principal("reader-token"), job.id, ac.signal)) seen.push(u.event?.type ?? "-");
      })();
      await new Promise((r) => setTimeout(r, 100));
      // Committed without ringing the doorbell.
      await slow.db.$transaction(async (tx) => {
        await tx.$executeRaw`UPDATE jobs SET state = 'SUCCEEDED' WHERE id = ${job.id}`;
        await tx.$executeRaw`INSERT INTO job_events (job_id, sequence, type, from_state, to_state, attempt, actor) VALUES (${job.id}, 2, 'succeeded', 'QUEUED', 'SUCCEEDED', 1, 'w')`;
      });
      await run;
      expect(seen).toEqual(["-", "succeeded"]);
    } finally {
      await slow.close();
    }
  });
});
