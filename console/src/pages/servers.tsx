// Servers and their agents: the servers in the caller's scope with their state and their agent's presence (all of them,
// or those whose agent is in one state), refreshed every few seconds, under the whole fleet's counts; one server with
// its agent (last seen, missed pings), its history and its jobs.
import { Badge, Empty, ErrorNote, PageHeader } from "../components/common";
import { useSession } from "../context";
import { ago, enumName, micros, shortId, time } from "../format";
import { AgentConnectionState } from "../gen/dispatcher/v1/agents";
import { AgentState, ServerState } from "../gen/dispatcher/v1/servers";
import { useLoad } from "../hooks";
import { stateName } from "../jobs-model";
import { href, navigate } from "../router";

const REFRESH_MS = 5_000;
const NOT_FOUND = 5;

const serverState = (s: ServerState): string => enumName(ServerState, s, "SERVER_STATE_");
const agentState = (s: AgentState): string => enumName(AgentState, s, "AGENT_STATE_");

const PAGE_SIZE = 1000;
/** The agent filter's choices, as the URL names them. */
const AGENT_FILTERS: Readonly<Record<string, AgentState>> = {
  connected: AgentState.AGENT_STATE_CONNECTED,
  unreachable: AgentState.AGENT_STATE_UNREACHABLE,
  pending: AgentState.AGENT_STATE_PENDING,
  none: AgentState.AGENT_STATE_NONE,
};

/** "12 running of 40 · agents: 30 connected, 2 unreachable, 0 pending", from counts by state. */
function fleetLine(states: Record<string, number>, agents: Record<string, number>): string {
  const notTerminated = Object.entries(states).reduce((sum, [state, n]) => sum + (state === "TERMINATED" ? 0 : n), 0);
  return `${states.RUNNING ?? 0} running of ${notTerminated} · agents: ${agents.CONNECTED ?? 0} connected, ${agents.UNREACHABLE ?? 0} unreachable, ${agents.PENDING ?? 0} pending`;
}

const tally = <T,>(items: readonly T[], keyOf: (item: T) => string, countOf: (item: T) => number = () => 1): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const item of items) out[keyOf(item)] = (out[keyOf(item)] ?? 0) + countOf(item);
  return out;
};

export function ServersPage({ query }: { query: URLSearchParams }) {
  const { clients } = useSession();
  const agentFilter = query.get("agent") ?? "";
  const servers = useLoad(
    (signal) => clients.servers.listServers({ pageSize: PAGE_SIZE, agentState: AGENT_FILTERS[agentFilter] ?? AgentState.AGENT_STATE_UNSPECIFIED }, { signal }),
    [clients, agentFilter],
    REFRESH_MS,
  );
  // The whole fleet's counts (a page holds at most PAGE_SIZE servers); without metrics.read, the page's own.
  const fleet = useLoad((signal) => clients.analytics.fleetSummary({}, { signal }), [clients], REFRESH_MS);
  const accounts = useLoad((signal) => clients.accounts.listAccounts({ pageSize: 1000 }, { signal }), [clients]);
  const accountName = (id: string): string => accounts.data?.accounts.find((a) => a.id === id)?.name ?? shortId(id);
  const list = servers.data?.servers ?? [];
  const summary = fleet.data
    ? fleetLine(tally(fleet.data.states, (s) => s.state, (s) => Number(s.count)), tally(fleet.data.agents, (a) => a.state, (a) => Number(a.count)))
    : !agentFilter && list.length > 0
      ? fleetLine(tally(list, (s) => serverState(s.state)), tally(list.filter((s) => s.state !== ServerState.SERVER_STATE_TERMINATED), (s) => agentState(s.agentState)))
      : "";

  return (
    <section>
      <PageHeader title="Servers & agents">
        <span class="muted">refreshed every {REFRESH_MS / 1000} s</span>
      </PageHeader>
      {summary ? (
        <p class="summary" data-testid="fleet-summary">
          {summary}
        </p>
      ) : null}
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Agent
          <select name="agent" value={agentFilter} onChange={(e) => navigate(href(["servers"], { agent: (e.target as HTMLSelectElement).value }))}>
            <option value="">any</option>
            {Object.keys(AGENT_FILTERS).map((name) => (
              <option value={name}>{name}</option>
            ))}
          </select>
        </label>
      </form>
      <ErrorNote error={servers.error} />
      {servers.data && list.length === 0 ? <Empty>{agentFilter ? `No servers whose agent is ${agentFilter}.` : "No servers in your accounts."}</Empty> : null}
      {servers.data?.nextPageToken ? <p class="muted">The first {PAGE_SIZE} servers are shown; the counts above are the whole fleet's.</p> : null}
      {list.length > 0 ? (
        <table class="grid">
          <thead>
            <tr>
              <th>Name</th>
              <th>State</th>
              <th>Agent</th>
              <th>Account</th>
              <th>Region</th>
              <th>Product</th>
              <th>Addresses</th>
              <th>Launched</th>
            </tr>
          </thead>
          <tbody>
            {list.map((s) => (
              <tr key={s.id} data-server-id={s.id} class="clickable" onClick={() => navigate(href(["servers", s.id]))}>
                <td>
                  <a href={href(["servers", s.id])}>{s.name || shortId(s.id)}</a>
                </td>
                <td>
                  <Badge value={serverState(s.state)} scope="server" />
                </td>
                <td>
                  <Badge value={agentState(s.agentState)} />
                </td>
                <td>{accountName(s.accountId)}</td>
                <td>{s.regionId}</td>
                <td>{s.productId}</td>
                <td class="mono">{[...(s.addresses?.public ?? []), ...(s.addresses?.private ?? [])].join(", ") || "—"}</td>
                <td>{ago(s.launchTime)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

export function ServerPage({ id }: { id: string }) {
  const { clients } = useSession();
  const server = useLoad((signal) => clients.servers.getServer({ id }, { signal }), [clients, id], REFRESH_MS);
  const agent = useLoad(
    (signal) => clients.agents.getServerAgent({ serverId: id }, { signal }).catch((err: { code?: number }) => (err.code === NOT_FOUND ? { agent: undefined } : Promise.reject(err))),
    [clients, id],
    REFRESH_MS,
  );
  const events = useLoad((signal) => clients.servers.listServerEvents({ id, pageSize: 100 }, { signal }), [clients, id], REFRESH_MS);
  const jobs = useLoad((signal) => clients.jobs.listJobs({ resource: { type: "server", id }, pageSize: 50 }, { signal }), [clients, id], REFRESH_MS);
  const s = server.data?.server;
  if (server.error) return <ErrorNote error={server.error} />;
  if (!s) return <p class="loading">Loading server…</p>;
  const a = agent.data?.agent;

  return (
    <section>
      <PageHeader
        title={
          <>
            {s.name || s.id} <Badge value={serverState(s.state)} scope="server" />
          </>
        }
      >
        <a href="#/servers">All servers</a>
      </PageHeader>
      <dl class="facts">
        <dt>Server</dt>
        <dd class="mono">{s.id}</dd>
        <dt>Provider id</dt>
        <dd class="mono">{s.providerId || "—"}</dd>
        <dt>Where</dt>
        <dd>
          {s.regionId} / {s.dataCenter}, product {s.productId}, image {s.imageId}
        </dd>
        <dt>Budget code</dt>
        <dd>
          {s.budgetCode} · {micros(s.hourlyPriceMicros)} per hour
        </dd>
        <dt>Addresses</dt>
        <dd class="mono">{[...(s.addresses?.public ?? []), ...(s.addresses?.private ?? [])].join(", ") || "—"}</dd>
        <dt>Launched</dt>
        <dd>{time(s.launchTime)}</dd>
        <dt>Agent</dt>
        <dd data-testid="agent-presence">
          {a ? (
            <>
              <Badge value={enumName(AgentConnectionState, a.state, "AGENT_CONNECTION_STATE_")} /> {a.hostname} {a.address}:{a.port} · version {a.version} · last seen {ago(a.lastSeenTime)}
              {a.missedPings > 0 ? ` · ${a.missedPings} missed pings` : ""}
            </>
          ) : (
            <Badge value={agentState(s.agentState)} />
          )}
        </dd>
      </dl>
      <h2>Jobs</h2>
      <ErrorNote error={jobs.error} />
      <table class="grid">
        <tbody>
          {(jobs.data?.jobs ?? []).map((j) => (
            <tr key={j.id} class="clickable" data-job-id={j.id} onClick={() => navigate(href(["jobs", j.id]))}>
              <td class="mono">
                <a href={href(["jobs", j.id])}>{shortId(j.id)}</a>
              </td>
              <td>{j.kind}</td>
              <td>
                <Badge value={stateName(j.state)} />
              </td>
              <td>{ago(j.createTime)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>History</h2>
      <ErrorNote error={events.error} />
      <table class="grid">
        <tbody>
          {(events.data?.events ?? []).map((e) => (
            <tr key={e.id}>
              <td>{time(e.createTime)}</td>
              <td>{e.type}</td>
              <td>
                {e.fromState ? `${serverState(e.fromState)} → ` : ""}
                {serverState(e.toState)}
              </td>
              <td>{e.message}</td>
              <td class="mono">{e.jobId ? <a href={href(["jobs", e.jobId])}>{shortId(e.jobId)}</a> : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
