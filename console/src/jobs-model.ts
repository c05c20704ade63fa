// What the job pages share: state names, which states have ended, and the live view of a set of jobs through WatchJob.
import { useEffect, useRef } from "preact/hooks";
import type { Clients } from "./api/clients";
import { JobState, type Job, type WatchJobResponse } from "./gen/dispatcher/v1/jobs";

export const STATES = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"] as const;

export function stateName(state: JobState): string {
  return (JobState[state] ?? "UNSPECIFIED").replace("JOB_STATE_", "");
}

export function stateValue(name: string | null): JobState | undefined {
  const value = (JobState as unknown as Record<string, number>)[`JOB_STATE_${name ?? ""}`];
  return value === undefined ? undefined : (value as JobState);
}

export function ended(job: Job): boolean {
  return job.state === JobState.JOB_STATE_SUCCEEDED || job.state === JobState.JOB_STATE_FAILED || job.state === JobState.JOB_STATE_CANCELLED;
}

/**
 * Streams of WatchJob for the given jobs (those not ended), each message handed to `onUpdate`. A browser holds six
 * HTTP/1.1 connections per host and each stream keeps one: at most `max` streams run, leaving room for other calls.
 */
export function useWatchJobs(clients: Clients, ids: string[], onUpdate: (m: WatchJobResponse) => void, max = 3): void {
  const handler = useRef(onUpdate);
  handler.current = onUpdate;
  const key = ids.slice(0, max).join(",");
  useEffect(() => {
    if (!key) return;
    const controller = new AbortController();
    for (const id of key.split(",")) {
      void (async () => {
        try {
          for await (const m of clients.jobs.watchJob({ id }, { signal: controller.signal })) handler.current(m);
        } catch {
          // The list's own refresh catches up; a stream that broke is not worth an error on the page.
        }
      })();
    }
    return () => controller.abort();
  }, [clients, key]);
}
