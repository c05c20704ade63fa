// The agent CA: it issues each agent a short-lived server certificate naming the agent (CN) and its server, and each
// dispatcher process (dispatcher, worker, monitor) a client certificate. Agents trust its certificates for their
// callers; the dispatcher trusts them for agents and also pins each agent's certificate. Its key is kept encrypted
// (PKCS#8, passphrase agent.credentialKey): a configured file in production, generated under <dataDir>/agent in
// development. Key usages keep the two kinds apart: an agent's certificate cannot act as the dispatcher's, nor the
// reverse (TLS checks the purpose on both sides).
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, type Config } from "../config.js";
import { certificatePem, createCertificate } from "../km/x509.js";
import { credentialKeyOf } from "./secrets.js";
import { writeSecretFileOnce } from "../km/dev-files.js";

export const CA_NAME = "dispatcher agent CA";
/** The CN of dispatcher client certificates. */
export const DISPATCHER_CLIENT_CN = "dispatcher";
/** Certificates start this far in the past, for clocks a little behind. */
const SKEW_MS = 5 * 60_000;
const CLIENT_TTL_MS = 12 * 3_600_000;

export interface IssuedCertificate {
  pem: string;
  /** Lower-case hex SHA-256 of the DER certificate (what the dispatcher pins). */
  sha256: string;
  notAfter: Date;
}

export interface ClientIdentity {
  cert: Buffer;
  key: Buffer;
}

export interface AgentCa {
  /** PEM of every trusted CA certificate, the current one first: handed to agents, trusted for agents. */
  readonly bundlePem: string;
  /** A server certificate for an agent's key. */
  issueAgent(publicKey: KeyObject, agentId: string, serverId: string, ttlMs: number, now?: Date): IssuedCertificate;
  /** This process's client certificate towards agents, re-issued when two thirds of its life have passed. */
  clientIdentity(now?: Date): ClientIdentity;
}

type CaConfig = Pick<Config, "mode" | "dataDir" | "agent">;

const DEV_FILE = "ca.pem";

export function certificateSha256(pem: string | Buffer): string {
  return createHash("sha256").update(new X509Certificate(pem).raw).digest("hex");
}

/** The subjectKeyIdentifier of a DER certificate (TLS finds an issuer by it), or undefined when it has none. */
function subjectKeyId(der: Buffer): Buffer | undefined {
  // extnID 2.5.29.14, then extnValue: OCTET STRING { OCTET STRING keyIdentifier } (short lengths: ids are ≤ 64 bytes).
  const at = der.indexOf(Buffer.from("0603551d0e", "hex"));
  if (at < 0 || der[at + 5] !== 0x04 || der[at + 7] !== 0x04) return undefined;
  const n = der[at + 8] ?? 0;
  return n > 0 && n < 0x80 ? der.subarray(at + 9, at + 9 + n) : undefined;
}

function splitPem(text: string, label: string): string[] {
  return text.match(new RegExp(`-----BEGIN ${label}-----[\\s\\S]+?-----END ${label}-----\\n?`, "g")) ?? [];
}

/** Generates a development CA under <dataDir>/agent/ca.pem (certificate and encrypted key, mode 0600) once. */
function devCaFile(config: CaConfig, passphrase: string): string {
  const dir = join(config.dataDir, "agent");
  const file = join(dir, DEV_FILE);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const cert = certificatePem(createCertificate({ commonName: `${CA_NAME} (development)`, publicKey, signingKey: privateKey, ca: true, days: 3650 }));
    const key = privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase }) as string;
    // wx: when two roles start at once, the first one's CA wins and the other reads it.
    writeSecretFileOnce(file, cert + key);
  }
  return file;
}

/** Reads the agent CA of a configuration (see the module header). ConfigError when it is missing or unusable. */
export function loadAgentCa(config: CaConfig): AgentCa {
  const passphrase = credentialKeyOf(config).toString("base64");
  let certText: string;
  let keyText: string;
  if (config.agent.caCert || config.agent.caKey) {
    if (!config.agent.caCert || !config.agent.caKey) throw new ConfigError(["agent.caCert and agent.caKey: set both or (development only) neither"]);
    certText = readFileSync(config.agent.caCert, "utf8");
    keyText = readFileSync(config.agent.caKey, "utf8");
  } else {
    if (config.mode === "production") throw new ConfigError(["agent.caCert, agent.caKey: required in production mode (the agent CA; see docs/agents.md)"]);
    const text = readFileSync(devCaFile(config, passphrase), "utf8");
    certText = keyText = text;
  }
  const certs = splitPem(certText, "CERTIFICATE");
  const [keyPem] = splitPem(keyText, "ENCRYPTED PRIVATE KEY");
  if (certs.length === 0 || !keyPem) throw new ConfigError(["agent.caCert/agent.caKey: expected PEM certificates and an ENCRYPTED PRIVATE KEY (PKCS#8)"]);
  let signingKey: KeyObject;
  try {
    signingKey = createPrivateKey({ key: keyPem, format: "pem", passphrase });
  } catch {
    throw new ConfigError(["agent.caKey (hidden): cannot be decrypted with agent.credentialKey"]);
  }
  const current = new X509Certificate(certs[0] as string);
  if (!current.checkPrivateKey(signingKey)) throw new ConfigError(["agent.caKey: is not the key of the first certificate of agent.caCert"]);
  // Issued certificates name their issuer by O and CN (src/km/x509.ts writes those two): a CA subject of more would
  // not match, so it is refused here rather than by every agent's handshake.
  const rdns = current.subject.split("\n").filter((l) => l !== "");
  if (!rdns.every((l) => /^(CN|O)=/.test(l)) || !rdns.some((l) => l.startsWith("CN="))) throw new ConfigError([`agent.caCert: the CA's subject must be a CN, optionally with an O (${current.subject.replaceAll("\n", ", ")})`]);
  const field = (k: string): string | undefined => rdns.find((l) => l.startsWith(`${k}=`))?.slice(k.length + 1);
  const issuer = { commonName: field("CN") ?? CA_NAME, organization: field("O"), publicKey: createPublicKey(signingKey), keyId: subjectKeyId(current.raw) };

  const issue = (publicKey: KeyObject, commonName: string, organization: string | undefined, usage: "server" | "client", ttlMs: number, now: Date): IssuedCertificate => {
    const notBefore = new Date(now.getTime() - SKEW_MS);
    const der = createCertificate({ commonName, organization, publicKey, signingKey, issuer, usage: [usage], notBefore, days: (ttlMs + SKEW_MS) / 86_400_000 });
    return { pem: certificatePem(der), sha256: createHash("sha256").update(der).digest("hex"), notAfter: new Date(notBefore.getTime() + ttlMs + SKEW_MS) };
  };

  let client: { identity: ClientIdentity; renewAt: number } | undefined;
  return {
    bundlePem: certs.join(""),
    issueAgent: (publicKey, agentId, serverId, ttlMs, now = new Date()) => issue(publicKey, agentId, `server ${serverId}`, "server", ttlMs, now),
    clientIdentity(now = new Date()) {
      if (!client || now.getTime() >= client.renewAt) {
        const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
        const cert = issue(publicKey, DISPATCHER_CLIENT_CN, undefined, "client", CLIENT_TTL_MS, now);
        client = { identity: { cert: Buffer.from(cert.pem), key: Buffer.from(privateKey.export({ type: "pkcs8", format: "pem" })) }, renewAt: now.getTime() + (2 * CLIENT_TTL_MS) / 3 };
      }
      return client.identity;
    },
  };
}

const cas = new WeakMap<object, AgentCa>();

/** The agent CA of this configuration, read once per configuration object; null on a plaintext agent channel. */
export function agentCaOf(config: CaConfig): AgentCa | null {
  if (config.agent.plaintext) return null;
  let ca = cas.get(config);
  if (!ca) cas.set(config, (ca = loadAgentCa(config)));
  return ca;
}

/**
 * Reads the agent key and, on a mutual-TLS channel, the agent CA now, so that a role whose configuration lacks them
 * refuses to start (ConfigError) instead of failing on its first agent call; warns when the channel is plaintext.
 */
export function prepareAgentSecrets(config: CaConfig, log: { warn(msg: string): void }): void {
  credentialKeyOf(config);
  if (config.agent.plaintext) log.warn("agent.plaintext is on: scripts, their output and agent credentials cross the network in clear (development only)");
  else agentCaOf(config);
}
