// The second seal on GetCredential responses: credential fields sealed under the KM channel key that KM and its
// clients share, so that a TLS-terminating proxy between them still sees no secret.
//
// A message key is HKDF-SHA256(channel key, 32-byte random salt, info), and the salt travels with each message. KM
// derives one for a fresh salt and seals up to SEALS_PER_KEY messages with it, each under its own nonce (a random
// 8-byte prefix drawn with the salt, then a 4-byte counter): nonces never repeat under a key, and the long-lived
// channel key itself is never a GCM key. A restart or the count running out draws a new salt, so no two KM processes
// share a message key. A client keeps the keys it derived by (key version, salt), a bounded number of them, so it
// derives once per KM key rather than once per message. Associated data binds the credential id, account id and
// channel key version, so a sealed payload cannot be replayed as another credential's. A batch's fields are sealed
// together, once, with every item's credential and account id, in order, in the associated data (under a purpose of
// their own). The wire format is the one a key per message had, and each side works with the other's older version.
import { hkdfSync, randomBytes } from "node:crypto";
import { associatedData, EnvelopeError, KEY_BYTES, NONCE_BYTES, open, seal } from "./crypto.js";
import type { Keyring } from "./keys.js";

export const PURPOSE_CHANNEL = "dispatcher.km/channel/v1";
/** The purpose in the associated data of a batch's fields, sealed together (BatchGetCredentials). */
export const PURPOSE_CHANNEL_BATCH = "dispatcher.km/channel-batch/v1";
const SALT_BYTES = 32;
const NONCE_PREFIX_BYTES = NONCE_BYTES - 4;
/**
 * Messages KM seals under one derived key. With unique nonces GCM's bound is the data sealed under a key; 2^20 small
 * messages are far inside it, and a new salt costs one HKDF.
 */
export const SEALS_PER_KEY = 2 ** 20;
/** Derived keys a client keeps: a few per KM process it talks to is enough. */
export const OPENER_KEYS = 64;

export interface ChannelSealed {
  channelKeyVersion: number;
  salt: Buffer;
  nonce: Buffer;
  /** Ciphertext with its tag appended. */
  ciphertext: Buffer;
}

/** What the sealed payload belongs to: one credential, or a batch's, in the order of its items. */
export type ChannelContext = ChannelItem | { items: readonly ChannelItem[] };

export interface ChannelItem {
  credentialId: string;
  accountId: string;
}

export interface ChannelSealer {
  /** Seals `plaintext` under the newest channel key. */
  seal(ctx: ChannelContext, plaintext: Buffer): ChannelSealed;
}

export interface ChannelOpener {
  /** Opens a sealed payload; throws EnvelopeError when the key version is unknown or anything was altered. */
  open(ctx: ChannelContext, sealed: ChannelSealed): Buffer;
  /** Derived keys held now (at most the bound given). */
  readonly cachedKeys: number;
}

function messageKey(channelKey: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync("sha256", channelKey, salt, PURPOSE_CHANNEL, KEY_BYTES));
}

const channelAad = (ctx: ChannelContext, version: number): Buffer =>
  "items" in ctx
    ? associatedData(PURPOSE_CHANNEL_BATCH, [version, ctx.items.length, ...ctx.items.flatMap((i) => [i.credentialId, i.accountId])])
    : associatedData(PURPOSE_CHANNEL, [ctx.credentialId, ctx.accountId, version]);

interface SealingKey {
  version: number;
  salt: Buffer;
  key: Buffer;
  prefix: Buffer;
  used: number;
}

/** KM's side. `sealsPerKey` (tests) lowers the count after which a new salt is drawn. */
export function createChannelSealer(keys: Keyring, options: { sealsPerKey?: number } = {}): ChannelSealer {
  const limit = options.sealsPerKey ?? SEALS_PER_KEY;
  if (!(limit >= 1 && limit <= 2 ** 32)) throw new RangeError("sealsPerKey must be 1 to 2^32: the nonce counter has 4 bytes");
  let current: SealingKey | undefined;

  const next = (): SealingKey => {
    const { version, key } = keys.newest;
    const fresh = randomBytes(SALT_BYTES + NONCE_PREFIX_BYTES);
    const salt = Buffer.from(fresh.subarray(0, SALT_BYTES));
    return { version, salt, key: messageKey(key, salt), prefix: Buffer.from(fresh.subarray(SALT_BYTES)), used: 0 };
  };

  return {
    seal(ctx, plaintext) {
      if (!current || current.used >= limit) {
        current?.key.fill(0);
        current = next();
      }
      const k = current;
      const nonce = Buffer.allocUnsafe(NONCE_BYTES);
      k.prefix.copy(nonce, 0);
      nonce.writeUInt32BE(k.used++, NONCE_PREFIX_BYTES);
      const { ciphertext } = seal(k.key, plaintext, channelAad(ctx, k.version), nonce);
      return { channelKeyVersion: k.version, salt: k.salt, nonce, ciphertext };
    },
  };
}

/** A client's side. Keys are kept only once they opened a message; the least recently used goes first. */
export function createChannelOpener(keys: Keyring, options: { maxKeys?: number } = {}): ChannelOpener {
  const max = Math.max(1, options.maxKeys ?? OPENER_KEYS);
  const derived = new Map<string, Buffer>();

  return {
    // eslint-disable-next-line no-restricted-syntax -- made once, not per call
    get cachedKeys() {
      return derived.size;
    },

    open(ctx, sealed) {
      const key = keys.key(sealed.channelKeyVersion);
      if (!key) throw new EnvelopeError("KEY_VERSION_UNKNOWN", `channel key version ${sealed.channelKeyVersion} is not configured on this client`);
      if (sealed.salt.length !== SALT_BYTES) throw new EnvelopeError("FORMAT", "channel salt must be 32 bytes");
      const id = `${sealed.channelKeyVersion}:${sealed.salt.toString("base64")}`;
      const known = derived.get(id);
      const k = known ?? messageKey(key, sealed.salt);
      let plaintext: Buffer;
      try {
        plaintext = open(k, sealed.nonce, sealed.ciphertext, channelAad(ctx, sealed.channelKeyVersion));
      } catch (err) {
        // A salt that opens nothing (altered, or not KM's) is not kept: garbage cannot push KM's keys out.
        if (!known) k.fill(0);
        throw err;
      }
      derived.delete(id);
      derived.set(id, k);
      if (derived.size > max) {
        const [oldest, old] = derived.entries().next().value as [string, Buffer];
        derived.delete(oldest);
        old.fill(0);
      }
      return plaintext;
    },
  };
}
