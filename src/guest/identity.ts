// The agent's TLS identity on the guest: its key (made here, never sent), the certificate the dispatcher's agent CA
// issued for it, and the CA certificates whose client certificates it accepts (the dispatcher's). Held in a grpc-js
// certificate provider, so a renewed certificate takes effect for new connections without restarting the server.
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { experimental, type ServerCredentials } from "@grpc/grpc-js";
import type { PeerAuth, Principal } from "../iam/principal.js";

type CaListener = (update: { caCertificate: Buffer } | null) => void;
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;

export interface Identity {
  keyPem: string;
  certPem: string;
  caPem: string;
}

/** The CN of the dispatcher's client certificates (src/agent/ca.ts on the dispatcher side). */
export const DISPATCHER_CLIENT_CN = "dispatcher";

export class AgentIdentity implements experimental.CertificateProvider {
  private current: Identity | null = null;
  private installed: Date | null = null;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  get value(): Identity | null {
    return this.current;
  }

  get key(): KeyObject | null {
    return this.current ? createPrivateKey(this.current.keyPem) : null;
  }

  /** When the current certificate expires (null before the first one). */
  get notAfter(): Date | null {
    return this.current ? new Date(new X509Certificate(this.current.certPem).validTo) : null;
  }

  /** When the current certificate was installed here (its notBefore lies in the past, for clocks behind). */
  get installedAt(): Date | null {
    return this.installed;
  }

  /** Installs a certificate after checking it certifies `keyPem` and is signed by one of the CA certificates. */
  install(identity: Identity): void {
    const cert = new X509Certificate(identity.certPem);
    if (!cert.checkPrivateKey(createPrivateKey(identity.keyPem))) throw new Error("the certificate received is not for this agent's key");
    const cas = identity.caPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (!cas.some((ca) => cert.verify(new X509Certificate(ca).publicKey))) throw new Error("the certificate received is not signed by the CA handed over with it");
    this.current = identity;
    this.installed = new Date();
    for (const l of this.caListeners) l({ caCertificate: Buffer.from(identity.caPem) });
    for (const l of this.identityListeners) l({ certificate: Buffer.from(identity.certPem), privateKey: Buffer.from(identity.keyPem) });
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    if (this.current) listener({ caCertificate: Buffer.from(this.current.caPem) });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    if (this.current) listener({ certificate: Buffer.from(this.current.certPem), privateKey: Buffer.from(this.current.keyPem) });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  /** Server credentials that serve this identity and require a client certificate signed by its CA. */
  serverCredentials(): ServerCredentials {
    return experimental.createCertificateProviderServerCredentials(this, this, true);
  }
}

/**
 * The caller as the TLS handshake proved it: the dispatcher when its client certificate (verified against the CA, with
 * the client-authentication purpose, which agents' certificates lack) names it; nobody otherwise.
 */
export function dispatcherByCertificate(dispatcher: Principal): (auth: PeerAuth) => Promise<Principal | null> {
  return async (auth) => (auth.sslPeerCertificate?.subject?.CN === DISPATCHER_CLIENT_CN ? dispatcher : null);
}
