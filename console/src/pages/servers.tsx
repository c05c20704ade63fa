// Servers and their agents: every server in the caller's scope with its state and its agent's presence, refreshed
// every few seconds; one server with its agent (last seen, missed pings), its history and its jobs.
import { Badge, Empty, ErrorNote, PageHeader } from "../components/common";
import { useSession } from "../context";
import { ago, enumName, micros, shortId, time } from "../format";
import { AgentConnectionState } from "../gen/dispatcher/v1/agents";
import { AgentState, ServerState, type Server } from "../gen/dispatcher/v1/servers";
import { useLoad } from "../hooks";
import { stateName } from "../jobs-model";
import { href, navigate } from "../router";

const REFRESH_MS = 5_000;
const NOT_FOUND = 5;

const serverState = (s: ServerState): string => enumName(ServerState, s, "SERVER_STATE_");
const agentState = (s: AgentState): string => enumName(AgentState, s, "AGENT_STATE_");

export function ServersPage() {
  const { clients } = useSession();
  const servers = useLoad((signal) => clients.servers.listServers({ pageSize: 1000 }, { signal }), [clients], REFRESH_MS);
  const accounts = useLoad((signal) => clients.accounts.listAccounts({ pageSize: 1000 }, { signal }), [clients]);
  const accountName = (id: string): string => accounts.data?.accounts.find((a) => a.id === id)?.name ?? shortId(id);
  const list = servers.data?.servers ?? [];
  const count = (pred: (s: Server) => boolean): number => list.filter(pred).length;

  return (
    <section>
      <PageHeader title="Servers & agents">
        <span class="muted">refreshed every {REFRESH_MS / 1000} s</span>
      </PageHeader>
      {list.length > 0 ? (
        <p class="summary">
          {count((s) => s.state === ServerState.SERVER_STATE_RUNNING)} running of {count((s) => s.state !== ServerState.SERVER_STATE_TERMINATED)} ·{" "}
          agents: {count((s) => s.agentState === AgentState.AGENT_STATE_CONNECTED)} connected, {count((s) => s.agentState === AgentState.AGENT_STATE_UNREACHABLE)} unreachable,{" "}
          {count((s) => s.agentState === AgentState.AGENT_STATE_PENDING)} pending
        </p>
      ) : null}
      <ErrorNote error={servers.error} />
      {servers.data && list.length === 0 ? <Empty>No servers in your accounts.</Empty> : null}
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
