// Minimal X.509 v3 certificate writer (DER) for development certificates: ECDSA P-256 keys and signatures come from
// node:crypto; this module only lays out the ASN.1 structure (RFC 5280). Production certificates come from a real CA.
import { createHash, createPublicKey, randomBytes, sign, type KeyObject } from "node:crypto";
import { isIP } from "node:net";

// ---- DER encoding -------------------------------------------------------------------------------------------------

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

const tlv = (tag: number, ...content: Buffer[]): Buffer => {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.of(tag), length(body.length), body]);
};
const seq = (...items: Buffer[]): Buffer => tlv(0x30, ...items);
const set = (...items: Buffer[]): Buffer => tlv(0x31, ...items);
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 + n, inner);
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const bits = (b: Buffer, unused = 0): Buffer => tlv(0x03, Buffer.of(unused), b);
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.of(v ? 0xff : 0x00));
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, "utf8"));

/** INTEGER from a small non-negative number (< 128) or from positive, minimal big-endian bytes. */
function integer(value: Buffer | number): Buffer {
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 0 || value > 127) throw new RangeError("small integers only");
    return tlv(0x02, Buffer.of(value));
  }
  if (value.length === 0 || value[0] === 0 || ((value[0] as number) & 0x80) !== 0) throw new RangeError("integer bytes must be positive and minimal");
  return tlv(0x02, value);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split(".").map(Number);
  const out: number[] = [40 * (parts[0] as number) + (parts[1] as number)];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [];
    let v = p;
    do {
      chunk.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i] = (chunk[i] as number) | 0x80;
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z"; // YYYYMMDDHHMMSSZ
  // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), "ascii")) : tlv(0x18, Buffer.from(iso, "ascii"));
}

// ---- Certificates -------------------------------------------------------------------------------------------------

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  subjectKeyId: "2.5.29.14",
  authorityKeyId: "2.5.29.35",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
};

export interface CertificateRequest {
  commonName: string;
  organization?: string;
  /** The key the certificate certifies (its public half is embedded). */
  publicKey: KeyObject;
  /** The issuer's private key (the subject's own key for a self-signed CA). */
  signingKey: KeyObject;
  /** The issuer's certificate fields; absent for a self-signed certificate. */
  issuer?: { commonName: string; organization?: string; publicKey: KeyObject; /** The issuer's subjectKeyIdentifier, when it has its own. */ keyId?: Buffer };
  ca?: boolean;
  usage?: ("server" | "client")[];
  /** DNS names and IP addresses for subjectAltName. */
  altNames?: string[];
  notBefore?: Date;
  days: number;
}

function name(commonName: string, organization?: string): Buffer {
  const rdns = [set(seq(oid(OID.commonName), utf8(commonName)))];
  if (organization) rdns.unshift(set(seq(oid(OID.organization), utf8(organization))));
  return seq(...rdns);
}

function spkiDer(key: KeyObject): Buffer {
  return (key.type === "private" ? createPublicKey(key) : key).export({ type: "spki", format: "der" });
}

function keyId(publicKey: KeyObject): Buffer {
  return createHash("sha1").update(spkiDer(publicKey)).digest();
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

function altName(entry: string): Buffer {
  const ip = isIP(entry);
  if (ip === 4) return tlv(0x87, Buffer.from(entry.split(".").map(Number)));
  if (ip === 6) return tlv(0x87, ipv6Bytes(entry));
  return tlv(0x82, Buffer.from(entry, "ascii"));
}

function ipv6Bytes(address: string): Buffer {
  const [head = "", tail = ""] = address.split("::");
  const h = head ? head.split(":") : [];
  const t = address.includes("::") ? (tail ? tail.split(":") : []) : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
}

/** A DER X.509 v3 certificate signed with ECDSA-SHA256 by `signingKey`. */
export function createCertificate(req: CertificateRequest): Buffer {
  const notBefore = req.notBefore ?? new Date(Date.now() - 60 * 60 * 1000);
  const notAfter = new Date(notBefore.getTime() + req.days * 86_400_000);
  const serial = randomBytes(16);
  serial[0] = ((serial[0] as number) & 0x7f) | 0x01;
  const sigAlg = seq(oid(OID.ecdsaWithSha256));
  const issuer = req.issuer ?? { commonName: req.commonName, organization: req.organization, publicKey: req.publicKey };
  const extensions: Buffer[] = [
    extension(OID.basicConstraints, true, req.ca ? seq(bool(true), integer(0)) : seq()),
    // digitalSignature (bit 0); a CA also keyCertSign (5) and cRLSign (6).
    extension(OID.keyUsage, true, req.ca ? bits(Buffer.of(0x86), 1) : bits(Buffer.of(0x80), 7)),
    extension(OID.subjectKeyId, false, octets(keyId(req.publicKey))),
  ];
  if (req.issuer) extensions.push(extension(OID.authorityKeyId, false, seq(tlv(0x80, req.issuer.keyId ?? keyId(req.issuer.publicKey)))));
  if (req.usage?.length) extensions.push(extension(OID.extKeyUsage, false, seq(...req.usage.map((u) => oid(u === "server" ? OID.serverAuth : OID.clientAuth)))));
  if (req.altNames?.length) extensions.push(extension(OID.subjectAltName, false, seq(...req.altNames.map(altName))));
  const spki = spkiDer(req.publicKey);
  const tbs = seq(
    explicit(0, integer(2)),
    integer(serial),
    sigAlg,
    name(issuer.commonName, issuer.organization),
    seq(time(notBefore), time(notAfter)),
    name(req.commonName, req.organization),
    spki,
    explicit(3, seq(...extensions)),
  );
  const signature = sign("sha256", tbs, req.signingKey);
  return seq(tbs, sigAlg, bits(signature));
}

/** PEM armour for a DER certificate. */
export function certificatePem(der: Buffer): string {
  const b64 = der.toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}
