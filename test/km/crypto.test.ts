// KM's crypto module on its own: published Wycheproof AES-GCM vectors, nonce uniqueness, envelope tampering of every
// part (ciphertext, nonce, associated data, key version, wrapped key), the channel seal, and key parsing.
import { hkdfSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { createChannelOpener, createChannelSealer, PURPOSE_CHANNEL, type ChannelSealed } from "../../src/km/channel.js";
import { associatedData, EnvelopeError, open, openRecord, rewrapRecord, seal, sealRecord, wrappedKeyVersion, type EnvelopeRecord, type RecordContext } from "../../src/km/crypto.js";
import { generateKeyText, Keyring, parseKeyring } from "../../src/km/keys.js";

interface Vector {
  tcId: number;
  comment: string;
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
  result: "valid" | "invalid";
}

const VECTORS = (JSON.parse(readFileSync(new URL("./vectors/wycheproof_aes_gcm_256_96.json", import.meta.url), "utf8")) as { tests: Vector[] }).tests;
const hex = (s: string): Buffer => Buffer.from(s, "hex");

/** The EnvelopeError `fn` throws (the test fails if it returns anything). */
function failure(fn: () => unknown): EnvelopeError {
  let result: unknown;
  try {
    result = fn();
  } catch (err) {
    expect(err).toBeInstanceOf(EnvelopeError);
    return err as EnvelopeError;
  }
  throw new Error(`expected a failure, got ${inspect(result)}`);
}

describe("AES-256-GCM against Wycheproof vectors (256-bit key, 96-bit IV)", () => {
  it("ships valid and invalid cases", () => {
    expect(VECTORS.filter((v) => v.result === "valid").length).toBeGreaterThanOrEqual(5);
    expect(VECTORS.filter((v) => v.result === "invalid").length).toBeGreaterThanOrEqual(5);
  });

  it.each(VECTORS.filter((v) => v.result === "valid").map((v) => [v.tcId, v] as const))("valid tcId %i: seal gives ct||tag, open gives msg", (_id, v) => {
    const sealed = seal(hex(v.key), hex(v.msg), hex(v.aad), hex(v.iv));
    expect(sealed.ciphertext.toString("hex")).toBe(v.ct + v.tag);
    expect(open(hex(v.key), hex(v.iv), hex(v.ct + v.tag), hex(v.aad)).toString("hex")).toBe(v.msg);
  });

  it.each(VECTORS.filter((v) => v.result === "invalid").map((v) => [v.tcId, v] as const))("invalid tcId %i: open refuses, returns no plaintext", (_id, v) => {
    expect(failure(() => open(hex(v.key), hex(v.iv), hex(v.ct + v.tag), hex(v.aad))).failure).toBe("INTEGRITY");
  });
});

describe("nonces", () => {
  it("100,000 sealings under one key use 100,000 distinct 96-bit nonces", () => {
    const key = randomBytes(32);
    const seen = new Set<string>();
    const msg = Buffer.from("x");
    let wrongLength = 0;
    for (let i = 0; i < 100_000; i++) {
      const { nonce } = seal(key, msg, Buffer.alloc(0));
      if (nonce.length !== 12) wrongLength++;
      seen.add(nonce.toString("hex"));
    }
    expect(wrongLength).toBe(0);
    expect(seen.size).toBe(100_000);
  });

  it("sealing the same record twice gives different data keys, nonces and ciphertexts", () => {
    const master = { version: 1, key: randomBytes(32) };
    const ctx: RecordContext = { recordId: "R1", accountId: "A1", type: "t" };
    const a = sealRecord(master, ctx, Buffer.from("same"));
    const b = sealRecord(master, ctx, Buffer.from("same"));
    expect(a.wrappedKey.equals(b.wrappedKey)).toBe(false);
    expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
  });
});

describe("envelope records", () => {
  const v1 = randomBytes(32);
  const v2 = randomBytes(32);
  const keys = (version: number): Buffer | undefined => (version === 1 ? v1 : version === 2 ? v2 : undefined);
  const ctx: RecordContext = { recordId: "01JDQ3Z5K8W8G4QF2Q6N2D7M9T", accountId: "acct-1", type: "aws-access-key" };
  const secret = Buffer.from(JSON.stringify({ secret_access_key: "wJalrXUtnFEMI/K7MDENG" }));
  const record = sealRecord({ version: 1, key: v1 }, ctx, secret);
  const flip = (b: Buffer, i: number): Buffer => {
    const c = Buffer.from(b);
    c[i] = (c[i] as number) ^ 0x01;
    return c;
  };

  it("round-trips, and every ciphertext names its key version", () => {
    expect(openRecord(keys, ctx, record).equals(secret)).toBe(true);
    expect(record.keyVersion).toBe(1);
    expect(wrappedKeyVersion(record.wrappedKey)).toBe(1);
    expect(record.ciphertext.includes(secret)).toBe(false);
  });

  it.each([
    ["a ciphertext byte", (r: EnvelopeRecord) => ({ ...r, ciphertext: flip(r.ciphertext, r.ciphertext.length - 20) }), "INTEGRITY"],
    ["the tag", (r: EnvelopeRecord) => ({ ...r, ciphertext: flip(r.ciphertext, r.ciphertext.length - 1) }), "INTEGRITY"],
    ["the fields' nonce", (r: EnvelopeRecord) => ({ ...r, ciphertext: flip(r.ciphertext, 3) }), "INTEGRITY"],
    ["the wrapped key", (r: EnvelopeRecord) => ({ ...r, wrappedKey: flip(r.wrappedKey, 30) }), "INTEGRITY"],
    ["the wrap nonce", (r: EnvelopeRecord) => ({ ...r, wrappedKey: flip(r.wrappedKey, 7) }), "INTEGRITY"],
    ["the key version column", (r: EnvelopeRecord) => ({ ...r, keyVersion: 2 }), "KEY_VERSION_MISMATCH"],
    ["the key version in header and column", (r: EnvelopeRecord) => ({ keyVersion: 2, wrappedKey: Buffer.concat([r.wrappedKey.subarray(0, 1), Buffer.of(0, 0, 0, 2), r.wrappedKey.subarray(5)]), ciphertext: r.ciphertext }), "INTEGRITY"],
    ["a key version nobody holds", (r: EnvelopeRecord) => ({ keyVersion: 9, wrappedKey: Buffer.concat([r.wrappedKey.subarray(0, 1), Buffer.of(0, 0, 0, 9), r.wrappedKey.subarray(5)]), ciphertext: r.ciphertext }), "KEY_VERSION_UNKNOWN"],
    ["the format byte", (r: EnvelopeRecord) => ({ ...r, ciphertext: flip(r.ciphertext, 0) }), "FORMAT"],
    ["a truncated wrapped key", (r: EnvelopeRecord) => ({ ...r, wrappedKey: r.wrappedKey.subarray(0, 40) }), "FORMAT"],
  ])("tampering with %s fails with a clear error and no plaintext", (_what, tamper, expected) => {
    const err = failure(() => openRecord(keys, ctx, tamper(record)));
    expect(err.failure).toBe(expected);
    expect(err.message).not.toContain("wJalr");
  });

  it.each([
    ["another account", { ...ctx, accountId: "acct-2" }],
    ["another record id", { ...ctx, recordId: "01JDQ3Z5K8W8G4QF2Q6N2D7M9V" }],
    ["another type", { ...ctx, type: "gcp-service-account" }],
  ])("a record moved to %s (associated data) does not decrypt", (_what, other) => {
    expect(failure(() => openRecord(keys, other, record)).failure).toBe("INTEGRITY");
  });

  it("re-wrap moves the data key to the new version; the sealed fields do not change; the old key is then unneeded", () => {
    const moved = rewrapRecord(keys, { version: 2, key: v2 }, ctx, record);
    expect(moved.keyVersion).toBe(2);
    expect(wrappedKeyVersion(moved.wrappedKey)).toBe(2);
    expect(moved.ciphertext.equals(record.ciphertext)).toBe(true);
    const onlyV2 = (version: number): Buffer | undefined => (version === 2 ? v2 : undefined);
    expect(openRecord(onlyV2, ctx, moved).equals(secret)).toBe(true);
    expect(failure(() => openRecord(onlyV2, ctx, record)).failure).toBe("KEY_VERSION_UNKNOWN");
  });

  it("associated data is unambiguous", () => {
    expect(associatedData("p", ["a", "bc"]).equals(associatedData("p", ["ab", "c"]))).toBe(false);
    expect(associatedData("p", ["1"]).equals(associatedData("p", [1]))).toBe(true);
    // The encoding every stored record and sealed answer was made with: it may never change.
    expect(associatedData("dispatcher.km/channel/v1", ["01HZX", "acct-é", 3]).toString("hex")).toBe(
      "00000018646973706174636865722e6b6d2f6368616e6e656c2f7631000000053031485a5800000007616363742dc3a90000000133",
    );
    expect(associatedData("", []).toString("hex")).toBe("00000000");
  });
});

describe("the channel seal", () => {
  const keys = parseKeyring(generateKeyText(1), "encryption.kmChannelKey");
  const ctx = { credentialId: "C1", accountId: "A1" };

  it("round-trips, never repeating a nonce under one salt's key, and draws a new salt after sealsPerKey messages", () => {
    const sealer = createChannelSealer(keys, { sealsPerKey: 3 });
    const opener = createChannelOpener(keys);
    const sealed = Array.from({ length: 7 }, () => sealer.seal(ctx, Buffer.from("{}")));
    for (const s of sealed) expect(opener.open(ctx, s).toString()).toBe("{}");
    const salts = [...new Set(sealed.map((s) => s.salt.toString("hex")))];
    expect(salts).toHaveLength(3);
    expect(new Set(sealed.map((s) => `${s.salt.toString("hex")}/${s.nonce.toString("hex")}`)).size).toBe(7);
    expect(sealed.slice(0, 3).every((s) => s.salt.equals(sealed[0]?.salt as Buffer))).toBe(true);
    // Another sealer (another KM process, or this one restarted) never shares a salt, hence a key.
    expect(createChannelSealer(keys).seal(ctx, Buffer.from("{}")).salt.equals(sealed[0]?.salt as Buffer)).toBe(false);
    expect(() => createChannelSealer(keys, { sealsPerKey: 2 ** 32 + 1 })).toThrow(RangeError);
  });

  it("opens what a key per message sealed (the same wire format), and derives each salt's key once", () => {
    const salt = randomBytes(32);
    const key = Buffer.from(hkdfSync("sha256", keys.newest.key, salt, PURPOSE_CHANNEL, 32));
    const aad = associatedData(PURPOSE_CHANNEL, [ctx.credentialId, ctx.accountId, keys.newest.version]);
    const opener = createChannelOpener(keys);
    for (let i = 0; i < 3; i++) {
      const { nonce, ciphertext } = seal(key, Buffer.from(`{"i":"${i}"}`), aad);
      expect(opener.open(ctx, { channelKeyVersion: keys.newest.version, salt, nonce, ciphertext }).toString()).toBe(`{"i":"${i}"}`);
    }
    expect(opener.cachedKeys).toBe(1);
  });

  it("keeps a bounded number of derived keys, and none for a salt that opens nothing", () => {
    const opener = createChannelOpener(keys, { maxKeys: 2 });
    const sealers = Array.from({ length: 5 }, () => createChannelSealer(keys));
    for (let round = 0; round < 3; round++) {
      for (const sealer of sealers) {
        expect(opener.open(ctx, sealer.seal(ctx, Buffer.from('{"k":"v"}'))).toString()).toBe('{"k":"v"}');
        expect(opener.cachedKeys).toBeLessThanOrEqual(2);
      }
    }
    const fresh = createChannelOpener(keys);
    const sealed = sealers[0]?.seal(ctx, Buffer.from("{}")) as ChannelSealed;
    expect(failure(() => fresh.open(ctx, { ...sealed, salt: randomBytes(32) })).failure).toBe("INTEGRITY");
    expect(failure(() => fresh.open({ ...ctx, credentialId: "C2" }, sealed)).failure).toBe("INTEGRITY");
    expect(fresh.cachedKeys).toBe(0);
    expect(fresh.open(ctx, sealed).toString()).toBe("{}");
    expect(fresh.cachedKeys).toBe(1);
  });

  it("does not open for another credential, another key, or with anything altered", () => {
    const sealed = createChannelSealer(keys).seal(ctx, Buffer.from('{"k":"v"}'));
    const opener = createChannelOpener(keys);
    expect(opener.open(ctx, sealed).toString()).toBe('{"k":"v"}');
    // Even with the salt's key kept from the message above.
    expect(failure(() => opener.open({ ...ctx, credentialId: "C2" }, sealed)).failure).toBe("INTEGRITY");
    expect(failure(() => createChannelOpener(parseKeyring(generateKeyText(1), "x")).open(ctx, sealed)).failure).toBe("INTEGRITY");
    expect(failure(() => opener.open(ctx, { ...sealed, channelKeyVersion: 2 })).failure).toBe("KEY_VERSION_UNKNOWN");
    const salt = Buffer.from(sealed.salt);
    salt[0] = (salt[0] as number) ^ 1;
    expect(failure(() => opener.open(ctx, { ...sealed, salt })).failure).toBe("INTEGRITY");
    const nonce = Buffer.from(sealed.nonce);
    nonce[11] = (nonce[11] as number) ^ 1;
    expect(failure(() => opener.open(ctx, { ...sealed, nonce })).failure).toBe("INTEGRITY");
  });

  it("a batch's seal opens only with its items, in their order, and never as one credential's", () => {
    const items = [ctx, { credentialId: "C2", accountId: "A1" }, { credentialId: "C3", accountId: "A2" }];
    const sealed = createChannelSealer(keys).seal({ items }, Buffer.from('[{"k":"1"},null,{"k":"3"}]'));
    const opener = createChannelOpener(keys);
    expect(opener.open({ items }, sealed).toString()).toBe('[{"k":"1"},null,{"k":"3"}]');
    expect(failure(() => opener.open({ items: [items[1], items[0], items[2]] as typeof items }, sealed)).failure).toBe("INTEGRITY");
    expect(failure(() => opener.open({ items: items.slice(0, 2) }, sealed)).failure).toBe("INTEGRITY");
    expect(failure(() => opener.open({ items: [...items.slice(0, 2), { credentialId: "C3", accountId: "A1" }] }, sealed)).failure).toBe("INTEGRITY");
    expect(failure(() => opener.open(ctx, sealed)).failure).toBe("INTEGRITY");
    const one = createChannelSealer(keys).seal(ctx, Buffer.from("{}"));
    expect(failure(() => opener.open({ items: [ctx] }, one)).failure).toBe("INTEGRITY");
  });
});

describe("key configuration", () => {
  const b64 = (n: number): string => randomBytes(n).toString("base64");

  it("parses versioned keys and a bare channel key; the newest version wraps", () => {
    const ring = parseKeyring(`2:${b64(32)}, 1:${b64(32)}`, "encryption.masterKeys");
    expect(ring.versions).toEqual([1, 2]);
    expect(ring.newest.version).toBe(2);
    expect(parseKeyring(b64(32), "encryption.kmChannelKey", { allowBare: true }).versions).toEqual([1]);
    expect(parseKeyring(`# comment, with a comma\n${generateKeyText(3)}\n`, "f").versions).toEqual([3]);
  });

  it.each([
    ["a 16-byte key", () => `1:${b64(16)}`, /version 1 is 16 bytes; a key must be 32 random bytes/],
    ["a 33-byte key", () => `1:${b64(33)}`, /33 bytes/],
    ["not base64", () => "1:not*base64", /not base64/],
    ["no version", () => b64(32), /not <version>:<base64 key>/],
    ["version 0", () => `0:${b64(32)}`, /versions are whole numbers from 1/],
    ["a duplicate version", () => `1:${b64(32)},1:${b64(32)}`, /version 1 appears twice/],
    ["a repeated byte", () => `1:${Buffer.alloc(32, 7).toString("base64")}`, /one byte repeated/],
    ["nothing", () => " ", /empty/],
  ])("refuses %s, naming the problem but not the key", (_what, text, message) => {
    const value = text();
    expect(() => parseKeyring(value, "encryption.masterKeys")).toThrow(message);
    try {
      parseKeyring(value, "encryption.masterKeys");
    } catch (err) {
      const key = value.split(":")[1];
      if (key && key.length > 8) expect((err as Error).message).not.toContain(key);
    }
  });

  it("never prints its keys", () => {
    const text = generateKeyText(1);
    const ring = parseKeyring(text, "k");
    const key = text.split(":")[1] as string;
    expect(JSON.stringify({ ring })).not.toContain(key);
    expect(inspect(ring, { showHidden: true, depth: 5 })).not.toContain(key);
    expect(inspect(ring)).not.toContain(Buffer.from(key, "base64").toString("hex").slice(0, 16));
    expect(ring.fingerprint(1)).toMatch(/^[0-9a-f]{64}$/);
    expect(new Keyring(new Map([[1, Buffer.from(key, "base64")]])).fingerprint(1)).toBe(ring.fingerprint(1));
  });
});
