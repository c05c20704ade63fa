// What the transport proved about a call's peer, read once per connection: grpc-js's getAuthContext() turns the peer
// certificate into a JavaScript object on every call, a measurable share of a short mTLS call's CPU (KM's).
//
// The answer cannot change within a connection: the handshake is over before the first stream, and Node's HTTP/2
// disables TLS renegotiation on every session, so the certificate a connection verified is the one it keeps. It is
// therefore kept per HTTP/2 session, in a WeakMap: a new connection (another client, another certificate) is read
// afresh, and a closed one's entry goes with it.
import type { PeerAuth } from "../iam/principal.js";

interface AuthSurface {
  getAuthContext(): PeerAuth;
}

const byConnection = new WeakMap<object, Readonly<PeerAuth>>();

/**
 * The HTTP/2 session `call` arrived on. grpc-js does not expose it, so this follows its internal shape (the call's
 * intercepting call, down its chain to the one holding the stream); undefined when that shape is not there, and then
 * every call is read afresh — slower, never wrong. A test pins the shape to the grpc-js version installed.
 */
export function connectionOf(call: unknown): object | undefined {
  let at = (call as { call?: unknown } | null)?.call;
  for (let depth = 0; at && typeof at === "object" && depth < 8; depth++) {
    const session = (at as { stream?: { session?: unknown } }).stream?.session;
    if (session && typeof session === "object") return session;
    at = (at as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

/** The call's peer authentication: the connection's, read on its first call. */
export function peerAuthOf(call: AuthSurface): Readonly<PeerAuth> {
  const connection = connectionOf(call);
  if (!connection) return call.getAuthContext();
  let auth = byConnection.get(connection);
  if (!auth) {
    auth = Object.freeze(call.getAuthContext());
    byConnection.set(connection, auth);
  }
  return auth;
}
