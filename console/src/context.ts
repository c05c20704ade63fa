// What every page reads: the service clients of the signed-in session and who that is.
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Clients } from "./api/clients";
import type { WhoAmIResponse } from "./gen/dispatcher/v1/system";

export interface Session {
  clients: Clients;
  me: WhoAmIResponse;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("no session");
  return session;
}
