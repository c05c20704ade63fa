// Who a caller is, as authentication establishes it and authorization reads it.

export interface Principal {
  /** A user id, a service principal's user id or an agent id. */
  id: string;
  kind: "user" | "service" | "agent";
  roles: string[];
  displayName: string;
}

/** Resolves a bearer token presented by `peer` to its principal, or null when it is not valid. */
export type Authenticate = (token: string, peer: string) => Promise<Principal | null>;
