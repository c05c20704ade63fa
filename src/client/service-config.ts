// The client channel's gRPC service config: retry on UNAVAILABLE only for methods whose proto declares
// idempotency_level NO_SIDE_EFFECTS or IDEMPOTENT. `npm run generate` lists them from the descriptor set (so new
// methods follow their proto) into a small JSON file, which a client reads instead of decoding the descriptor set.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type * as Protobuf from "@bufbuild/protobuf";
import type * as WellKnownTypes from "@bufbuild/protobuf/wkt";

export interface RetryOptions {
  /** Attempts including the first (grpc-js caps this at 5). */
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  backoffMultiplier: number;
}

export const DEFAULT_RETRY: RetryOptions = { maxAttempts: 4, initialBackoffMs: 100, maxBackoffMs: 2_000, backoffMultiplier: 2 };

/** Where `npm run generate` writes the descriptor set of proto/ (shipped with the package). */
export const DESCRIPTORS_URL = new URL("../gen/descriptors.binpb", import.meta.url);
/** Where `npm run generate` writes idempotentMethods() of that descriptor set. */
export const IDEMPOTENT_METHODS_URL = new URL("../gen/idempotent-methods.json", import.meta.url);

export interface MethodName {
  /** Fully-qualified service name, e.g. "dispatcher.v1.JobService". */
  service: string;
  method: string;
}

// Decoding a descriptor set takes protobuf-es and its well-known types (a tenth of a second of CPU on a small
// machine): loaded only by the callers that decode one.
const loadCjs = createRequire(import.meta.url);

/** Methods of the descriptor set safe to retry: idempotency_level NO_SIDE_EFFECTS or IDEMPOTENT. */
export function idempotentMethods(descriptorSet: Uint8Array): MethodName[] {
  const { fromBinary } = loadCjs("@bufbuild/protobuf") as typeof Protobuf;
  const { FileDescriptorSetSchema, MethodOptions_IdempotencyLevel } = loadCjs("@bufbuild/protobuf/wkt") as typeof WellKnownTypes;
  const out: MethodName[] = [];
  for (const file of fromBinary(FileDescriptorSetSchema, descriptorSet).file) {
    for (const service of file.service) {
      const fqn = file.package ? `${file.package}.${service.name}` : service.name;
      for (const method of service.method) {
        const level = method.options?.idempotencyLevel ?? MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN;
        if (level === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS || level === MethodOptions_IdempotencyLevel.IDEMPOTENT) out.push({ service: fqn, method: method.name });
      }
    }
  }
  return out;
}

/** idempotentMethods() of this package's protos, as `npm run generate` listed them (decoded here if it did not). */
export function generatedIdempotentMethods(): MethodName[] {
  try {
    return JSON.parse(readFileSync(IDEMPOTENT_METHODS_URL, "utf8")) as MethodName[];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    return idempotentMethods(loadDescriptorSet());
  }
}

/** The JSON for the `grpc.service_config` channel option: a retry policy on UNAVAILABLE for `methods` only. */
export function retryServiceConfig(methods: MethodName[], retry: RetryOptions): string {
  const seconds = (ms: number): string => `${(Math.max(1, ms) / 1000).toFixed(3)}s`;
  const methodConfig =
    methods.length === 0
      ? []
      : [
          {
            name: methods.map((m) => ({ service: m.service, method: m.method })),
            retryPolicy: {
              maxAttempts: Math.max(2, retry.maxAttempts),
              initialBackoff: seconds(retry.initialBackoffMs),
              maxBackoff: seconds(retry.maxBackoffMs),
              backoffMultiplier: retry.backoffMultiplier,
              retryableStatusCodes: ["UNAVAILABLE"],
            },
          },
        ];
  return JSON.stringify({ methodConfig });
}

export function loadDescriptorSet(from: URL | string = DESCRIPTORS_URL): Uint8Array {
  return readFileSync(from);
}
