// The local cloud's key pairs: public keys on record (OpenSSH format, SHA256 fingerprints); a server launched with
// one gets the key in its guest's ~/.ssh/authorized_keys. A created key pair's private key is made here, handed back
// once and never written anywhere.
import { DriverError, type DriverTarget } from "../driver.js";
import { checkTags, type KeyPairObservation, type KeyPairService } from "../resources.js";
import { generateKeyPair, parsePublicKey, sha256Fingerprint } from "../ssh-keys.js";
import { runCall } from "./call.js";
import { checkName, requireCapability, type LocalContext } from "./context.js";
import { newRecordId, type KeyPairRecord } from "./records.js";

type Context = (target: DriverTarget) => Promise<LocalContext>;

function observe(k: KeyPairRecord): KeyPairObservation {
  return { providerId: k.id, regionId: k.regionId, name: k.name, state: "AVAILABLE", tags: { ...k.tags }, createdAt: new Date(k.createdAt), clientToken: k.clientToken, details: {}, fingerprint: k.fingerprint, keyType: k.keyType };
}

/** The key pair named `name` in the region, or null. */
export function keyPairByName(ctx: LocalContext, regionId: string, name: string): KeyPairRecord | null {
  return ctx.files.all("key_pair").find((k) => k.regionId === regionId && k.name === name) ?? null;
}

export function localKeyPairs(contextOf: Context): KeyPairService {
  /** Records a key pair under the client token's id; `replace` decides what happens when the id holds one already. */
  async function put(ctx: LocalContext, signal: AbortSignal, request: { regionId: string; name: string; clientToken: string; tags: Readonly<Record<string, string>> }, key: { publicKey: string; keyType: string; fingerprint: string }, replace: (existing: KeyPairRecord) => boolean): Promise<KeyPairRecord> {
    requireCapability(ctx, request.regionId, "key_pairs");
    checkName("key pair", request.name);
    checkTags(request.tags);
    if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
    const { id } = ctx.store.bindToken(request.clientToken, newRecordId("key_pair"), "key_pair");
    return ctx.store.withLock("key-pairs", signal, async () => {
      const existing = ctx.files.read("key_pair", id);
      if (existing && !replace(existing)) return existing;
      const clash = keyPairByName(ctx, request.regionId, request.name);
      if (clash && clash.id !== id) {
        if (clash.publicKey.split(" ").slice(0, 2).join(" ") === key.publicKey.split(" ").slice(0, 2).join(" ")) return clash;
        throw new DriverError("CONFLICT", `region "${request.regionId}" already has a key pair named "${request.name}" with another key`);
      }
      const record: KeyPairRecord = { id, regionId: request.regionId, name: request.name, ...key, tags: { ...request.tags }, createdAt: new Date().toISOString(), clientToken: request.clientToken };
      ctx.files.write("key_pair", record);
      return record;
    });
  }

  return {
    importKey: (target, request, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        const parsed = parsePublicKey(request.publicKey);
        if (typeof parsed === "string") throw new DriverError("INVALID", `public key: ${parsed}`);
        const line = `${parsed.canonical}${parsed.comment ? ` ${parsed.comment}` : ""}`;
        const record = await put(ctx, signal, request, { publicKey: line, keyType: parsed.keyType, fingerprint: sha256Fingerprint(parsed.blob) }, () => false);
        if (record.publicKey.split(" ").slice(0, 2).join(" ") !== parsed.canonical) throw new DriverError("CONFLICT", `client token already imported another key as ${record.id}`);
        return observe(record);
      }),

    create: (target, request, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        if (request.keyType !== "rsa" && request.keyType !== "ed25519") throw new DriverError("INVALID", "key type must be rsa or ed25519");
        const made = generateKeyPair(request.keyType, request.name);
        // A retry finds the pair its first attempt made; nobody has that one's private key, so it is replaced.
        const record = await put(ctx, signal, request, { publicKey: made.publicKey, keyType: made.keyType, fingerprint: made.fingerprint }, () => true);
        return { keyPair: observe(record), privateKey: made.privateKey };
      }),

    get: (target, ref, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        const k = ctx.files.read("key_pair", ref.providerId);
        return k && k.regionId === ref.regionId ? observe(k) : null;
      }),

    list: (target, regionId, opts) =>
      runCall(opts, async () => {
        const ctx = await contextOf(target);
        requireCapability(ctx, regionId, "key_pairs");
        return ctx.files.all("key_pair").filter((k) => k.regionId === regionId).map(observe);
      }),

    delete: (target, ref, opts) =>
      runCall(opts, async (signal) => {
        const ctx = await contextOf(target);
        // Servers launched with it keep the key in their authorized_keys, as on any cloud.
        await ctx.store.withLock("key-pairs", signal, async () => {
          const k = ctx.files.read("key_pair", ref.providerId);
          if (k && k.regionId === ref.regionId) ctx.files.remove("key_pair", k.id);
        });
      }),
  };
}
