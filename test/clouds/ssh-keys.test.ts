// OpenSSH public keys: what is accepted and why the rest is refused, fingerprints as ssh-keygen prints them, and
// generated key pairs that ssh-keygen itself accepts (the private key derives the public key).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { generateKeyPair, parsePublicKey, sha256Fingerprint, type PublicKey } from "../../src/clouds/ssh-keys.js";

const dir = mkdtempSync(join(tmpdir(), "ssh-keys-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function keygen(...args: string[]): string {
  return execFileSync("ssh-keygen", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

describe("generated key pairs", () => {
  it.each(["ed25519", "rsa"] as const)("%s: ssh-keygen reads the private key, derives the same public key and fingerprint", (type) => {
    const pair = generateKeyPair(type, "test@dispatcher");
    const file = join(dir, `id_${type}`);
    writeFileSync(file, pair.privateKey, { mode: 0o600 });
    const derived = keygen("-y", "-f", file).trim();
    expect(derived.split(" ").slice(0, 2).join(" ")).toBe(pair.publicKey.split(" ").slice(0, 2).join(" "));
    expect(keygen("-l", "-E", "sha256", "-f", file)).toContain(pair.fingerprint);
    const parsed = parsePublicKey(pair.publicKey) as PublicKey;
    expect(parsed.keyType).toBe(type);
    expect(parsed.comment).toBe("test@dispatcher");
    expect(sha256Fingerprint(parsed.blob)).toBe(pair.fingerprint);
  });
});

describe("parsePublicKey", () => {
  it("accepts keys ssh-keygen makes, with or without a comment", () => {
    const file = join(dir, "ecdsa");
    keygen("-q", "-t", "ecdsa", "-N", "", "-C", "", "-f", file);
    const line = execFileSync("cat", [`${file}.pub`], { encoding: "utf8" });
    const key = parsePublicKey(line) as PublicKey;
    expect(key).toMatchObject({ algorithm: "ecdsa-sha2-nistp256", keyType: "ecdsa" });
    expect(keygen("-l", "-E", "sha256", "-f", `${file}.pub`)).toContain(sha256Fingerprint(key.blob));
    expect(key.canonical).toBe(line.trim().split(" ").slice(0, 2).join(" "));
  });

  it("refuses what is not one OpenSSH public key, saying why", () => {
    const ed = generateKeyPair("ed25519", "").publicKey;
    const [, data = ""] = ed.split(" ");
    const cases: Array<[string, RegExp]> = [
      ["", /empty/],
      ["-----BEGIN PUBLIC KEY-----\nMCow", /one line/],
      ["-----BEGIN PUBLIC KEY----- MCow", /PEM/],
      [`ssh-dss ${data}`, /unsupported key type "ssh-dss"/],
      ["ssh-ed25519 not*base64", /not base64/],
      [`ssh-rsa ${data}`, /does not hold a key of the type it names/],
      [`ssh-ed25519 ${Buffer.from(data, "base64").subarray(0, 40).toString("base64")}`, /not 32 bytes/],
      [`${ed}\n${ed}`, /one line/],
    ];
    for (const [text, why] of cases) expect(parsePublicKey(text), text.slice(0, 40)).toMatch(why);
  });

  it("refuses RSA keys under 2048 bits", () => {
    const file = join(dir, "small");
    keygen("-q", "-t", "rsa", "-b", "1024", "-N", "", "-f", file);
    expect(parsePublicKey(execFileSync("cat", [`${file}.pub`], { encoding: "utf8" }))).toBe("RSA keys must have at least 2048 bits");
  });
});
