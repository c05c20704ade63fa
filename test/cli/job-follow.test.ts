// The shared --wait follower: what servers, network, volumes and files commands print while they follow a job —
// each command's lines as before it was shared — and its exit codes.
import { describe, expect, it } from "vitest";
import type { DispatcherClients } from "../../src/client/index.js";
import { reportJob, type FollowLines } from "../../src/commands/job-follow.js";
import { Job, JobState, WatchJobResponse } from "../../src/gen/proto/dispatcher/v1/jobs.js";

const AT = new Date("2026-12-04T10:00:00.000Z");
const at = "2026-12-04 10:00:00Z";
const job = (state: JobState, extra: Partial<Job> = {}): Job => Job.fromPartial({ id: "J1", kind: "server.launch", state, ...extra });
const event = (type: string, toState: JobState, message = "") => ({ jobId: "J1", sequence: "1", type, fromState: 0, toState, attempt: 1, actor: "w", message, time: AT });

const STREAM: WatchJobResponse[] = [
  WatchJobResponse.fromPartial({ job: job(JobState.JOB_STATE_RUNNING, { progressPercent: 40, progressMessage: "booting" }), event: event("started", JobState.JOB_STATE_RUNNING) }),
  WatchJobResponse.fromPartial({ job: job(JobState.JOB_STATE_SUCCEEDED, { progressPercent: 100 }), event: event("succeeded", JobState.JOB_STATE_SUCCEEDED, "seen running") }),
];

function clients(stream: WatchJobResponse[]): DispatcherClients {
  return {
    jobs: {
      watchJob: async function* () {
        yield* stream;
      },
    },
  } as unknown as DispatcherClients;
}

async function follow(lines: FollowLines | undefined, stream = STREAM, options = { wait: true }): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t) };
  const code = await reportJob("servers launch", clients(stream), io, options, job(JobState.JOB_STATE_QUEUED), {}, lines);
  return { code, out, err };
}

describe("reportJob --wait", () => {
  it("prints a line per event by default (volumes, snapshots, images)", async () => {
    const r = await follow(undefined);
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      `server.launch job J1: QUEUED\n  ${at}  started      RUNNING     booting\n  ${at}  succeeded    SUCCEEDED   seen running\nserver.launch job J1: SUCCEEDED\n`,
    );
  });

  it("adds the job's progress with \"percent\" (servers, firewalls, addresses, keys)", async () => {
    const r = await follow("percent");
    expect(r.out).toBe(`server.launch job J1: QUEUED\n  ${at}  started      RUNNING    40%  booting\n  ${at}  succeeded    SUCCEEDED  100%  seen running\nserver.launch job J1: SUCCEEDED\n`);
  });

  it("prints only the first and last lines with \"ends\" (files buckets)", async () => {
    const r = await follow("ends");
    expect(r.out).toBe("server.launch job J1: QUEUED\nserver.launch job J1: SUCCEEDED\n");
  });

  it("exits 1 naming the command when the stream ends before the job, and 1 when the job failed", async () => {
    const cut = await follow("ends", STREAM.slice(0, 1));
    expect(cut.code).toBe(1);
    expect(cut.err).toBe("dispatcher servers launch: the stream ended before job J1 did\n");
    const failed = await follow("ends", [WatchJobResponse.fromPartial({ job: job(JobState.JOB_STATE_FAILED, { error: { code: "FAILED_PRECONDITION", message: "no capacity" } }) })]);
    expect(failed.code).toBe(1);
    expect(failed.out).toBe("server.launch job J1: QUEUED\nserver.launch job J1: FAILED (FAILED_PRECONDITION: no capacity)\n");
  });

  it("without --wait prints the job and how to follow it, and exits 0", async () => {
    const r = await follow("percent", STREAM, { wait: false });
    expect(r).toEqual({ code: 0, out: "server.launch job J1: QUEUED  (follow it: dispatcher jobs watch J1)\n", err: "" });
  });
});
