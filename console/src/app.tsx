// The console's frame: settings, sign-in, the navigation and the page of the current route.
import { useEffect, useMemo, useState } from "preact/hooks";
import { createClients } from "./api/clients";
import { RpcError } from "./api/grpc-web";
import { bridgeBaseUrl, forgetKey, loadSettings, storedKey, storeKey, transport, type ConsoleSettings } from "./api/session";
import { SessionContext, type Session } from "./context";
import type { WhoAmIResponse } from "./gen/dispatcher/v1/system";
import { BudgetsPage } from "./pages/budgets";
import { JobPage } from "./pages/job";
import { JobsPage } from "./pages/jobs";
import { QueuesPage } from "./pages/queues";
import { ServerPage, ServersPage } from "./pages/servers";
import { SignIn } from "./pages/sign-in";
import { useRoute } from "./router";

const UNAUTHENTICATED = 16;

export function App() {
  const [settings, setSettings] = useState<ConsoleSettings | undefined>(undefined);
  const [settingsError, setSettingsError] = useState("");
  const [key, setKey] = useState(storedKey);
  const [me, setMe] = useState<WhoAmIResponse | undefined>(undefined);
  const [notice, setNotice] = useState<string | undefined>(undefined);

  useEffect(() => {
    loadSettings().then(setSettings, (err: unknown) => setSettingsError(String(err)));
  }, []);

  const clients = useMemo(() => (settings ? createClients(transport(bridgeBaseUrl(settings), () => key)) : undefined), [settings, key]);

  // A key kept from earlier in this tab: check it is still good.
  useEffect(() => {
    if (!clients || !key || me) return;
    clients.system.whoAmI({}).then(setMe, (err: unknown) => {
      if (err instanceof RpcError && err.code === UNAUTHENTICATED) {
        forgetKey();
        setKey("");
        setNotice("That API key is no longer accepted; sign in again.");
      } else setNotice(err instanceof RpcError ? err.message : String(err));
    });
  }, [clients, key, me]);

  if (settingsError) return <p class="error">The console could not load its settings: {settingsError}</p>;
  if (!settings || !clients) return <p class="loading">Loading…</p>;

  const signIn = async (candidate: string): Promise<void> => {
    const probe = createClients(transport(bridgeBaseUrl(settings), () => candidate));
    const who = await probe.system.whoAmI({});
    storeKey(candidate);
    setKey(candidate);
    setMe(who);
    setNotice(undefined);
  };
  const signOut = (): void => {
    forgetKey();
    setKey("");
    setMe(undefined);
  };

  if (!key || !me) return key && !notice ? <p class="loading">Signing in…</p> : <SignIn onSignIn={signIn} notice={notice} />;
  const session: Session = { clients, me };
  return (
    <SessionContext.Provider value={session}>
      <Frame me={me} onSignOut={signOut} />
    </SessionContext.Provider>
  );
}

function Frame({ me, onSignOut }: { me: WhoAmIResponse; onSignOut(): void }) {
  const route = useRoute();
  const [section = "jobs", id] = route.parts;
  const nav = (name: string, label: string) => (
    <a href={`#/${name}`} class={section === name ? "active" : ""}>
      {label}
    </a>
  );
  return (
    <div class="frame">
      <header class="top">
        <a class="brand" href="#/jobs">
          Dispatcher
        </a>
        <nav>
          {nav("jobs", "Jobs")}
          {nav("queues", "Queues")}
          {nav("servers", "Servers & agents")}
          {nav("budgets", "Budgets")}
        </nav>
        <div class="who" title={me.principalId}>
          <span data-testid="principal">{me.displayName || me.principalId}</span> <span class="roles">{me.roles.join(", ")}</span>
          <button type="button" class="link" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main>{page(section, id, route.query)}</main>
    </div>
  );
}

function page(section: string, id: string | undefined, query: URLSearchParams) {
  if (section === "jobs") return id ? <JobPage id={id} key={id} /> : <JobsPage query={query} />;
  if (section === "queues") return <QueuesPage query={query} />;
  if (section === "servers") return id ? <ServerPage id={id} key={id} /> : <ServersPage query={query} />;
  if (section === "budgets") return <BudgetsPage />;
  return <p class="empty">No such page.</p>;
}
