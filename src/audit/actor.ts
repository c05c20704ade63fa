// Who is acting right now, as the audit trail records it: the RPC adapter runs each call's handler inside the caller's
// scope (principal and the call's trace id), so a service that records a change needs no extra parameter to know who
// made it. Outside any call (the quick start's bootstrap, a command working on the database directly) the actor is
// the system itself.
import { AsyncLocalStorage } from "node:async_hooks";

export interface Actor {
  /** The principal's id (a user id, a service principal's id, an agent id), or "system". */
  principal: string;
  /** W3C trace id of the call ("" when not traced). */
  traceId: string;
}

export const SYSTEM_ACTOR: Readonly<Actor> = Object.freeze({ principal: "system", traceId: "" });

const scope = new AsyncLocalStorage<Readonly<Actor>>();

/** Runs `fn` with `actor` as the one every change it records is attributed to. */
export function actingAs<T>(actor: Readonly<Actor>, fn: () => T): T {
  return scope.run(actor, fn);
}

/** The actor of the code running now: the RPC's caller, or SYSTEM_ACTOR outside a call. */
export function currentActor(): Readonly<Actor> {
  return scope.getStore() ?? SYSTEM_ACTOR;
}
