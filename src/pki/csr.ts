// PKCS#10 certificate requests (RFC 2986) for agent keys, shared by the guest (which makes one for the key it generates,
// signed by that key: proof it holds it) and the dispatcher (which reads and verifies it before its agent CA issues a
// certificate). Only the shape agents need: ECDSA P-256, a subject CN, no attributes.
import { createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";

// ---- DER, the little of it a request needs --------------------------------------------------------------------------

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, ...content: Buffer[]): Buffer => {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.of(tag), len(body.length), body]);
};
const ECDSA_SHA256 = Buffer.from("06082a8648ce3d040302", "hex"); // OID 1.2.840.10045.4.3.2
const COMMON_NAME = Buffer.from("0603550403", "hex"); // OID 2.5.4.3

interface Node {
  tag: number;
  /** The whole element, header included. */
  raw: Buffer;
  content: Buffer;
}

function read(buf: Buffer, at: number): Node {
  const tag = buf[at];
  let n = buf[at + 1];
  if (tag === undefined || n === undefined) throw new Error("truncated");
  let start = at + 2;
  if (n & 0x80) {
    const count = n & 0x7f;
    if (count === 0 || count > 3) throw new Error("unsupported length");
    n = 0;
    for (let i = 0; i < count; i++) n = n * 256 + (buf[start + i] ?? 0);
    start += count;
  }
  if (start + n > buf.length) throw new Error("truncated");
  return { tag, raw: buf.subarray(at, start + n), content: buf.subarray(start, start + n) };
}

function children(node: Node): Node[] {
  const out: Node[] = [];
  for (let at = 0; at < node.content.length; ) {
    const child = read(node.content, at);
    out.push(child);
    at += child.raw.length;
  }
  return out;
}

// ---- Requests -------------------------------------------------------------------------------------------------------

export interface AgentKeyPair {
  privateKey: KeyObject;
  /** PEM PKCS#10 request signed by privateKey. */
  requestPem: string;
}

/** A new P-256 key pair and a certificate request for it, naming `subject` (the agent's host name: a hint only). */
export function newKeyAndRequest(subject: string): AgentKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const name = tlv(0x30, tlv(0x31, tlv(0x30, COMMON_NAME, tlv(0x0c, Buffer.from(subject.slice(0, 64) || "agent", "utf8")))));
  const info = tlv(0x30, tlv(0x02, Buffer.of(0)), name, publicKey.export({ type: "spki", format: "der" }), tlv(0xa0));
  const signature = sign("sha256", info, privateKey);
  const der = tlv(0x30, info, tlv(0x30, ECDSA_SHA256), tlv(0x03, Buffer.of(0), signature));
  const b64 = der.toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return { privateKey, requestPem: `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n` };
}

/**
 * The public key of a PEM request whose signature verifies with it (proof that the sender holds the private key), or
 * an Error saying why not. Only ECDSA P-256 with SHA-256 is accepted.
 */
export function verifiedRequestKey(pem: string): KeyObject | Error {
  try {
    const m = /^-----BEGIN CERTIFICATE REQUEST-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE REQUEST-----\s*$/.exec(pem.trim() + "\n");
    if (!m?.[1]) return new Error("is not a PEM certificate request");
    const der = Buffer.from(m[1].replace(/\s+/g, ""), "base64");
    const outer = read(der, 0);
    if (outer.tag !== 0x30 || outer.raw.length !== der.length) return new Error("is not a certificate request");
    const [info, alg, sig] = children(outer);
    if (!info || !alg || !sig || info.tag !== 0x30 || sig.tag !== 0x03) return new Error("is not a certificate request");
    if (!alg.content.subarray(0, ECDSA_SHA256.length).equals(ECDSA_SHA256)) return new Error("must be signed with ECDSA-SHA256");
    const spki = children(info)[2];
    if (!spki || spki.tag !== 0x30) return new Error("has no public key");
    const key = createPublicKey({ key: spki.raw, format: "der", type: "spki" });
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") return new Error("must be for an ECDSA P-256 key");
    if (!verify("sha256", info.raw, key, sig.content.subarray(1))) return new Error("has a signature that does not verify");
    return key;
  } catch {
    return new Error("is not a well-formed certificate request");
  }
}
