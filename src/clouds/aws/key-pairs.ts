// Key pairs on EC2: ImportKeyPair for a public key the user has (checked here first, so a bad key is refused with the
// reason), CreateKeyPair for one EC2 makes, whose private key is in that answer only. EC2 keeps no client token for a
// key pair: the driver tags it with one, so a retried create finds the pair its lost first attempt made — whose
// private key nobody has — and replaces it. Deleting what is gone is success.
import type { KeyPairInfo } from "@aws-sdk/client-ec2";
import { DriverError, type DriverCallOptions, type DriverTarget } from "../driver.js";
import { CLIENT_TOKEN_TAG, checkTags, type KeyPairObservation, type KeyPairService } from "../resources.js";
import { parsePublicKey } from "../ssh-keys.js";
import { withEc2, type Ec2Session } from "./client.js";
import { tagsFor, tagValue, userTags } from "./mapping.js";

export function keyPairOf(k: KeyPairInfo, regionId: string): KeyPairObservation {
  return {
    providerId: k.KeyPairId ?? "",
    regionId,
    name: k.KeyName ?? "",
    state: "AVAILABLE",
    tags: userTags(k.Tags),
    createdAt: k.CreateTime ?? null,
    clientToken: tagValue(k.Tags, CLIENT_TOKEN_TAG) ?? null,
    details: {},
    fingerprint: k.KeyFingerprint ?? "",
    keyType: k.KeyType ?? "",
  };
}

async function describe(s: Ec2Session, query: { KeyPairIds?: string[]; KeyNames?: string[]; Filters?: Array<{ Name: string; Values: string[] }>; IncludePublicKey?: boolean }): Promise<KeyPairInfo[]> {
  try {
    const out = await s.send("DescribeKeyPairs", (c, o, x) => c.send(new x.DescribeKeyPairsCommand(query), o));
    return out.KeyPairs ?? [];
  } catch (err) {
    // Asking for an id or name EC2 does not have is InvalidKeyPair.NotFound: none.
    if (err instanceof DriverError && err.code === "NOT_FOUND" && (query.KeyPairIds || query.KeyNames)) return [];
    throw err;
  }
}

function checkName(name: string): void {
  if (name.length < 1 || name.length > 255 || !/^[\x20-\x7e]+$/.test(name)) throw new DriverError("INVALID", "an EC2 key pair name has 1 to 255 printable ASCII characters");
}

export function awsKeyPairs(): KeyPairService {
  const inRegion = <T>(target: DriverTarget, regionId: string, call: DriverCallOptions, fn: (s: Ec2Session) => Promise<T>) => withEc2(target, regionId, call, fn);
  const byToken = (s: Ec2Session, token: string) => describe(s, { Filters: [{ Name: `tag:${CLIENT_TOKEN_TAG}`, Values: [token] }] });

  return {
    importKey: (target, request, call) =>
      inRegion(target, request.regionId, call, async (s) => {
        checkName(request.name);
        checkTags(request.tags);
        const parsed = parsePublicKey(request.publicKey);
        if (typeof parsed === "string") throw new DriverError("INVALID", `public key: ${parsed}`);
        if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
        const [mine] = await byToken(s, request.clientToken);
        if (mine) return keyPairOf(mine, request.regionId);
        try {
          await s.send("ImportKeyPair", (c, o, x) =>
            c.send(new x.ImportKeyPairCommand({ KeyName: request.name, PublicKeyMaterial: Buffer.from(parsed.canonical, "utf8"), TagSpecifications: [{ ResourceType: "key-pair", Tags: tagsFor("", request.tags, request.clientToken) }] }), o),
          );
        } catch (err) {
          if (!(err instanceof DriverError && err.providerCode === "InvalidKeyPair.Duplicate")) throw err;
          // The name is taken: by this very key (the same import again) is success, by another key CONFLICT.
          const [same] = await describe(s, { KeyNames: [request.name], IncludePublicKey: true });
          const key = same?.PublicKey ? parsePublicKey(same.PublicKey) : null;
          if (same && key && typeof key !== "string" && key.canonical === parsed.canonical) return keyPairOf(same, request.regionId);
          throw new DriverError("CONFLICT", `a key pair named "${request.name}" with another key already exists in ${request.regionId}`, { cause: err, providerCode: err.providerCode });
        }
        const [made] = await describe(s, { KeyNames: [request.name] });
        if (!made) throw new DriverError("INTERNAL", "AWS ImportKeyPair answered, but the key pair cannot be read back", { retryable: true });
        return keyPairOf(made, request.regionId);
      }),

    create: (target, request, call) =>
      inRegion(target, request.regionId, call, async (s) => {
        checkName(request.name);
        checkTags(request.tags);
        if (request.clientToken === "") throw new DriverError("INVALID", "a client token is required");
        // A pair an earlier attempt made under this token: its private key was lost with that attempt's answer.
        for (const lost of await byToken(s, request.clientToken)) {
          await s.send("DeleteKeyPair", (c, o, x) => c.send(new x.DeleteKeyPairCommand({ KeyPairId: lost.KeyPairId }), o));
        }
        try {
          const out = await s.send("CreateKeyPair", (c, o, x) =>
            c.send(new x.CreateKeyPairCommand({ KeyName: request.name, KeyType: request.keyType, KeyFormat: "pem", TagSpecifications: [{ ResourceType: "key-pair", Tags: tagsFor("", request.tags, request.clientToken) }] }), o),
          );
          if (!out.KeyMaterial || !out.KeyPairId) throw new DriverError("INTERNAL", "AWS CreateKeyPair answered without the key", { retryable: true });
          const keyPair = keyPairOf({ KeyPairId: out.KeyPairId, KeyName: out.KeyName, KeyFingerprint: out.KeyFingerprint, KeyType: request.keyType, Tags: out.Tags ?? tagsFor("", request.tags, request.clientToken) }, request.regionId);
          return { keyPair, privateKey: out.KeyMaterial };
        } catch (err) {
          if (err instanceof DriverError && err.providerCode === "InvalidKeyPair.Duplicate") throw new DriverError("CONFLICT", `a key pair named "${request.name}" already exists in ${request.regionId}`, { cause: err, providerCode: err.providerCode });
          throw err;
        }
      }),

    get: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        const [k] = await describe(s, { KeyPairIds: [ref.providerId] });
        return k ? keyPairOf(k, ref.regionId) : null;
      }),

    list: (target, regionId, call) => inRegion(target, regionId, call, async (s) => (await describe(s, {})).map((k) => keyPairOf(k, regionId))),

    delete: (target, ref, call) =>
      inRegion(target, ref.regionId, call, async (s) => {
        try {
          await s.send("DeleteKeyPair", (c, o, x) => c.send(new x.DeleteKeyPairCommand({ KeyPairId: ref.providerId }), o));
        } catch (err) {
          if (err instanceof DriverError && err.code === "NOT_FOUND") return;
          throw err;
        }
      }),
  };
}
