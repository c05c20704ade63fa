// `dispatcher jobs …` against a real server: tables and JSON out, the exit codes, and the errors an operator sees.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildFullProgram } from "../../src/cli.js";
import { runJobsCancel, runJobsList, runJobsRetry, runJobsShow, runJobsWatch, type JobCommandIo } from "../../src/commands/jobs.js";
import { newId } from "../../src/db/ids.js";
import { JobState } from "../../src/gen/proto/dispatcher/v1/jobs.js";
import { openHarness, principal, transition, type JobsHarness } from "./support.js";

let h: JobsHarness;
let address: string;

beforeAll(async () => {
  h = await openHarness("jobs_cli");
  address = h.server?.address as string;
  process.env.DISPATCHER_CLIENT_TOKEN = "admin-token";
});
afterAll(async () => {
  delete process.env.DISPATCHER_CLIENT_TOKEN;
  await h.close();
});

function io(): JobCommandIo & { stdout: () => string; stderr: () => string } {
  let out = "";
  let err = "";
  return { out: (t) => void (out += t), err: (t) => void (err += t), stdout: () => out, stderr: () => err };
}

const newJob = async (text: string) => (await h.jobs.createJob({ kind: "note", payload: { text }, requester: principal("reader-token"), resource: { type: "server", id: "s-1" } })).job;

describe("dispatcher jobs", () => {
  it("ls prints a table, --json an object, and filters by state", async () => {
    const a = await newJob("a");
    const b = await newJob("b");
    await transition(h, b.id, "started", "QUEUED", "RUNNING");
    const t = io();
    expect(await runJobsList({ address, limit: 50, io: t })).toBe(0);
    const lines = t.stdout().trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+KIND\s+STATE\s+ATTEMPT\s+PROGRESS\s+REQUESTED BY\s+CREATED\s+RESOURCE$/);
    expect(lines.find((l) => l.startsWith(a.id))).toMatch(/note\s+QUEUED\s+0\/2\s+0%\s+u-read\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+server\/s-1/);
    const j = io();
    expect(await runJobsList({ address, limit: 50, state: JobState.JOB_STATE_RUNNING, json: true, io: j })).toBe(0);
    const parsed = JSON.parse(j.stdout()) as { jobs: { id: string; state: string }[]; nextPageToken: string };
    expect(parsed.jobs.map((x) => x.id)).toEqual([b.id]);
    expect(parsed.jobs[0]?.state).toBe("JOB_STATE_RUNNING");
  });

  it("ls pages with --all", async () => {
    for (let i = 0; i < 5; i++) await newJob(`p${i}`);
    const t = io();
    await runJobsList({ address, limit: 2, json: true, io: t });
    const first = JSON.parse(t.stdout()) as { jobs: unknown[]; nextPageToken: string };
    expect(first.jobs.length).toBe(2);
    expect(first.nextPageToken).not.toBe("");
    const all = io();
    await runJobsList({ address, limit: 2, all: true, json: true, io: all });
    const every = JSON.parse(all.stdout()) as { jobs: { id: string }[]; nextPageToken: string };
    expect(every.jobs.length).toBe(await h.db.job.count());
    expect(every.nextPageToken).toBe("");
  });

  it("ls filters by account, by when jobs were created and by who asked", async () => {
    const account = newId();
    const ofAccount = (await h.jobs.createJob({ kind: "note", payload: { text: "acct" }, requester: principal("admin-token"), resource: { type: "account", id: account } })).job;
    await new Promise((r) => setTimeout(r, 5));
    const since = new Date();
    const later = await newJob("later");
    const ids = async (options: Partial<Parameters<typeof runJobsList>[0]>): Promise<string[]> => {
      const t = io();
      expect(await runJobsList({ address, limit: 1000, json: true, io: t, ...options }), t.stderr()).toBe(0);
      return (JSON.parse(t.stdout()) as { jobs: { id: string }[] }).jobs.map((j) => j.id);
    };
    expect(await ids({ account })).toEqual([ofAccount.id]);
    expect(await ids({ since })).toEqual([later.id]);
    expect(await ids({ until: since })).toContain(ofAccount.id);
    expect(await ids({ until: since })).not.toContain(later.id);
    expect(await ids({ since, requestedBy: "u-read" })).toEqual([later.id]);
    expect(await ids({ since, requestedBy: "u-admin" })).toEqual([]);
  });

  it("show prints the job and its history; unknown ids exit 1 with NOT_FOUND", async () => {
    const job = await newJob("shown");
    const t = io();
    expect(await runJobsShow(job.id, { address, io: t })).toBe(0);
    expect(t.stdout()).toContain(`id:              ${job.id}`);
    expect(t.stdout()).toMatch(/1 {2}\S+ \S+ {2}created\s+QUEUED\s+attempt 0 {2}by u-read/);
    const missing = io();
    expect(await runJobsShow("01JDQ3Z5K8W8G4QF2Q6N2D7M9T", { address, io: missing })).toBe(1);
    expect(missing.stderr()).toBe('dispatcher jobs show: NOT_FOUND: job "01JDQ3Z5K8W8G4QF2Q6N2D7M9T" not found\n');
  });

  it("cancel, retry and replay", async () => {
    const job = await newJob("c");
    const t = io();
    expect(await runJobsCancel(job.id, { address, reason: "testing", io: t })).toBe(0);
    expect(t.stdout()).toBe(`${job.id} cancelled\n`);
    const again = io();
    expect(await runJobsCancel(job.id, { address, io: again })).toBe(1);
    expect(again.stderr()).toMatch(/FAILED_PRECONDITION/);
    const r = io();
    expect(await runJobsRetry(job.id, { address, io: r, verb: "replayed" })).toBe(0);
    expect(r.stdout()).toBe(`${job.id} replayed: QUEUED, up to 4 attempts in all\n`);
  });

  it("watch follows a job to its end; the exit code says how it ended", async () => {
    const job = await newJob("w");
    const t = io();
    const watching = runJobsWatch(job.id, { address, io: t, json: true });
    await new Promise((r) => setTimeout(r, 200));
    await transition(h, job.id, "started", "QUEUED", "RUNNING");
    await transition(h, job.id, "failed", "RUNNING", "FAILED");
    expect(await watching).toBe(1);
    const lines = t.stdout().trim().split("\n").map((l) => JSON.parse(l) as { job: { state: string }; event: { type: string } | null });
    expect(lines.map((l) => l.event?.type ?? null)).toEqual([null, "started", "failed"]);
  });

  it("is wired into the program, and a missing API key is a usage error", async () => {
    let code = -1;
    const program = await buildFullProgram((c) => (code = c));
    const token = process.env.DISPATCHER_CLIENT_TOKEN;
    delete process.env.DISPATCHER_CLIENT_TOKEN;
    const writes: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => (writes.push(String(chunk)), true)) as typeof process.stderr.write;
    try {
      await program.parseAsync(["jobs", "--address", address, "ls"], { from: "user" });
    } finally {
      process.stderr.write = write;
      process.env.DISPATCHER_CLIENT_TOKEN = token;
    }
    expect(code).toBe(2);
    expect(writes.join("")).toMatch(/no API key: set DISPATCHER_CLIENT_TOKEN/);
  });
});
