// Request bodies on their way to the adapter: decoding that never throws (grpc-js would answer INTERNAL), bodies over
// their method's size limit left undecoded, single requests decoded only once their call is admitted, and the checks
// that turn each of these into the caller's error.
import { type Metadata, type MethodDefinition, type ServiceDefinition } from "@grpc/grpc-js";
import { InvalidArgumentError, ResourceExhaustedError } from "../errors.js";

/** What a request body that is not a message of its method's type decodes to: the adapter answers INVALID_ARGUMENT. */
class Undecodable {
  constructor(readonly cause: unknown) {}
}

/** A unary or server-stream request body kept undecoded until its call is admitted: a refused call decodes nothing. */
class Encoded {
  constructor(
    readonly bytes: Buffer,
    readonly decode: (bytes: Buffer) => unknown,
  ) {}
}

/** What a request body over its method's size limit becomes, undecoded: the adapter answers RESOURCE_EXHAUSTED. */
class Oversized {
  constructor(
    readonly bytes: number,
    readonly limit: number,
  ) {}
}

/**
 * The service definition with request decoding that never throws, and that never decodes a body larger than
 * `limitOf(method)` bytes (0: no limit of its own; src/rpc/request-limits.ts). grpc-js answers a body that fails to decode with
 * INTERNAL and never calls the handler, so the caller gets no ErrorInfo and the request log never hears of it; here
 * the failure travels to the adapter as a value and is answered like any other bad input, after authentication.
 * A single request (unary, server stream) is decoded only once its call is admitted (requestOf), after the limits.
 */
export function tolerantDefinition(definition: ServiceDefinition, limitOf: (method: string) => number = () => 0): ServiceDefinition {
  const out: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [key, method] of Object.entries(definition) as Array<[string, MethodDefinition<unknown, unknown>]>) {
    const limit = limitOf(method.path);
    out[key] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        if (limit > 0 && bytes.length > limit) return new Oversized(bytes.length, limit);
        if (!method.requestStream) return new Encoded(bytes, method.requestDeserialize);
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return new Undecodable(err);
        }
      },
    };
  }
  return out as ServiceDefinition;
}

/** Bytes of the call's metadata as it arrived: every key and every value. */
function metadataBytes(metadata: Metadata): number {
  let n = 0;
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    for (const v of values) n += key.length + (typeof v === "string" ? Buffer.byteLength(v) : v.length);
  }
  return n;
}

/** Refuses a call before anything is looked up: metadata, then a request body, over its limit. */
export function checkEnvelope(runtime: { readonly maxMetadataBytes?: number | undefined }, metadata: Metadata, request: unknown): void {
  const limit = runtime.maxMetadataBytes ?? 0;
  if (limit > 0) {
    const size = metadataBytes(metadata);
    if (size > limit) throw new ResourceExhaustedError(`request metadata of ${size} bytes exceeds the limit of ${limit} bytes`, "METADATA_TOO_LARGE", null, { limitBytes: String(limit) });
  }
  if (request instanceof Oversized) {
    throw new ResourceExhaustedError(`request message of ${request.bytes} bytes exceeds this method's limit of ${request.limit} bytes`, "REQUEST_TOO_LARGE", null, { limitBytes: String(request.limit) });
  }
}

function malformed(): InvalidArgumentError {
  return new InvalidArgumentError([{ field: "", description: "the request body is not a valid protobuf message of this method's request type" }], "MALFORMED_REQUEST");
}

export function checkDecoded(request: unknown): void {
  if (request instanceof Undecodable) throw malformed();
}

/** The request of an admitted call, decoded now if it arrived undecoded; INVALID_ARGUMENT when it does not decode. */
export function requestOf<Req>(request: unknown): Req {
  if (request instanceof Encoded) {
    try {
      return request.decode(request.bytes) as Req;
    } catch {
      throw malformed();
    }
  }
  checkDecoded(request);
  return request as Req;
}
