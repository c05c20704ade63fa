// The queues page: how work flows to the workers — the outbox not yet published and the age of its oldest row, the
// workers' JetStream consumer (waiting, in flight, redelivered) — and the dead letters of the jobs in scope, with a
// replay button for those whose roles allow it (the server checks again: a reader's replay is refused).
import { useState } from "preact/hooks";
import { RpcError } from "../api/grpc-web";
import { Empty, ErrorNote, PageHeader } from "../components/common";
import { useSession } from "../context";
import { ago, duration, shortId, time } from "../format";
import type { DeadLetter, GetQueueStatsResponse } from "../gen/dispatcher/v1/queues";
import { useLoad } from "../hooks";
import { mayReplay } from "../permissions";
import { href } from "../router";

const REFRESH_MS = 5_000;
/** An outbox row older than this means the relay is not keeping up (or not running). */
const OUTBOX_LAG_WARN_MS = 30_000;

export function QueuesPage({ query }: { query: URLSearchParams }) {
  const { clients, me } = useSession();
  const includeReplayed = query.get("replayed") === "1";
  const stats = useLoad((signal) => clients.queues.getQueueStats({}, { signal }), [clients], REFRESH_MS);
  const letters = useLoad((signal) => clients.queues.listDeadLetters({ pageSize: 200, includeReplayed }, { signal }), [clients, includeReplayed], REFRESH_MS);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string; jobId?: string } | undefined>(undefined);
  const [busy, setBusy] = useState("");
  const allowed = mayReplay(me.roles);

  const replay = async (d: DeadLetter): Promise<void> => {
    setBusy(d.id);
    try {
      // One key per dead letter: a second click (or a retry after a lost answer) returns the same job.
      const out = await clients.queues.replayDeadLetter({ id: d.id, idempotencyKey: `console-replay-${d.id}` });
      setOutcome({ ok: true, text: `Job ${shortId(d.jobId)} (${d.kind}) is queued again.`, jobId: out.job?.id ?? d.jobId });
      letters.reload();
      stats.reload();
    } catch (err) {
      setOutcome({ ok: false, text: err instanceof RpcError ? `${err.codeName}: ${err.message}` : String(err) });
    } finally {
      setBusy("");
    }
  };

  return (
    <section>
      <PageHeader title="Queues">
        <span class="muted">refreshed every {REFRESH_MS / 1000} s</span>
      </PageHeader>
      <ErrorNote error={stats.error} />
      {stats.data ? <Figures stats={stats.data} /> : null}

      <div class="section-header">
        <h2>Dead letters</h2>
        <label class="toggle">
          <input
            type="checkbox"
            name="replayed"
            checked={includeReplayed}
            onChange={(e) => {
              window.location.hash = (e.target as HTMLInputElement).checked ? "#/queues?replayed=1" : "#/queues";
            }}
          />{" "}
          show replayed
        </label>
      </div>
      <p class="muted">
        Jobs whose attempts ran out, with their payload kept. {allowed ? "Replay runs the job again with a fresh set of attempts." : "Replaying one needs the operator or admin role."}
      </p>
      {outcome ? (
        <p class={outcome.ok ? "notice-ok" : "error"} role={outcome.ok ? "status" : "alert"} data-testid="replay-outcome">
          {outcome.text} {outcome.jobId ? <a href={href(["jobs", outcome.jobId])}>Open the job</a> : null}
        </p>
      ) : null}
      <ErrorNote error={letters.error} />
      {letters.data && letters.data.deadLetters.length === 0 ? <Empty>{includeReplayed ? "No dead letters." : "No dead letter waits."}</Empty> : null}
      {(letters.data?.deadLetters.length ?? 0) > 0 ? (
        <table class="grid dead-letters">
          <thead>
            <tr>
              <th>Dead letter</th>
              <th>Job</th>
              <th>Kind</th>
              <th>Attempt</th>
              <th>Since</th>
              <th>Replayed</th>
              {allowed ? <th /> : null}
              <th>Last error</th>
            </tr>
          </thead>
          <tbody>
            {letters.data?.deadLetters.map((d) => (
              <tr key={d.id} data-dead-letter-id={d.id}>
                <td class="mono" title={d.id}>
                  {shortId(d.id)}
                </td>
                <td class="mono">
                  <a href={href(["jobs", d.jobId])} title={d.jobId}>
                    {shortId(d.jobId)}
                  </a>
                </td>
                <td>{d.kind}</td>
                <td>{d.attempt}</td>
                <td title={d.createTime?.toISOString()}>{ago(d.createTime)}</td>
                <td>{d.replayTime ? time(d.replayTime) : "—"}</td>
                {allowed ? (
                  <td>
                    {d.replayTime ? null : (
                      <button type="button" class="replay" disabled={busy !== ""} onClick={() => void replay(d)}>
                        {busy === d.id ? "Replaying…" : "Replay"}
                      </button>
                    )}
                  </td>
                ) : null}
                <td class="error-text">{d.lastError}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {letters.data?.nextPageToken ? <p class="muted">The newest 200 are shown.</p> : null}
    </section>
  );
}

function Figures({ stats }: { stats: GetQueueStatsResponse }) {
  const outbox = stats.outbox;
  const consumer = stats.consumer;
  const ageMs = Number(outbox?.oldestAge?.seconds ?? 0) * 1000 + (outbox?.oldestAge?.nanos ?? 0) / 1e6;
  const backlog = Number(outbox?.backlog ?? 0);
  return (
    <div class="cards">
      <div class={`card${ageMs > OUTBOX_LAG_WARN_MS ? " card-warn" : ""}`} data-testid="outbox">
        <h3>Outbox</h3>
        <p class="figure">{backlog}</p>
        <p class="muted">
          not yet published{backlog > 0 ? `; oldest ${duration(ageMs)}` : ""}
          {Number(outbox?.failed ?? 0) > 0 ? `; ${outbox?.failed} failed at least once` : ""}
        </p>
      </div>
      <div class="card" data-testid="consumer">
        <h3>
          Workers' consumer <span class="muted mono">{consumer?.consumer}</span>
        </h3>
        {consumer?.present ? (
          <dl class="counts">
            <dt>waiting for a worker</dt>
            <dd>{consumer.pending}</dd>
            <dt>in flight</dt>
            <dd>{consumer.ackPending}</dd>
            <dt>redelivered</dt>
            <dd class={Number(consumer.redelivered) > 0 ? "warning" : ""}>{consumer.redelivered}</dd>
            <dt>idle worker pulls</dt>
            <dd>{consumer.waiting}</dd>
          </dl>
        ) : (
          <p class="muted">No worker has started yet: {consumer?.streamMessages ?? 0} messages wait in stream {consumer?.stream}.</p>
        )}
      </div>
      <div class={`card${Number(stats.deadLetters) > 0 ? " card-bad" : ""}`} data-testid="dead-letter-count">
        <h3>Dead letters</h3>
        <p class="figure">{stats.deadLetters}</p>
        <p class="muted">waiting for a replay (all jobs)</p>
      </div>
    </div>
  );
}
