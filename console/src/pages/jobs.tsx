// The jobs page: filters (state, kind, account, creation time) kept in the URL, newest first, refreshed every few
// seconds, and the rows of running jobs updated as they change through WatchJob.
import { useEffect, useState } from "preact/hooks";
import { Badge, Empty, ErrorNote, PageHeader } from "../components/common";
import { useSession } from "../context";
import { ago, between, shortId } from "../format";
import type { Job, ListJobsResponse } from "../gen/dispatcher/v1/jobs";
import { useLoad } from "../hooks";
import { ended, stateName, STATES, stateValue, useWatchJobs } from "../jobs-model";
import { href, navigate } from "../router";

const PAGE_SIZE = 50;
const REFRESH_MS = 5_000;

/** <input type="datetime-local"> value (local time, minutes) ⇄ Date. */
const fromLocal = (value: string | null): Date | undefined => (value ? new Date(value) : undefined);

export function JobsPage({ query }: { query: URLSearchParams }) {
  const { clients } = useSession();
  const filters = {
    state: query.get("state") ?? "",
    kind: query.get("kind") ?? "",
    account: query.get("account") ?? "",
    after: query.get("after") ?? "",
    before: query.get("before") ?? "",
  };
  const [extra, setExtra] = useState<{ jobs: Job[]; token: string } | undefined>(undefined);
  const [live, setLive] = useState<Record<string, Job>>({});
  const request = (pageToken = "") => ({
    pageSize: PAGE_SIZE,
    pageToken,
    state: stateValue(filters.state),
    kind: filters.kind,
    accountId: filters.account,
    createdAfter: fromLocal(filters.after),
    createdBefore: fromLocal(filters.before),
  });
  const key = JSON.stringify(filters);
  // While more pages are shown the list holds still; the first page alone refreshes.
  const list = useLoad((signal) => clients.jobs.listJobs(request(), { signal }), [clients, key], extra ? 0 : REFRESH_MS);
  const accounts = useLoad((signal) => clients.accounts.listAccounts({ pageSize: 1000 }, { signal }), [clients]);
  useEffect(() => {
    setExtra(undefined);
    setLive({});
  }, [key]);

  const shown: Job[] = [...(list.data?.jobs ?? []), ...(extra?.jobs ?? [])].map((j) => live[j.id] ?? j);
  useWatchJobs(
    clients,
    shown.filter((j) => !ended(j)).map((j) => j.id),
    (m) => m.job && setLive((prev) => ({ ...prev, [m.job?.id as string]: m.job as Job })),
  );
  const next = extra ? extra.token : list.data?.nextPageToken;
  const more = async (): Promise<void> => {
    const page: ListJobsResponse = await clients.jobs.listJobs(request(next ?? ""));
    setExtra({ jobs: [...(extra?.jobs ?? []), ...page.jobs], token: page.nextPageToken });
  };
  const set = (name: string, value: string): void => navigate(href(["jobs"], { ...filters, [name]: value }));
  const kinds = [...new Set(shown.map((j) => j.kind))].sort();

  return (
    <section>
      <PageHeader title="Jobs">
        <span class="muted">{extra ? "paused while more pages are shown" : `refreshed every ${REFRESH_MS / 1000} s; running jobs live`}</span>
      </PageHeader>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          State
          <select name="state" value={filters.state} onChange={(e) => set("state", (e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {STATES.map((s) => (
              <option value={s}>{s.toLowerCase()}</option>
            ))}
          </select>
        </label>
        <label>
          Kind
          <input name="kind" list="job-kinds" value={filters.kind} placeholder="any" onChange={(e) => set("kind", (e.target as HTMLInputElement).value.trim())} />
          <datalist id="job-kinds">
            {kinds.map((k) => (
              <option value={k} />
            ))}
          </datalist>
        </label>
        <label>
          Account
          <select name="account" value={filters.account} onChange={(e) => set("account", (e.target as HTMLSelectElement).value)}>
            <option value="">any</option>
            {(accounts.data?.accounts ?? []).map((a) => (
              <option value={a.id}>{a.name}</option>
            ))}
          </select>
        </label>
        <label>
          Created after
          <input name="after" type="datetime-local" value={filters.after} onChange={(e) => set("after", (e.target as HTMLInputElement).value)} />
        </label>
        <label>
          before
          <input name="before" type="datetime-local" value={filters.before} onChange={(e) => set("before", (e.target as HTMLInputElement).value)} />
        </label>
        {Object.values(filters).some(Boolean) ? (
          <a class="button" href="#/jobs">
            Clear
          </a>
        ) : null}
      </form>
      <ErrorNote error={list.error} />
      {list.data && shown.length === 0 ? <Empty>No job matches these filters.</Empty> : null}
      {shown.length > 0 ? (
        <table class="grid jobs">
          <thead>
            <tr>
              <th>Job</th>
              <th>Kind</th>
              <th>State</th>
              <th>Progress</th>
              <th>Resource</th>
              <th>Requested by</th>
              <th>Created</th>
              <th>Took</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((j) => (
              <tr key={j.id} data-job-id={j.id} class="clickable" onClick={() => navigate(href(["jobs", j.id]))}>
                <td class="mono">
                  <a href={href(["jobs", j.id])} title={j.id}>
                    {shortId(j.id)}
                  </a>
                </td>
                <td>{j.kind}</td>
                <td>
                  <Badge value={stateName(j.state)} />
                  {j.attempt > 1 ? <span class="muted"> attempt {j.attempt}</span> : null}
                </td>
                <td>
                  <progress max={100} value={j.progressPercent} title={j.progressMessage} />
                </td>
                <td class="mono">{j.resource ? `${j.resource.type} ${shortId(j.resource.id)}` : "—"}</td>
                <td class="mono" title={j.requestedBy}>
                  {shortId(j.requestedBy)}
                </td>
                <td title={j.createTime?.toISOString()}>{ago(j.createTime)}</td>
                <td>{between(j.startTime, j.endTime)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {next ? (
        <button type="button" onClick={() => void more()}>
          Load more
        </button>
      ) : null}
    </section>
  );
}
