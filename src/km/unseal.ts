// The KM client's side of the channel seal: the fields of a GetCredential answer, or of every credential a
// BatchGetCredentials call answered, opened and parsed in memory. A seal that does not open means the client's
// channel key is not KM's (or the answer was altered): FailedPrecondition KM_CHANNEL_SEAL_INVALID, never the bytes.
import { FailedPreconditionError, UnavailableError } from "../errors.js";
import type { GetCredentialRequest, GetCredentialResponse, SealedFields } from "../gen/proto/km/v1/km.js";
import type { ChannelContext, ChannelOpener } from "./channel.js";
import { EnvelopeError } from "./crypto.js";
import type { Got, Unsealer } from "./get-batches.js";

type Fields = Record<string, string>;

export function createUnsealer(channel: ChannelOpener): Unsealer {
  /** The plaintext of `sealed` handed to `parse`, then wiped. */
  const opened = <T>(ctx: ChannelContext, sealed: SealedFields, what: string, parse: (plaintext: Buffer) => T): T => {
    let plaintext: Buffer;
    try {
      plaintext = channel.open(ctx, sealed);
    } catch (err) {
      if (err instanceof EnvelopeError) throw new FailedPreconditionError(`KM's sealed answer for ${what} does not open (${err.failure.toLowerCase()}): check that encryption.kmChannelKey matches KM's`, "KM_CHANNEL_SEAL_INVALID");
      throw err;
    }
    try {
      return parse(plaintext);
    } finally {
      plaintext.fill(0);
    }
  };

  return {
    one(request: GetCredentialRequest, response: GetCredentialResponse): Got {
      const { credential, sealedFields } = response;
      if (!credential || !sealedFields) throw new UnavailableError("KM answered without the credential", "KM_BAD_RESPONSE");
      return { credential, fields: opened({ credentialId: request.id, accountId: request.accountId }, sealedFields, `credential ${request.id}`, (p) => fieldsOf(parse(p))) };
    },

    batch(requests: readonly GetCredentialRequest[], sealed: SealedFields): (Fields | undefined)[] {
      const items = requests.map((r) => ({ credentialId: r.id, accountId: r.accountId }));
      return opened({ items }, sealed, `${requests.length} credentials`, (p) => {
        const all = parse(p);
        if (!Array.isArray(all) || all.length !== requests.length) throw notFields();
        return all.map((entry: unknown) => (entry === null ? undefined : fieldsOf(entry)));
      });
    },
  };
}

/** The JSON in a plaintext. A parse error is replaced: V8 quotes the input it could not parse. */
function parse(plaintext: Buffer): unknown {
  try {
    return JSON.parse(plaintext.toString("utf8"));
  } catch {
    return undefined;
  }
}

function fieldsOf(value: unknown): Fields {
  if (!value || typeof value !== "object" || Array.isArray(value) || !Object.values(value).every((v) => typeof v === "string")) throw notFields();
  return value as Fields;
}

const notFields = (): FailedPreconditionError => new FailedPreconditionError("KM's unsealed answer is not an object of string fields", "KM_BAD_RESPONSE");
