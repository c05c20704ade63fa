// Who a caller is, as authentication establishes it and authorization reads it.
import type { PeerCertificate } from "node:tls";

export interface Principal {
  /** A user id, a service principal's user id or an agent id. */
  id: string;
  kind: "user" | "service" | "agent";
  /** Roles granted directly and through the principal's groups, sorted, without duplicates. */
  roles: string[];
  displayName: string;
  /**
   * Accounts the principal's groups may use (object scope), sorted. Absent when authentication does not resolve
   * groups (fixed tokens, agents, mTLS peers) or the principal's groups name no account.
   */
  accountIds?: string[];
}

/** Resolves a bearer token presented by `peer` to its principal, or null when it is not valid. */
export type Authenticate = (token: string, peer: string) => Promise<Principal | null>;

/** What the transport proved about the peer (grpc-js's AuthContext): the verified client certificate under mTLS. */
export interface PeerAuth {
  transportSecurityType?: string | undefined;
  sslPeerCertificate?: PeerCertificate | undefined;
}

/**
 * Resolves the caller from the transport, e.g. a verified mTLS client certificate (KM). Null: the transport names no
 * known caller, and the bearer token (if any) decides.
 */
export type AuthenticatePeer = (auth: PeerAuth, peer: string) => Promise<Principal | null>;
