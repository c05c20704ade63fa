// SSH public keys in OpenSSH's one-line format (`ssh-ed25519 AAAA… comment`): parsing with the reason a key is
// refused, OpenSSH's SHA256 fingerprint, and making a new key pair whose private key an OpenSSH client accepts
// (ed25519 in OpenSSH's own format, RSA as PKCS#1 PEM, as EC2 hands them out).
import { createHash, generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";

export const KEY_TYPES: Readonly<Record<string, string>> = {
  "ssh-ed25519": "ed25519",
  "ssh-rsa": "rsa",
  "ecdsa-sha2-nistp256": "ecdsa",
  "ecdsa-sha2-nistp384": "ecdsa",
  "ecdsa-sha2-nistp521": "ecdsa",
};

export interface PublicKey {
  /** The wire name, e.g. ssh-ed25519. */
  algorithm: string;
  /** ed25519, rsa or ecdsa. */
  keyType: string;
  /** The key blob (what the base64 field decodes to). */
  blob: Buffer;
  comment: string;
  /** `algorithm base64` with the comment dropped: what two copies of one key have in common. */
  canonical: string;
}

/** Largest public key line accepted (an RSA 16384-bit key is about 2.8 KB). */
const MAX_LINE = 8 * 1024;

/** The key, or a sentence saying why the text is not an OpenSSH public key. */
export function parsePublicKey(text: string): PublicKey | string {
  const line = text.trim();
  if (line.length === 0) return "the public key is empty";
  if (line.length > MAX_LINE || line.includes("\n")) return "the public key must be one line of OpenSSH public key format";
  if (line.startsWith("-----BEGIN")) return "that is a PEM key: give the public key in OpenSSH format (ssh-keygen -y -f key)";
  const [algorithm = "", data = "", ...rest] = line.split(/\s+/);
  const keyType = KEY_TYPES[algorithm];
  if (!keyType) return `unsupported key type "${algorithm.slice(0, 32)}" (use ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256/384/521)`;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(data)) return "the key data is not base64";
  const blob = Buffer.from(data, "base64");
  const inner = readString(blob, 0);
  if (!inner || inner.value.toString("latin1") !== algorithm) return "the key data does not hold a key of the type it names";
  if (keyType === "ed25519") {
    const key = readString(blob, inner.next);
    if (!key || key.value.length !== 32 || key.next !== blob.length) return "the ed25519 key is not 32 bytes";
  }
  if (keyType === "rsa") {
    const e = readString(blob, inner.next);
    const n = e && readString(blob, e.next);
    if (!n || n.next !== blob.length) return "the RSA key data is truncated";
    const bits = (n.value.length - (n.value[0] === 0 ? 1 : 0)) * 8;
    if (bits < 2048) return "RSA keys must have at least 2048 bits";
  }
  return { algorithm, keyType, blob, comment: rest.join(" "), canonical: `${algorithm} ${blob.toString("base64")}` };
}

/** OpenSSH's fingerprint: SHA256: and the unpadded base64 of the blob's SHA-256. */
export function sha256Fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

function readString(buf: Buffer, at: number): { value: Buffer; next: number } | null {
  if (at + 4 > buf.length) return null;
  const len = buf.readUInt32BE(at);
  if (at + 4 + len > buf.length) return null;
  return { value: buf.subarray(at + 4, at + 4 + len), next: at + 4 + len };
}

function sshString(value: Buffer | string): Buffer {
  const body = typeof value === "string" ? Buffer.from(value, "latin1") : value;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** An mpint: big-endian, with a leading zero byte when the top bit is set. */
function mpint(unsigned: Buffer): Buffer {
  let v = unsigned;
  while (v.length > 1 && v[0] === 0) v = v.subarray(1);
  return sshString((v[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

export interface GeneratedKeyPair {
  /** OpenSSH public key line, `<type> <base64> <comment>`. */
  publicKey: string;
  /** The private key, PEM text: secret. */
  privateKey: string;
  keyType: "rsa" | "ed25519";
  fingerprint: string;
}

/** A new key pair. The private key is the caller's to hand over once; nothing here keeps it. */
export function generateKeyPair(keyType: "rsa" | "ed25519", comment: string): GeneratedKeyPair {
  if (keyType === "rsa") {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 3072 });
    const jwk = publicKey.export({ format: "jwk" });
    const blob = Buffer.concat([sshString("ssh-rsa"), mpint(Buffer.from(jwk.e ?? "", "base64url")), mpint(Buffer.from(jwk.n ?? "", "base64url"))]);
    return { publicKey: `ssh-rsa ${blob.toString("base64")} ${comment}`.trim(), privateKey: privateKey.export({ format: "pem", type: "pkcs1" }).toString(), keyType, fingerprint: sha256Fingerprint(blob) };
  }
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const pub = rawEd25519(publicKey, "x");
  const blob = Buffer.concat([sshString("ssh-ed25519"), sshString(pub)]);
  return { publicKey: `ssh-ed25519 ${blob.toString("base64")} ${comment}`.trim(), privateKey: openSshEd25519(blob, pub, rawEd25519(privateKey, "d"), comment), keyType, fingerprint: sha256Fingerprint(blob) };
}

function rawEd25519(key: KeyObject, field: "x" | "d"): Buffer {
  const jwk = key.export({ format: "jwk" });
  return Buffer.from(jwk[field] ?? "", "base64url");
}

/** The `openssh-key-v1` container (unencrypted), which is how OpenSSH stores ed25519 private keys. */
function openSshEd25519(blob: Buffer, pub: Buffer, seed: Buffer, comment: string): string {
  const check = randomBytes(4);
  let secret = Buffer.concat([check, check, sshString("ssh-ed25519"), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString(comment)]);
  const pad = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const count = Buffer.alloc(4);
  count.writeUInt32BE(1);
  const body = Buffer.concat([Buffer.from("openssh-key-v1\0", "latin1"), sshString("none"), sshString("none"), sshString(""), count, sshString(blob), sshString(secret)]);
  const lines = body.toString("base64").match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`;
}
