// Who calls KM: the client certificate's common name mapped to a principal (km.clientPrincipals), TLS credentials for
// both ends of the channel, and — for explicitly plaintext development setups only — an identity token keyed by the
// channel key in place of the certificate.
import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { PeerCertificate } from "node:tls";
import { ServerCredentials, credentials as grpcCredentials, type ChannelCredentials } from "@grpc/grpc-js";
import type { Principal } from "../iam/principal.js";
import type { Keyring } from "./keys.js";

export type ClientPrincipals = ReadonlyMap<string, Principal>;

/** Parses `<cn>=<service|user>:<role>` entries; returns the map and a message per bad entry. */
export function parseClientPrincipals(entries: readonly string[]): { map: ClientPrincipals; problems: string[] } {
  const map = new Map<string, Principal>();
  const problems: string[] = [];
  for (const entry of entries) {
    const m = /^([^=\s]+)=(service|user):([a-z][a-z0-9_-]*)$/.exec(entry.trim());
    if (!m) {
      problems.push(`km.clientPrincipals: ${JSON.stringify(entry)} is not <cn>=<service|user>:<role>`);
      continue;
    }
    const [, cn, kind, role] = m as unknown as [string, string, "service" | "user", string];
    if (map.has(cn)) problems.push(`km.clientPrincipals: ${cn} is listed twice`);
    map.set(cn, { id: `cert:${cn}`, kind, roles: [role], displayName: `${cn} (client certificate)` });
  }
  return { map, problems };
}

/** The identity a peer certificate names: its subject CN, else its first DNS subjectAltName. */
export function certificateIdentity(cert: PeerCertificate | undefined): string | undefined {
  if (!cert) return undefined;
  const cn = cert.subject?.CN;
  if (typeof cn === "string" && cn !== "") return cn;
  if (Array.isArray(cn) && typeof cn[0] === "string") return cn[0];
  const dns = /(?:^|,\s*)DNS:([^,]+)/.exec(cert.subjectaltname ?? "");
  return dns?.[1];
}

/** The principal of a verified peer certificate, or null when its identity is not in the map. */
export function principalFromCertificate(cert: PeerCertificate | undefined, principals: ClientPrincipals): Principal | null {
  const identity = certificateIdentity(cert);
  return identity ? (principals.get(identity) ?? null) : null;
}

export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/** Server credentials that require a client certificate signed by the CA (mutual TLS). */
export function kmServerCredentials(files: TlsFiles): ServerCredentials {
  return ServerCredentials.createSsl(readFileSync(files.ca), [{ cert_chain: readFileSync(files.cert), private_key: readFileSync(files.key) }], true);
}

/** Client credentials presenting this process's certificate and trusting only the CA for KM's. */
export function kmClientCredentials(files: TlsFiles): ChannelCredentials {
  return grpcCredentials.createSsl(readFileSync(files.ca), readFileSync(files.key), readFileSync(files.cert));
}

const TOKEN_LABEL = "dispatcher.km/plaintext-identity/v1";

function tokenMac(channelKeys: Keyring, identity: string): Buffer {
  return createHmac("sha256", channelKeys.newest.key).update(`${TOKEN_LABEL}\n${identity}`).digest();
}

/**
 * Plaintext development mode only: the bearer token that asserts `identity`, an HMAC under the channel key (which
 * only KM and its clients hold). It proves nothing against an eavesdropper, which is why plaintext is development-only.
 */
export function plaintextIdentityToken(channelKeys: Keyring, identity: string): string {
  return `${identity}.${tokenMac(channelKeys, identity).toString("base64url")}`;
}

/** The identity a plaintext-mode token asserts, or null when its MAC does not verify. */
export function verifyPlaintextIdentityToken(channelKeys: Keyring, token: string): string | null {
  const dot = token.lastIndexOf(".");
  if (dot <= 0) return null;
  const identity = token.slice(0, dot);
  const given = Buffer.from(token.slice(dot + 1), "base64url");
  const expected = tokenMac(channelKeys, identity);
  return given.length === expected.length && timingSafeEqual(given, expected) ? identity : null;
}
