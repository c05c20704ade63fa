// Group commit of job creation (JobService.createJob without a caller's transaction): creates that arrive together
// share one transaction, and each still gets exactly its own job, "created" event and outbox row; a create whose
// effect fails, or whose idempotency key repeats, is settled on its own without taking the others down.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openHarness, principal, type JobsHarness } from "./support.js";

let h: JobsHarness;
beforeAll(async () => {
  h = await openHarness("jobs_create_batch", { relay: false, server: false });
});
afterAll(() => h?.close());

const note = (text: string, extra: Record<string, unknown> = {}) => ({ kind: "note", payload: { text }, requester: principal("reader-token"), ...extra });

async function rowsOf(jobId: string): Promise<{ events: number; outbox: number; msgIds: string[] }> {
  const events = await h.db.jobEvent.count({ where: { jobId } });
  const outbox = await h.db.outboxEntry.findMany({ where: { jobId } });
  return { events, outbox: outbox.length, msgIds: outbox.map((o) => o.msgId) };
}

describe("createJob, many at once", () => {
  it("gives each concurrent create its own job, created event and outbox row", async () => {
    const created = await Promise.all(Array.from({ length: 40 }, (_, i) => h.jobs.createJob(note(`c${i}`))));
    expect(new Set(created.map((c) => c.job.id)).size).toBe(40);
    for (const [i, c] of created.entries()) {
      expect(c.created).toBe(true);
      expect(c.job).toMatchObject({ state: "QUEUED", payload: { text: `c${i}` } });
      expect(await rowsOf(c.job.id)).toEqual({ events: 1, outbox: 1, msgIds: [`${c.job.id}:1`] });
      expect(await h.jobs.getJob(principal("reader-token"), c.job.id)).toMatchObject({ id: c.job.id, payload: { text: `c${i}` } });
    }
  });

  it("a failing effect fails its own create only; the others commit with their effects", async () => {
    const seen: string[] = [];
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        h.jobs.createJob(
          note(`e${i}`, {
            effects: async (tx: Parameters<NonNullable<Parameters<JobsHarness["jobs"]["createJob"]>[0]["effects"]>>[0], job: { id: string }) => {
              if (i === 3) throw new Error("effect refused");
              await tx.execute`UPDATE jobs SET progress_message = ${`effect of e${i}`} WHERE id = ${job.id}`;
              seen.push(job.id);
            },
          }),
        ),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "rejected", "fulfilled", "fulfilled"]);
    expect(String((results[3] as PromiseRejectedResult).reason)).toMatch(/effect refused/);
    for (const [i, r] of results.entries()) {
      if (r.status !== "fulfilled") continue;
      const job = await h.db.job.findUniqueOrThrow({ where: { id: r.value.job.id } });
      expect(job.progressMessage).toBe(`effect of e${i}`);
      expect(await rowsOf(job.id)).toMatchObject({ events: 1, outbox: 1 });
    }
    expect(await h.db.job.count({ where: { payload: { equals: { text: "e3" } } } })).toBe(0);
  });

  it("repeated idempotency keys among others in one burst: one job per key, the rest created once each", async () => {
    const calls = [
      note("k-a", { idempotencyKey: "burst-1" }),
      note("plain-1"),
      note("k-b", { idempotencyKey: "burst-1" }),
      note("plain-2"),
      note("k-c", { idempotencyKey: "burst-1" }),
    ];
    const out = await Promise.all(calls.map((c) => h.jobs.createJob(c)));
    const keyed = [out[0]!, out[2]!, out[4]!];
    expect(new Set(keyed.map((c) => c.job.id)).size).toBe(1);
    expect(keyed.filter((c) => c.created)).toHaveLength(1);
    expect(out[1]!.created && out[3]!.created).toBe(true);
    expect(await h.db.job.count({ where: { idempotencyKey: "burst-1" } })).toBe(1);
    expect(await rowsOf(keyed[0]!.job.id)).toMatchObject({ events: 1, outbox: 1 });
  });
});
