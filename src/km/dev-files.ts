// Development-mode KM material under <dataDir>: a CA with KM's server certificate and client certificates
// (`dispatcher km dev-certs`), and generated master and channel keys for the quick start. Never for production.
import { generateKeyPairSync, createPrivateKey, randomBytes, X509Certificate, type KeyObject } from "node:crypto";
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateKeyText } from "./keys.js";
import { certificatePem, createCertificate } from "./x509.js";

/** Client identities the development CA issues certificates for (their CN), matching km.clientPrincipals' default. */
export const DEV_CLIENTS = ["dispatcher", "worker", "admin"] as const;
const DEV_CA_NAME = "dispatcher development CA";
const ORG = "dispatcher (development)";

export interface DevPaths {
  tlsDir: string;
  ca: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert(identity: string): string;
  clientKey(identity: string): string;
  kmDir: string;
  masterKeys: string;
  channelKey: string;
}

export function devPaths(dataDir: string): DevPaths {
  const tlsDir = join(dataDir, "tls");
  const kmDir = join(dataDir, "km");
  return {
    tlsDir,
    ca: join(tlsDir, "ca.pem"),
    caKey: join(tlsDir, "ca-key.pem"),
    serverCert: join(tlsDir, "km-server.pem"),
    serverKey: join(tlsDir, "km-server-key.pem"),
    clientCert: (id) => join(tlsDir, `${id}.pem`),
    clientKey: (id) => join(tlsDir, `${id}-key.pem`),
    kmDir,
    masterKeys: join(kmDir, "master-keys"),
    channelKey: join(kmDir, "channel.key"),
  };
}

/**
 * Writes `content` to a new file readable by its owner only; false (and nothing written) when it already exists. The
 * file appears whole: another process starting at the same moment reads either no file or all of it, never the empty
 * file an exclusive open leaves until its write (two processes started together on a new data directory did).
 */
export function writeSecretFileOnce(path: string, content: string): boolean {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  writeFileSync(temp, content, { mode: 0o600, flag: "wx" });
  try {
    // link() creates the name only if it is free, with the content already in place.
    linkSync(temp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    unlinkSync(temp);
  }
}

function newKey(): { publicKey: KeyObject; privateKey: KeyObject; pem: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { publicKey, privateKey, pem: privateKey.export({ type: "pkcs8", format: "pem" }) as string };
}

export interface DevCertsResult {
  paths: DevPaths;
  /** Files written by this call (existing ones are kept unless `force`). */
  written: string[];
}

/**
 * Ensures a development CA, KM's server certificate (localhost, 127.0.0.1, ::1, km and `serverNames`) and a client
 * certificate per DEV_CLIENTS under <dataDir>/tls. Existing files are kept (issued by the existing CA) unless `force`.
 */
export function ensureDevCerts(dataDir: string, options: { force?: boolean; serverNames?: string[]; now?: Date } = {}): DevCertsResult {
  const paths = devPaths(dataDir);
  mkdirSync(paths.tlsDir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  const force = options.force ?? false;
  let caKey: KeyObject;
  let caPublic: KeyObject;
  if (!force && existsSync(paths.ca) && existsSync(paths.caKey)) {
    caKey = createPrivateKey(readFileSync(paths.caKey));
    caPublic = new X509Certificate(readFileSync(paths.ca)).publicKey;
  } else {
    const k = newKey();
    caKey = k.privateKey;
    caPublic = k.publicKey;
    const der = createCertificate({ commonName: DEV_CA_NAME, organization: ORG, publicKey: k.publicKey, signingKey: k.privateKey, ca: true, days: 3650, notBefore: options.now });
    writeKeyAndCert(paths.caKey, k.pem, paths.ca, certificatePem(der));
    written.push(paths.ca, paths.caKey);
  }
  const issuer = { commonName: DEV_CA_NAME, organization: ORG, publicKey: caPublic };
  const leaf = (cert: string, key: string, commonName: string, usage: "server" | "client", altNames: string[]): void => {
    if (!force && written.length === 0 && existsSync(cert) && existsSync(key)) return;
    const k = newKey();
    const der = createCertificate({ commonName, organization: ORG, publicKey: k.publicKey, signingKey: caKey, issuer, usage: [usage], altNames, days: 825, notBefore: options.now });
    writeKeyAndCert(key, k.pem, cert, certificatePem(der));
    written.push(cert, key);
  };
  leaf(paths.serverCert, paths.serverKey, "km", "server", [...new Set(["localhost", "km", "127.0.0.1", "::1", ...(options.serverNames ?? [])])]);
  for (const id of DEV_CLIENTS) leaf(paths.clientCert(id), paths.clientKey(id), id, "client", [id]);
  return { paths, written };
}

function writeKeyAndCert(keyPath: string, keyPem: string, certPath: string, certPem: string): void {
  writeFileSync(keyPath, keyPem, { mode: 0o600 });
  chmodSync(keyPath, 0o600);
  writeFileSync(certPath, certPem, { mode: 0o644 });
}

/**
 * The development key file at `path`, created with a new random key when missing (owner-only permissions).
 * Returns the file's text and whether it was created now.
 */
export function ensureDevKeyFile(path: string): { text: string; created: boolean } {
  mkdirSync(join(path, ".."), { recursive: true, mode: 0o700 });
  const created = writeSecretFileOnce(path, `# development key, generated by dispatcher; never use it in production\n${generateKeyText(1)}\n`);
  return { text: readFileSync(path, "utf8"), created };
}
