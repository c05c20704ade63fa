// The second seal on GetCredential responses: credential fields sealed under the KM channel key that KM and its
// clients share, so that a TLS-terminating proxy between them still sees no secret.
//
// Each message gets its own key, HKDF-SHA256(channel key, 32-byte random salt, info), used for one AES-256-GCM
// encryption with a random nonce: the long-lived channel key itself is never a GCM key, so no count of its uses is
// needed (random nonces under one GCM key are limited to 2^32 messages). Associated data binds the credential id,
// account id and channel key version, so a sealed payload cannot be replayed as another credential's.
import { hkdfSync, randomBytes } from "node:crypto";
import { associatedData, EnvelopeError, KEY_BYTES, open, seal } from "./crypto.js";
import type { Keyring } from "./keys.js";

export const PURPOSE_CHANNEL = "dispatcher.km/channel/v1";
const SALT_BYTES = 32;

export interface ChannelSealed {
  channelKeyVersion: number;
  salt: Buffer;
  nonce: Buffer;
  /** Ciphertext with its tag appended. */
  ciphertext: Buffer;
}

/** What the sealed payload belongs to. */
export interface ChannelContext {
  credentialId: string;
  accountId: string;
}

function messageKey(channelKey: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync("sha256", channelKey, salt, PURPOSE_CHANNEL, KEY_BYTES));
}

const channelAad = (ctx: ChannelContext, version: number): Buffer => associatedData(PURPOSE_CHANNEL, [ctx.credentialId, ctx.accountId, version]);

/** Seals `plaintext` under the newest channel key. */
export function sealForChannel(keys: Keyring, ctx: ChannelContext, plaintext: Buffer): ChannelSealed {
  const { version, key } = keys.newest;
  const salt = randomBytes(SALT_BYTES);
  const k = messageKey(key, salt);
  try {
    const { nonce, ciphertext } = seal(k, plaintext, channelAad(ctx, version));
    return { channelKeyVersion: version, salt, nonce, ciphertext };
  } finally {
    k.fill(0);
  }
}

/** Opens a sealed payload; throws EnvelopeError when the key version is unknown or anything was altered. */
export function openFromChannel(keys: Keyring, ctx: ChannelContext, sealed: ChannelSealed): Buffer {
  const key = keys.key(sealed.channelKeyVersion);
  if (!key) throw new EnvelopeError("KEY_VERSION_UNKNOWN", `channel key version ${sealed.channelKeyVersion} is not configured on this client`);
  if (sealed.salt.length !== SALT_BYTES) throw new EnvelopeError("FORMAT", "channel salt must be 32 bytes");
  const k = messageKey(key, sealed.salt);
  try {
    return open(k, sealed.nonce, sealed.ciphertext, channelAad(ctx, sealed.channelKeyVersion));
  } finally {
    k.fill(0);
  }
}
