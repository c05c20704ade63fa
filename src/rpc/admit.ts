// Admission of a call: who the caller is (the transport's client certificate, else a bearer token) and whether the
// method's permission allows them. A method missing from the permission table is denied.
import type { Metadata } from "@grpc/grpc-js";
import { PermissionDeniedError, UnauthenticatedError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Authenticate, AuthenticatePeer, PeerAuth, Principal } from "../iam/principal.js";
import { ANONYMOUS, isAllowed, permissionFor, PUBLIC } from "../iam/permissions.js";

/**
 * Resolves the caller of `method` from its metadata and checks the method's permission: throws
 * UnauthenticatedError or PermissionDeniedError. A method missing from the permission table is denied.
 */
export async function admit(
  runtime: { authenticate: Authenticate; authenticatePeer?: AuthenticatePeer | undefined; log: Logger },
  method: string,
  metadata: Metadata,
  peer: string,
  auth?: PeerAuth | null,
  /** Told who the caller is before the permission check, so a refusal can still name them (request log, audit). */
  onAuthenticated?: (principal: Readonly<Principal>) => void,
): Promise<Readonly<Principal>> {
  const permission = permissionFor(method);
  if (permission === PUBLIC) return ANONYMOUS;
  const fromPeer = runtime.authenticatePeer && auth ? await runtime.authenticatePeer(auth, peer) : null;
  const token = fromPeer ? null : bearerToken(metadata);
  const principal = fromPeer ?? (token ? await runtime.authenticate(token, peer) : null);
  if (!principal) throw new UnauthenticatedError();
  onAuthenticated?.(principal);
  if (permission === undefined) {
    runtime.log.error({ method }, "method missing from the permission table; denied");
    throw new PermissionDeniedError(`${method} is not permitted`, "METHOD_NOT_PERMITTED", { method });
  }
  if (!isAllowed(principal, permission)) throw new PermissionDeniedError(`permission ${permission} required`, "PERMISSION_DENIED", { permission });
  return principal;
}

function bearerToken(metadata: Metadata): string | null {
  const value = metadata.get("authorization")[0];
  const m = typeof value === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(value) : null;
  return m?.[1] ?? null;
}
