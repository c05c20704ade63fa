// One job: what it is and where it stands (live through WatchJob), its history of events, and its trace as a
// waterfall from the dispatcher's span store, with a link to the external trace UI when one is configured.
import { useEffect, useState } from "preact/hooks";
import type { RpcError } from "../api/grpc-web";
import { Badge, Empty, ErrorNote, PageHeader } from "../components/common";
import { Waterfall } from "../components/waterfall";
import { useSession } from "../context";
import { between, time } from "../format";
import type { Job, JobEvent } from "../gen/dispatcher/v1/jobs";
import { TraceStorage, type GetJobTraceResponse } from "../gen/dispatcher/v1/traces";
import { useLoad } from "../hooks";
import { ended, stateName } from "../jobs-model";
import { href } from "../router";

/** Spans end a moment after the transition that they lead to is committed: read the trace again a little later. */
const TRACE_SETTLE_MS = 1_200;

export function JobPage({ id }: { id: string }) {
  const { clients } = useSession();
  const [job, setJob] = useState<Job | undefined>(undefined);
  const [events, setEvents] = useState<JobEvent[]>([]);
  const [error, setError] = useState<RpcError | undefined>(undefined);
  const [version, setVersion] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    const { signal } = controller;
    const known = new Map<number, JobEvent>();
    let last = 0;
    const merge = (more: JobEvent[]): void => {
      for (const e of more) known.set(Number(e.sequence), e);
      const sorted = [...known.entries()].sort(([a], [b]) => a - b);
      last = sorted.at(-1)?.[0] ?? 0;
      setEvents(sorted.map(([, e]) => e));
    };
    const history = async (): Promise<void> => merge((await clients.jobs.listJobEvents({ id }, { signal })).events);
    void (async () => {
      try {
        // Watch first, then read the history: an event between the two is in one or the other, never lost. A gap in
        // the stream's sequence (it coalesces what arrives together) is filled from the history again.
        for await (const m of clients.jobs.watchJob({ id }, { signal })) {
          if (m.job) setJob(m.job);
          const event = m.event;
          if (!event) await history();
          else if (Number(event.sequence) === last + 1) merge([event]);
          else await history();
          setVersion((v) => v + 1);
        }
      } catch (err) {
        if (!signal.aborted) setError(err as RpcError);
      }
    })();
    return () => controller.abort();
  }, [clients, id]);

  // The trace again after each change, once the spans of that change have ended. A reload keeps the waterfall shown
  // (and the span selected in it) until the new answer replaces it.
  const trace = useLoad((signal) => clients.traces.getJobTrace({ jobId: id }, { signal }), [clients, id]);
  const reloadTrace = trace.reload;
  useEffect(() => {
    if (version === 0) return;
    const timer = setTimeout(reloadTrace, TRACE_SETTLE_MS);
    return () => clearTimeout(timer);
  }, [version]);

  if (error && !job) return <ErrorNote error={error} />;
  if (!job) return <p class="loading">Loading job…</p>;
  return (
    <section class="job">
      <PageHeader
        title={
          <>
            {job.kind} <Badge value={stateName(job.state)} />
          </>
        }
      >
        <a href="#/jobs">All jobs</a>
      </PageHeader>
      <JobFacts job={job} />
      <ErrorNote error={error} />
      <h2>Trace</h2>
      <TraceView trace={trace.data} error={trace.error} jobEnded={ended(job)} />
      <h2>Events</h2>
      <table class="grid events-table">
        <thead>
          <tr>
            <th>#</th>
            <th>Time</th>
            <th>Event</th>
            <th>State</th>
            <th>Attempt</th>
            <th>Actor</th>
            <th>Message</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.sequence}>
              <td>{e.sequence}</td>
              <td>{time(e.time)}</td>
              <td>{e.type}</td>
              <td>
                {e.fromState ? `${stateName(e.fromState)} → ` : ""}
                {stateName(e.toState)}
              </td>
              <td>{e.attempt}</td>
              <td class="mono">{e.actor}</td>
              <td>{e.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function JobFacts({ job }: { job: Job }) {
  const resource = job.resource;
  return (
    <dl class="facts">
      <dt>Job</dt>
      <dd class="mono">{job.id}</dd>
      <dt>Attempt</dt>
      <dd>
        {job.attempt} of {job.maxAttempts}
      </dd>
      <dt>Progress</dt>
      <dd>
        <progress max={100} value={job.progressPercent} /> {job.progressPercent}% {job.progressMessage}
      </dd>
      <dt>Resource</dt>
      <dd class="mono">{resource ? resource.type === "server" ? <a href={href(["servers", resource.id])}>server {resource.id}</a> : `${resource.type} ${resource.id}` : "—"}</dd>
      <dt>Requested by</dt>
      <dd class="mono">{job.requestedBy}</dd>
      <dt>Created</dt>
      <dd>{time(job.createTime)}</dd>
      <dt>Ran</dt>
      <dd>
        {time(job.startTime)} → {time(job.endTime)} ({between(job.startTime, job.endTime)})
      </dd>
      {job.deadline ? (
        <>
          <dt>Deadline</dt>
          <dd>{time(job.deadline)}</dd>
        </>
      ) : null}
      <dt>Trace</dt>
      <dd class="mono">{job.traceId || "—"}</dd>
      {job.error ? (
        <>
          <dt>Error</dt>
          <dd class="error-text">
            {job.error.code}: {job.error.message}
          </dd>
        </>
      ) : null}
    </dl>
  );
}

function TraceView({ trace, error, jobEnded }: { trace: GetJobTraceResponse | undefined; error: RpcError | undefined; jobEnded: boolean }) {
  if (error) return <ErrorNote error={error} />;
  if (!trace) return <p class="loading">Loading trace…</p>;
  const link = trace.externalUrl ? (
    <a href={trace.externalUrl} target="_blank" rel="noopener noreferrer">
      Open in the trace UI
    </a>
  ) : null;
  if (trace.storage === TraceStorage.TRACE_STORAGE_EXTERNAL) {
    return <Empty>Traces go to the configured tracing backend, not to the dispatcher. {link ?? "Set telemetry.traceUiUrl to link to it from here."}</Empty>;
  }
  return (
    <>
      <p class="trace-meta">
        {link} {trace.truncated ? <span class="warning">Some spans of this trace were dropped from the store (full or too old).</span> : null}
      </p>
      {trace.spans.length === 0 ? (
        <Empty>
          No spans of this trace are kept{jobEnded ? "" : " yet"}: it may be older than the store keeps, made by roles in other processes (set an OTLP endpoint and
          telemetry.traceUiUrl), or not sampled.
        </Empty>
      ) : (
        <Waterfall spans={trace.spans} />
      )}
    </>
  );
}
